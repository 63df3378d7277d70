"""Rates of misleading evidence at LR 1, 10 and 100, on a constructed example."""

from __future__ import annotations

import pytest

from ballistics.calibration import misleading_rates
from ballistics.review._validation_misleading import misleading_by_family, misleading_section


def test_misleading_rates_counts_each_strength():
    llr = [-2.5, -1.5, -0.5, 0.5, 3.0,      # same source: 3 below 1, 2 below 1/10, 1 below 1/100
           -3.0, 0.2, 1.2, 2.2]              # different source: 3 above 1, 2 above 10, 1 above 100
    same = [True] * 5 + [False] * 4
    r = misleading_rates(llr, same)
    assert (r["n_same"], r["n_different"]) == (5, 4)
    assert r["same_below_1"] == {"count": 3, "rate": pytest.approx(0.6)}
    assert r["same_below_1/10"]["count"] == 2 and r["same_below_1/100"]["count"] == 1
    assert r["different_above_1"] == {"count": 3, "rate": pytest.approx(0.75)}
    assert r["different_above_10"]["count"] == 2 and r["different_above_100"]["count"] == 1


def test_misleading_per_family_and_section():
    pairs = [{"same": True, "llr": -0.5, "family": "topmatch"}, {"same": False, "llr": 0.3, "family": "topmatch"},
             {"same": True, "llr": 2.0, "family": "confocal"}, {"same": False, "llr": -2.0, "family": "confocal"},
             {"same": False, "llr": None, "family": "confocal", "error": "failed"}]
    by = misleading_by_family(pairs)
    assert set(by) == {"topmatch", "confocal", "all"}
    assert by["topmatch"]["same_below_1"]["rate"] == 1.0 and by["confocal"]["same_below_1"]["rate"] == 0.0
    assert by["confocal"]["n_different"] == 1
    html = misleading_section(pairs, {"rmep": 0.05, "rmed": 0.02}, "study")
    assert "this study: topmatch" in html and "bar 5 %" in html and "fail" in html
    assert "learned-confocal-v1" in html   # the shipped systems with their own bars
