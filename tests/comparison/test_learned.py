"""The learned comparison score (issue 11, part B).

Real comparisons of the bundled Fadul breech faces (one same-slide pair, one
different-slide pair) exercise the features and the frozen model; the model's own
cross-validated numbers are in its card (``benchmarks/train_learned_score.py``).
"""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

import ballistics as bl
from ballistics import datasets
from ballistics.comparison._learned import (
    FEATURES,
    LearnedModel,
    contributions,
    learned_score,
    load_model,
    score_features,
)
from ballistics.errors import ParameterError


@pytest.fixture(scope="module")
def pairs():
    s = {x.name: x for x in datasets.fadul("processed")}
    same = bl.compare(s["Fadul 1-1"], s["Fadul 1-2"])
    diff = bl.compare(s["Fadul 1-1"], s["Fadul 2-1"])
    return same, diff


def test_model_is_plain_json_with_consistent_shapes():
    text = resources.files("ballistics.comparison").joinpath("data", "learned_score.json").read_text("utf-8")
    d = json.loads(text)
    m = load_model()
    assert list(m.features) == d["features"] and set(m.features) <= set(FEATURES)
    # the shipped model uses only evidence both directions must agree on: no one-direction
    # count, cell-correlation or areal-correlation feature (a texture shared by different
    # pistols raises those)
    assert "pose_agreement" in m.features and "cmc_fraction_min" in m.features
    assert np.all(m.coef > 0)        # every feature is evidence for the same source, none against
    assert not {"cmc_fraction_max", "ncc_mean", "ncc_q90", "ncc_frac_above", "correlation"} & set(m.features)
    assert np.all(np.isfinite(m.coef)) and np.all(m.scale > 0) and math.isfinite(m.intercept)
    # cross-validated with whole firearms left out, and the training pairs are identified
    cv = d["cross_validation"]["all"]
    assert d["training"]["n_same"] >= 60 and len(d["training"]["pairs_sha256"]) == 64
    assert 0.5 < cv["auc_learned"] <= 1.0 and 0.0 <= cv["learned_at_threshold"]["fpr"] <= 1.0
    card = resources.files("ballistics.comparison").joinpath("data", "learned_score_card.md").read_text("utf-8")
    assert d["training"]["pairs_sha256"] in card and "Limits" in card


def test_features_of_real_comparisons(pairs):
    same, diff = pairs
    fs, fd = score_features(same), score_features(diff)
    assert set(fs) == set(FEATURES) == set(fd)
    for f in (fs, fd):
        for k in ("cmc_fraction_min", "cmc_fraction_max", "directions_agree", "high_passed",
                  "ncc_frac_above", "translation_cluster", "overlap"):
            assert 0.0 <= f[k] <= 1.0, (k, f[k])
        assert f["cmc_fraction_min"] <= f["cmc_fraction_max"]
    # the same-slide pair agrees in everything the features measure
    assert fs["cmc_log"] > fd["cmc_log"] and fs["directions_agree"] == 1.0
    assert fs["translation_cluster"] > fd["translation_cluster"] + 0.3
    assert fs["pose_agreement"] > fd["pose_agreement"] + 0.3     # both directions' cells at the pair's pose
    assert fs["rotation_peak_sharpness"] > fd["rotation_peak_sharpness"]
    assert fs["correlation"] > fd["correlation"] and fs["ncc_mean"] > fd["ncc_mean"]
    # object and to_dict() give the same features (JSON round trip too)
    assert score_features(same.to_dict()) == fs
    assert score_features(json.loads(json.dumps(same.to_dict(), default=float))) == pytest.approx(fs)


def test_score_separates_and_contributions_add_up(pairs):
    same, diff = pairs
    m = load_model()
    s_same, s_diff = learned_score(same), learned_score(diff)
    assert s_same >= m.threshold > s_diff
    for r, s in ((same, s_same), (diff, s_diff)):
        c = contributions(r)
        assert set(c) == set(m.features) | {"intercept"}
        assert sum(c.values()) == pytest.approx(s, abs=1e-9)
    # the CMC features push the same-slide pair up
    assert contributions(same)["cmc_log"] > 0 > contributions(diff)["cmc_log"]


def test_directions_disagreeing_lower_the_score(pairs):
    same, _ = pairs
    d = json.loads(json.dumps(same.to_dict(), default=float))
    base = learned_score(d)
    # make the two directions register at incompatible rotations
    d["directions"]["b_to_a"]["rotation_deg"] = d["directions"]["a_to_b"]["rotation_deg"] + 90.0
    for c in d["cells"]:                 # ... and its cells with it, as a disagreeing comparison has them
        if c["direction"] == "b_to_a":
            c["rotation_deg"] += 90.0
    assert score_features(d)["directions_agree"] == 0.0
    assert learned_score(d) < base


def test_bad_inputs_are_parameter_errors():
    for bad in (None, 3.0, "result", {}, {"cmc_count": 3}, {"directions": {}}):
        with pytest.raises(ParameterError):
            learned_score(bad)
    with pytest.raises(ParameterError):
        LearnedModel.from_dict({"features": ["cmc_log"], "scaler": {"mean": [0], "scale": [0]},
                                "coef": [1.0], "intercept": 0.0})
    with pytest.raises(ParameterError):
        LearnedModel.from_dict({"features": ["unknown"], "scaler": {"mean": [0], "scale": [1]},
                                "coef": [1.0], "intercept": 0.0})
    with pytest.raises(ParameterError):
        LearnedModel.from_dict({"features": ["cmc_log"]})


def test_custom_model_is_used():
    m = LearnedModel.from_dict({"features": ["cmc_log"], "scaler": {"mean": [0.0], "scale": [1.0]},
                                "coef": [2.0], "intercept": -1.0})
    d = {"cmc_count": 0, "directions": {"a_to_b": {"cmc_count": 0, "n_cells": 10}}}
    assert learned_score(d, model=m) == pytest.approx(-1.0)
    d["cmc_count"] = math.e - 1
    assert learned_score(d, model=m) == pytest.approx(1.0)
