"""Calibrated likelihood ratios (issue 12): metrics against hand-computed values and
textbook limits, ELUB, calibrators, LR systems, figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ballistics import ParameterError
from ballistics import calibration as cal
from ballistics.calibration import CalibrationError


def toy(n_f: int = 8, per: int = 3, seed: int = 0):
    """Pairs of n_f firearms with `per` scans each: same-source scores ~ N(20, 4), different ~ |N(0, 2)|."""
    rng = np.random.default_rng(seed)
    scans = [(f"F{f}", k) for f in range(n_f) for k in range(per)]
    x, y, g = [], [], []
    for i in range(len(scans)):
        for j in range(i + 1, len(scans)):
            fa, fb = scans[i][0], scans[j][0]
            same = fa == fb
            x.append(rng.normal(20, 4) if same else abs(rng.normal(0, 2)))
            y.append(same)
            g.append((fa, fb))
    return np.array(x), np.array(y), g


# ---------------------------------------------------------------------------- Cllr
def test_cllr_textbook_limits():
    y = np.array([1, 1, 0, 0, 0])
    assert cal.cllr(np.zeros(5), y) == pytest.approx(1.0)                 # uninformative: LR = 1
    assert cal.cllr([np.inf, np.inf, -np.inf, -np.inf, -np.inf], y) == 0.0  # perfect
    assert cal.cllr([30, 30, -30, -30, -30], y) == pytest.approx(0.0, abs=1e-20)
    assert cal.cllr([-np.inf, 1, 0, 0, 0], y) == math.inf                  # LR = 0 for a true mate


def test_cllr_hand_computed():
    # LR 10 for the mate, 1/10 for the non-mate: 1/2 (log2 1.1 + log2 1.1)
    assert cal.cllr([1, -1], [1, 0]) == pytest.approx(math.log2(1.1))
    # H1: LR 1 and 3 -> costs 1 and log2(4/3); H2: LR 3 -> log2 4 = 2
    assert cal.cllr([0, math.log10(3), math.log10(3)], [1, 1, 0]) == pytest.approx(
        0.5 * ((1 + math.log2(4 / 3)) / 2 + 2))


def test_cllr_min_and_cal_hand_computed():
    assert cal.cllr_min([1, 2, 3], [0, 1, 1]) == 0.0             # separated
    # sorted labels 0,1,0,1: PAV -> 0, .5, .5, 1 -> LLR -inf, 0, 0, inf -> Cllr 1/2
    assert cal.cllr_min([1, 2, 3, 4], [0, 1, 0, 1]) == pytest.approx(0.5)
    np.testing.assert_allclose(cal.pav_llr([1, 2, 3, 4], [0, 1, 0, 1]), [-np.inf, 0, 0, np.inf])
    # identical scores carry no information: Cllr_min = 1 whatever the class sizes
    assert cal.cllr_min(np.ones(7), [1, 1, 0, 0, 0, 0, 0]) == pytest.approx(1.0)
    # any monotone transform has the same Cllr_min; Cllr_cal = Cllr - Cllr_min >= 0
    x, y, _ = toy(4)
    assert cal.cllr_min(x, y) == pytest.approx(cal.cllr_min(3 * x - 7, y))
    assert cal.cllr_cal(x / 10, y) == pytest.approx(cal.cllr(x / 10, y) - cal.cllr_min(x / 10, y))
    assert cal.cllr_cal(x / 10, y) >= 0


def test_ece_hand_computed():
    y = [1, 0, 0, 0]
    assert cal.ece([1, -1, 0, 2], y, [0.0])[0] == pytest.approx(cal.cllr([1, -1, 0, 2], y))
    # LR = 1: ECE is the binary entropy of the prior; P(H1) = 1/4 at log10 odds log10(1/3)
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert cal.ece(np.zeros(4), y, [math.log10(1 / 3)])[0] == pytest.approx(h)


def test_eer_hand_computed():
    assert cal.eer([2, 1], [1, 0]) == 0.0
    assert cal.eer([1, 1], [1, 0]) == pytest.approx(0.5)
    # mates 2, 4; non-mates 1, 3: hull segment (0, .5)-(.5, 0) crosses the diagonal at .25
    assert cal.eer([1, 2, 3, 4], [0, 1, 0, 1]) == pytest.approx(0.25)


def test_misleading_evidence_hand_computed():
    llr = [-0.5, 1, 3, -3, 0.2, 2.5]
    y = [1, 1, 1, 0, 0, 0]
    assert cal.misleading_evidence(llr, y) == pytest.approx((1 / 3, 2 / 3))
    assert cal.misleading_evidence(llr, y, 2.0) == pytest.approx((0.0, 1 / 3))
    m = cal.metrics(llr, y)
    assert (m.n_same, m.n_different, m.rmep, m.rmed_strong) == (3, 3, pytest.approx(1 / 3), pytest.approx(1 / 3))


@pytest.mark.parametrize("bad", [
    lambda: cal.cllr([0, 0], [1, 1]),                 # one class
    lambda: cal.cllr([np.nan, 0], [1, 0]),
    lambda: cal.cllr([0, 0, 0], [1, 0]),              # lengths differ
    lambda: cal.cllr([0, 0], [2, 0]),                 # labels not 0/1
    lambda: cal.cllr([], []),
    lambda: cal.misleading_evidence([0, 1], [1, 0], -1),
    lambda: cal.elub_bounds([0, 1], [1, 0], add_misleading=-1),
])
def test_bad_input_is_a_parameter_error(bad):
    with pytest.raises(ParameterError):
        bad()


# ---------------------------------------------------------------------------- ELUB
def test_elub_hand_computed():
    # one pair per class: with one misleading LR added on each side nothing beyond LR 1 is supported
    assert cal.elub_bounds([1, -1], [1, 0]) == (0.0, 0.0)
    # 50 mates at LR 1e10 and 700 non-mates at 1e-10: C_sys = 1/51 + T/701 exceeds min(1, T)
    # above T = 701 * 50/51 (log10 2.837 -> last grid point 2.83) and below T = 701/(51*700)
    # (log10 -1.707 -> first grid point above it -1.70)
    y = np.r_[np.ones(50), np.zeros(700)]
    assert cal.elub_bounds(np.r_[np.full(50, 10.0), np.full(700, -10.0)], y) == (-1.70, 2.83)
    # without misleading pseudo-LRs nothing fails on separated data: bounded by the LLRs observed
    assert cal.elub_bounds([0.5, 0.7, -0.4, -0.2], [1, 1, 0, 0], add_misleading=0) == (-0.4, 0.7)


def test_elub_against_lir():
    lir_bounding = pytest.importorskip("lir.bounding", reason="lir (NFI) needs Python >= 3.12")
    x, y, _ = toy(6)
    llr = (x - 8) / 3
    lo, hi = lir_bounding.elub(10.0 ** llr, y.astype(int), add_misleading=1)
    assert cal.elub_bounds(llr, y) == pytest.approx((math.log10(lo), math.log10(hi)), abs=0.011)


def test_cllr_against_lir():
    lir_metrics = pytest.importorskip("lir.metrics", reason="lir (NFI) needs Python >= 3.12")
    x, y, _ = toy(6, seed=5)
    llr = (x - 8) / 4
    assert cal.cllr(llr, y) == pytest.approx(lir_metrics.cllr(10.0 ** llr, y.astype(int)), rel=1e-9)
    assert cal.cllr_min(llr, y) == pytest.approx(lir_metrics.cllr_min(10.0 ** llr, y.astype(int)), abs=1e-6)


# ---------------------------------------------------------------------------- calibrators
def test_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(1, 1, 40), rng.normal(-1, 1, 90)]
    y = np.r_[np.ones(40, bool), np.zeros(90, bool)]
    c = cal.LogisticCalibrator(C=0.5).fit(x, y)
    z = (x - x.mean()) / x.std()
    w = np.where(y, 130 / 80, 130 / 180)   # classes weigh the same: log odds are log LRs
    m = LogisticRegression(C=0.5, tol=1e-12, max_iter=10000).fit(z[:, None], y, sample_weight=w)
    np.testing.assert_allclose(c.llr(x), m.decision_function(z[:, None]) / math.log(10), atol=1e-6)


def test_kde_hand_computed():
    # one score per class, fixed bandwidth 1: llr(x) = ((x-0)^2 - (x-1)^2) / (2 ln 10)
    k = cal.KDECalibrator(bandwidth=1.0).fit(np.array([1.0, 0.0]), np.array([True, False]))
    np.testing.assert_allclose(k.llr(np.array([0.5, 1.0, 0.0])), [0.0, 0.5 / math.log(10), -0.5 / math.log(10)])
    # outside the fitted scores the ratio is held at its edge value
    assert k.llr(np.array([5.0]))[0] == pytest.approx(k.llr(np.array([1.0]))[0])


def test_isotonic_hand_computed():
    # data 1:H2 2:H2 3:H1 4:H1 plus one misleading pseudo-pair each side (H1 at 1, H2 at 4):
    # PAV pools {1, 2} -> 1/3 and {3, 4} -> 2/3: log10 LR -+ log10 2, linear in between
    c = cal.IsotonicCalibrator().fit(np.array([1.0, 2, 3, 4]), np.array([False, False, True, True]))
    np.testing.assert_allclose(c.llr(np.array([1.0, 2, 2.5, 3, 4, 9])),
                               [-math.log10(2), -math.log10(2), 0, math.log10(2), math.log10(2), math.log10(2)],
                               atol=1e-12)
    c0 = cal.IsotonicCalibrator(add_misleading=0).fit(np.array([1.0, 2, 3, 4]), np.array([False, False, True, True]))
    assert np.isinf(c0.llr(np.array([1.0, 4.0]))).all()


@pytest.mark.parametrize("method,params", [("logistic", {"C": -1}), ("kde", {"bandwidth": "wide"}),
                                           ("isotonic", {"add_misleading": 0.5}), ("probit", {}),
                                           ("logistic", {"nonsense": 1})])
def test_bad_calibrator_parameters(method, params):
    with pytest.raises(ParameterError):
        cal.make_calibrator(method, **params)


# ---------------------------------------------------------------------------- LR systems
@pytest.fixture(scope="module")
def system():
    x, y, g = toy(8)
    return cal.fit(x, y, g, "logistic", bootstrap=40, name="toy", reference={"description": "toy pairs"})


def test_fit_records_everything(system):
    d = system.to_dict()
    for key in ("method", "params", "state", "elub", "reference", "training_checksum", "system_version",
                "library_version", "created", "cross_validation", "training_metrics", "bootstrap"):
        assert d[key] not in (None, "", {}), key
    cv = system.cross_validation
    assert cv["scheme"] == "leave-one-firearm-out" and len(cv["folds"]) == 8
    assert set(cv["metrics"]) >= {"cllr", "cllr_min", "cllr_cal", "eer", "rmep", "rmed"}
    assert len(cv["llr"]) == system.reference["n_pairs"] == 276
    assert "not a validation" in system.training_metrics["note"]
    assert len(cv["per_firearm"]) == 8
    lo, hi = system.elub
    assert lo < 0 < hi


def test_llr_bounded_and_interval(system):
    lo, hi = system.elub
    assert system.llr(1e6) == hi and system.llr(-1e6) == lo
    out = system.llr(np.array([0.0, 10.0, 25.0]))
    assert out.shape == (3,) and np.all(np.diff(out) >= 0)
    a, b = system.llr_interval(10.0)
    assert lo <= a <= system.llr(10.0) <= b <= hi
    band = system.llr_interval(np.array([0.0, 10.0]), level=0.5)
    assert band.shape == (2, 2)
    with pytest.raises(ParameterError):
        system.llr_interval(10.0, level=1.5)
    with pytest.raises(ParameterError):
        system.llr([np.nan])


def test_cross_validation_leaves_the_firearm_out():
    x, y, g = toy(4, per=3, seed=3)
    cv = cal.cross_validate(x, y, g, "logistic")
    # a same-source pair of F0 is predicted only in F0's fold: by a fit on pairs without F0
    k = next(i for i, p in enumerate(g) if p == ("F0", "F0"))
    train = np.array([("F0" not in p) for p in g])
    c = cal.LogisticCalibrator().fit(x[train], y[train])
    lo, hi = cal.elub_bounds(c.llr(x[train]), y[train])
    assert cv["llr"][k] == pytest.approx(np.clip(c.llr(x[[k]]), lo, hi)[0])


def test_save_load_roundtrip_json(system, tmp_path):
    p = system.save(tmp_path / "s.json")
    json.loads(p.read_text())              # plain JSON, no pickle
    s2 = cal.get_system(p)
    assert s2.training_checksum == system.training_checksum
    xs = np.array([0.0, 7.5, 30.0])
    np.testing.assert_allclose(s2.llr(xs), system.llr(xs))
    np.testing.assert_allclose(s2.llr_interval(xs), system.llr_interval(xs))


def test_load_refuses_bad_files(system, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError):
        cal.LRSystem.load(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CalibrationError, match="not an openbreech LR-system"):
        cal.LRSystem.load(bad)
    d = system.to_dict()
    d["training"]["scores"][0] += 1.0
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="altered"):
        cal.LRSystem.load(bad)
    d = system.to_dict()
    d["elub"][1] = 12.0                               # "a small reference set never gives LR 10^12"
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="altered"):
        cal.LRSystem.load(bad)
    d.pop("content_sha256")
    d["training"]["scores"][0] += 1.0
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="altered"):
        cal.LRSystem.load(bad)
    with pytest.raises(CalibrationError):
        cal.get_system(tmp_path / "missing.json")
    with pytest.raises(CalibrationError, match="no shipped LR system"):
        cal.get_system("no-such-system")


def test_fit_refuses_bad_input():
    x, y, g = toy(4)
    with pytest.raises(ParameterError):
        cal.fit(x, y, None)                           # no firearms: no honest evaluation
    with pytest.raises(ParameterError):
        cal.fit(x, y, g, "svm")
    with pytest.raises(ParameterError):
        cal.fit(x[y], y[y], [p for p, s in zip(g, y) if s])   # one class only
    with pytest.raises(ParameterError):
        cal.fit(x, y, g, bootstrap=-1)
    with pytest.raises(ParameterError):
        cal.fit(np.c_[x, x], y, g, "kde")             # two scores only for logistic
    one = [("A", "A") if s else ("A", "B") for s in y]
    with pytest.raises(CalibrationError, match="cannot leave"):
        cal.fit(x, y, one, bootstrap=0)               # all mates from one firearm


@pytest.mark.parametrize("method", ["kde", "isotonic"])
def test_other_methods_fit_and_roundtrip(method, tmp_path):
    x, y, g = toy(6, seed=2)
    s = cal.fit(x, y, g, method, bootstrap=10)
    s2 = cal.LRSystem.load(s.save(tmp_path / "s.json"))
    xs = np.array([0.5, 10.0, 22.0])
    np.testing.assert_allclose(s2.llr(xs), s.llr(xs))
    np.testing.assert_allclose(s2.llr_interval(xs), s.llr_interval(xs))
    assert s.cv_metrics["cllr"] < 0.5


def test_two_score_logistic_and_score_of():
    x, y, g = toy(6, seed=4)
    x2 = np.c_[x, x / 20 + np.random.default_rng(0).normal(0, 0.1, x.size)]
    s = cal.fit(x2, y, g, "logistic", score_column=["score", "correlation"], bootstrap=5)
    v = s.score_of({"score": 18.0, "correlation": 0.8})
    assert v.shape == (2,) and isinstance(s.llr(v), float)
    one = cal.fit(x, y, g, bootstrap=0, score_column="method_counts.high")
    assert one.score_of({"method_counts": {"high": 12}}) == 12.0
    with pytest.raises(ParameterError, match="no field"):
        one.score_of({"score": 3.0})


def test_applicability(system):
    from ballistics.calibration import LRSystem

    d = system.to_dict()
    d["reference"]["compare_params"] = {"method": "convergence", "corr_threshold": 0.5, "workers": 2}
    d.pop("content_sha256")
    s = LRSystem.from_dict(d)
    ok = {"score": 10.0, "params": {"method": "convergence", "corr_threshold": 0.5, "workers": 1}}
    assert s.outside_domain(ok) == []
    bad = {"score": 1e4, "params": {"method": "high", "corr_threshold": 0.5}}
    assert "method" in " ".join(s.outside_domain(bad))
    assert "outside the reference scores" in " ".join(s.extrapolation(1e4))


def test_evaluate_a_comparison_dict(system):
    out = system.evaluate({"score": 18.0, "params": {}})
    json.dumps(out, allow_nan=False)
    assert out["llr"] == system.llr(18.0) and out["interval"][0] <= out["llr"] <= out["interval"][1]
    assert "support" in out["verbal"] and out["system"]["name"] == "toy" and out["system"]["training_checksum"]


def test_default_system_is_shipped():
    assert cal.DEFAULT_SYSTEM in cal.list_systems()
    s = cal.get_system("default")
    assert s.name == cal.DEFAULT_SYSTEM and s.cross_validation["scheme"]
    assert s.reference["description"] and s.training_checksum
    lo, hi = s.elub
    assert s.score_column == "learned_score"     # the learned logit: < 0 leans to different firearms
    assert s.llr(-10.0) < 0 < s.llr(10.0) and lo <= s.llr(1e9) <= hi and s.llr(-1e9) == lo


# ---------------------------------------------------------------------------- verbal scale
@pytest.mark.parametrize("llr,words", [
    (0.0, "do not support"), (0.2, "do not support"), (0.5, "weak support for the same-source"),
    (1.0, "weak support"), (1.5, "moderate support"), (2.5, "moderately strong"), (3.5, "strong support"),
    (5.0, "very strong"), (6.5, "extremely strong"), (np.inf, "extremely strong"),
    (-1.5, "moderate support for the different-source proposition rather than the same-source"),
])
def test_verbal_scale(llr, words):
    assert words in cal.verbal_scale(llr)


def test_verbal_scale_refuses_nan():
    with pytest.raises(ParameterError):
        cal.verbal_scale(float("nan"))


# ---------------------------------------------------------------------------- figures
def test_figures_are_plain_figures(system):
    from matplotlib.figure import Figure

    from ballistics.review import _plot_calibration as P

    llr = np.array(system.cross_validation["llr"])
    y = np.array(system.training["same"])
    x = np.array(system.training["scores"])
    for fig in (P.tippett(llr, y, elub=system.elub), P.ece(llr, y), P.pav(llr, y), P.score_densities(x, y, system),
                P.lr_curve(system)):
        assert isinstance(fig, Figure) and fig.axes
        assert P.figure_to_png(fig)[:4] == b"\x89PNG"
    assert set(P.__all__) == {"tippett", "ece", "pav", "score_densities", "lr_curve"}


def test_import_and_plot_change_nothing_global():
    code = ("import sys, logging, numpy as np; import matplotlib; b = matplotlib.get_backend.__doc__;"
            "from ballistics import calibration as c; from ballistics.review import _plot_calibration as P;"
            "P.tippett(np.r_[1., -1.], np.r_[1, 0]);"
            "assert 'matplotlib.pyplot' not in sys.modules; assert not logging.getLogger().handlers; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------- real scores (NFI)
def test_nfi_breech_face_logistic(shared_data):
    import csv

    rows = list(csv.DictReader(open(shared_data / "nfi_scores" / "breech_face_impression.csv")))
    y = np.array([r["hypothesis"] == "1" for r in rows])
    x = np.array([float(r["cmc"]) / float(r["n"]) for r in rows])
    sp = np.array([r["split3"] for r in rows])
    tr, va = sp == "t", sp == "v"
    s = cal.fit(x[tr], y[tr], [(r["weapon1"], r["weapon2"]) for r, t in zip(rows, tr) if t], bootstrap=0)
    m = cal.metrics(s.llr(x[va]), y[va])
    # a logistic calibration of CMC/n is known to give Cllr about 0.22-0.40 on these data
    assert 0.15 < m.cllr < 0.40 and m.cllr_min < m.cllr
