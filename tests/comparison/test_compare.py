"""compare(): contract, degenerate inputs, recovered transforms, bundled same/different pairs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ballistics import ComparisonError, EmptyScanError, ParameterError, datasets, scan_from_array
from ballistics.comparison import (
    METHODS,
    PRESETS,
    CompareParams,
    Comparison,
    PreparedScan,
    align,
    aligned_pair,
    compare,
    prepare,
)
from ballistics.comparison._features import circ_median, circ_span
from ballistics.comparison._registration import rotation_matrix

FAST = {"rotation_range": (-12, 12), "coarse_step": None, "handedness": "as_given"}   # a small full grid


@pytest.fixture(scope="module")
def fadul():
    return datasets.fadul("processed")


@pytest.fixture(scope="module")
def pa(fadul):
    return prepare(fadul[0])


def transformed(data, phi, shift):
    """b(y) = a(c + M(-phi) (y - c) + shift), nearest neighbour (independent of the kernels)."""
    H, W = data.shape
    c = np.array([(H - 1) / 2, (W - 1) / 2])
    yy, xx = np.mgrid[0:H, 0:W]
    y = np.stack([yy - c[0], xx - c[1]]).reshape(2, -1)
    src = (rotation_matrix(-phi) @ y).T + c + np.asarray(shift)
    r = np.floor(src[:, 0] + 0.5).astype(int)
    q = np.floor(src[:, 1] + 0.5).astype(int)
    ok = (r >= 0) & (r < H) & (q >= 0) & (q < W)
    out = np.full(H * W, np.nan)
    out[ok] = data[r[ok], q[ok]]
    return out.reshape(H, W)


def test_self_comparison_all_cells_congruent(fadul, pa):
    res = compare(pa, fadul[0])                     # default: 360-degree coarse-to-fine, convergence CMC
    n_cells = len(pa.level(1).rc)
    assert abs(res.rotation_deg) < 1e-9
    assert res.translation_m == pytest.approx((0.0, 0.0), abs=1e-12)
    for d in res.directions.values():
        assert d["cmc_count"] == n_cells and d["passed"] is True
    assert all(c["congruent"] and c["ncc"] == pytest.approx(1.0) for c in res.cells)
    assert res.cmc_count == n_cells
    assert res.correlation == pytest.approx(1.0)
    assert res.mirrored is False and not [w for w in res.warnings if "mirror" in w]
    assert res.handedness["as_given"]["coarse_max_cmc"] > res.handedness["mirrored"]["coarse_max_cmc"]


@pytest.mark.parametrize("phi, shift", [(30.0, (6.0, -9.0)), (-117.0, (-4.0, 3.0))])
def test_rotated_shifted_copy_transform_recovered(fadul, pa, phi, shift):
    a = fadul[0]
    b = scan_from_array(transformed(a.data, phi, shift), a.spacing, name="copy")
    res = compare(pa, b)
    assert abs(((res.rotation_deg - phi) + 180) % 360 - 180) <= 1.5
    t = np.array(res.directions["a_to_b"]["translation_px"])
    np.testing.assert_allclose(t, -np.asarray(shift), atol=2.0)
    assert res.cmc_count >= 0.8 * len(pa.level(1).rc)
    assert res.correlation > 0.9
    # the helper overlays b on a: the aligned copy equals a where both are valid
    a_arr, b_al = aligned_pair(a, b, res)
    m = np.isfinite(a_arr) & np.isfinite(b_al)
    assert m.sum() > 0.8 * np.isfinite(a_arr).sum()
    assert np.corrcoef(a_arr[m], b_al[m])[0, 1] > 0.9
    # every congruent cell's centre lands in b where the true transform puts it
    c_a = (np.array(a.shape) - 1) / 2
    for cell in res.cells:
        if cell["direction"] == "a_to_b" and cell["congruent"]:
            r0, c0, h, w = cell["ref_box_px"]
            p = np.array([r0 + (pa.level(1).cell_shape[0] - 1) / 2, c0 + (pa.level(1).cell_shape[1] - 1) / 2])
            truth = c_a + rotation_matrix(phi) @ (p - c_a - np.asarray(shift))
            assert np.hypot(*(np.array(cell["target_centre_px"]) - truth)) < 4


def test_noise_has_no_congruent_cells(fadul, pa):
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(0)
    a = fadul[0]
    noise = gaussian_filter(rng.normal(size=a.shape), 1.0) * 1e-6
    noise[~a.mask] = np.nan
    res = compare(pa, scan_from_array(noise, a.spacing, name="noise"))
    assert res.cmc_count == 0
    assert res.cmc_score == 0.0
    assert res.score_kind == "learned" and res.score < 0   # the learned score leans to different
    assert all(d["cmc_count"] == 0 for d in res.directions.values())
    assert res.correlation is None or abs(res.correlation) < 0.1


def test_different_firearm_scores_below_same_firearm(fadul):
    same = compare(fadul[0], fadul[1])
    diff = compare(fadul[0], fadul[2])
    assert same.cmc_count >= 10 and diff.cmc_count <= 2
    assert same.score > diff.score
    assert abs(same.rotation_deg - (-22.5)) <= 4.5        # cmcR finds -21 (processed) / -24 (raw)


def test_result_contract_and_json(fadul, pa):
    res = compare(pa, fadul[1], "original", **FAST)
    assert isinstance(res, Comparison) and res.method == "original"
    assert isinstance(res.cmc_count, int) and isinstance(res.score, float) and math.isfinite(res.score)
    assert set(res.directions) == {"a_to_b", "b_to_a"}
    for d in res.directions.values():
        assert {"cmc_count", "rotation_deg", "translation_px", "passed"} <= set(d)
    keys = {"direction", "row", "col", "ref_box_px", "target_centre_px", "rotation_deg", "dy_px", "dx_px",
            "ncc", "congruent"}
    assert res.cells and all(keys <= set(c) for c in res.cells)
    assert {c["direction"] for c in res.cells} == {"a_to_b", "b_to_a"}
    assert set(res.rotation_curve) == {"a_to_b", "b_to_a"}
    assert [t for t, _ in res.rotation_curve["a_to_b"]] == list(np.arange(-12.0, 12.1, 3.0))
    assert res.params["rotation_range"] == (-12.0, 12.0) and res.params["corr_threshold"] == 0.5
    assert res.inputs[0]["checksum"] == fadul[0].checksum and res.inputs[1]["sha256"] == fadul[1].provenance.sha256
    from ballistics import __version__
    assert res.library_version == __version__
    d = json.loads(res.to_json())
    assert d["cmc_count"] == res.cmc_count and len(d["cells"]) == len(res.cells)
    back = Comparison.from_dict(d)
    assert back.cmc_count == res.cmc_count and back.rotation_deg == res.rotation_deg
    assert res.cells_table() == res.cells and res.cells_table() is not res.cells
    assert "Fadul 1-1 vs Fadul 1-2" in res.summary() and "\n" not in res.summary()
    assert res.params["handedness"] == "as_given" and res.params["method"] == "original"
    assert res.mirrored is False and d["mirrored"] is False and d["warnings"] == res.warnings
    # non-default parameters: no LR from the shipped system, and the reason is given
    assert res.llr is None and any("outside the domain" in w for w in res.warnings)


def test_prepared_and_plain_give_same_result(fadul, pa):
    r1 = compare(pa, prepare(fadul[1]), **FAST)
    r2 = compare(fadul[0], fadul[1], **FAST)
    assert r1.to_dict()["cells"] == r2.to_dict()["cells"] and r1.cmc_count == r2.cmc_count
    assert isinstance(pa, PreparedScan) and prepare(pa) is pa


@pytest.mark.parametrize("method", METHODS)
def test_methods_agree_on_a_match(fadul, pa, method):
    res = compare(pa, fadul[1], method, preset="cmcr", rotation_range=(-27, -18))
    assert res.cmc_count >= 8
    assert -27 <= res.rotation_deg <= -18


def test_align_returns_scan_in_a_frame(fadul, pa):
    res = compare(pa, fadul[1], **FAST)
    al = align(fadul[1], res)
    assert al.shape == fadul[0].shape and al.provenance.steps[-1]["step"] == "align_to_reference"
    m = al.mask & fadul[0].mask
    assert np.corrcoef(al.data[m], fadul[0].data[m])[0, 1] == pytest.approx(res.correlation)


def test_incompatible_inputs_raise(fadul):
    a = fadul[0]
    other = scan_from_array(a.data, (a.spacing[0] * 1.05, a.spacing[1] * 1.05), name="coarser")
    with pytest.raises(ComparisonError, match="spacing"):
        compare(a, other)
    img = scan_from_array(np.nan_to_num(a.data), a.spacing, kind="intensity", name="image")
    with pytest.raises(ComparisonError, match="kind|intensity"):
        compare(a, img)
    with pytest.raises(ParameterError, match="method"):
        compare(a, fadul[1], method="magic")
    with pytest.raises(ParameterError, match="parameter"):
        compare(a, fadul[1], corr_treshold=0.4)
    with pytest.raises(ParameterError, match="preset"):
        compare(a, fadul[1], preset="fast")
    with pytest.raises(ComparisonError):
        compare(a, "not a scan")


@pytest.mark.parametrize("bad, match", [
    ({"corr_threshold": 1.5}, "corr_threshold"), ({"min_valid": 0}, "min_valid"),
    ({"rotation_step": -3}, "rotation_step"), ({"rotation_range": (30, -30)}, "rotation_range"),
    ({"cell_grid": (8,)}, "cell_grid"), ({"cell_grid": (0, 8)}, "cell_grid"), ({"tau": 1.5}, "tau"),
    ({"coarse_step": float("nan")}, "coarse_step"), ({"workers": 0}, "workers"),
    ({"handedness": "left"}, "handedness"), ({"high_fallback": "max"}, "high_fallback"),
    ({"require_consistency": "yes"}, "require_consistency"), ({"correlation": "cmcr"}, "Unknown"),
])
def test_parameters_are_range_checked(fadul, bad, match):
    with pytest.raises(ParameterError, match=match):
        compare(fadul[0], fadul[1], **bad)
    with pytest.raises(ParameterError, match=match):
        CompareParams().replace(**bad)


def test_params_are_a_frozen_validated_dataclass():
    p = PRESETS["default"]
    assert isinstance(p, CompareParams) and p.handedness == "both" and p.coarse_step == 6.0
    assert (p.coarse_factor, p.fine_factor) == (6, 2) and PRESETS["cmcr"].coarse_step is None
    assert (p.handedness_decision, p.mirror_margin) == ("evidence", 6)
    with pytest.raises(AttributeError):
        p.corr_threshold = 0.9          # frozen
    q = p.replace(corr_threshold=0.6, rotation_range=[-30, 30])
    assert q.corr_threshold == 0.6 and q.rotation_range == (-30.0, 30.0) and p.corr_threshold == 0.5
    assert PRESETS["cmcr"].pipeline == "cmcr" and PRESETS["cmcr"].handedness == "as_given"
    assert set(q.to_dict()) == set(CompareParams.names())


def test_little_valid_data(fadul):
    a = fadul[0]
    empty = np.full(a.shape, np.nan)
    empty[10:14, 10:14] = 1e-6
    with pytest.raises(EmptyScanError):
        compare(a, scan_from_array(empty, a.spacing, name="speck"))
    # two usable cells only: a clear (finite) result, never NaN scores
    few = np.full(a.shape, np.nan)
    few[:69, 207:345] = a.data[:69, 207:345]
    res = compare(a, scan_from_array(few, a.spacing, name="few"), "original", **FAST)
    assert math.isfinite(res.score)
    assert res.directions["b_to_a"]["n_cells"] == 2
    # the two cells are a's own pixels in place: found at rotation 0, no shift, ncc 1
    back = [c for c in res.cells if c["direction"] == "b_to_a"]
    assert all(c["ncc"] == pytest.approx(1.0) and c["rotation_deg"] == 0.0 for c in back)
    assert res.cmc_count <= 2
    json.loads(res.to_json())


def test_angle_helpers():
    assert circ_median(np.array([170.0, -170.0, 175.0])) == pytest.approx(175.0)
    assert circ_span(np.array([170.0, -170.0])) == pytest.approx(20.0)
    assert circ_span(np.array([0.0, 90.0, 180.0, 270.0])) == pytest.approx(270.0)


def test_cmcr_pipeline_reports_a_registration_that_aligns(fadul, pa):
    """preset='cmcr' runs cmcR's own cell pipeline; its consensus, converted to the
    Comparison convention, overlays the pair as well as the native pipeline's does."""
    res = compare(pa, fadul[1], "original", preset="cmcr", rotation_range=(-27, -18))
    assert res.params["pipeline"] == "cmcr"
    d = res.directions["a_to_b"]
    assert "cmcr_translation_px" in d and d["cmcr_translation_px"] != d["translation_px"]
    nat = compare(pa, fadul[1], "original", rotation_range=(-27, -18), coarse_step=None)
    assert np.allclose(d["translation_px"], nat.directions["a_to_b"]["translation_px"], atol=4)
    assert res.correlation is not None and res.correlation > 0.5
    al = align(fadul[1], res)
    m = al.mask & fadul[0].mask
    assert np.corrcoef(al.data[m], fadul[0].data[m])[0, 1] == pytest.approx(res.correlation)
    assert all(c["ref_box_px"][2] in (68, 69) for c in res.cells)     # imsplit's 69 / 68 px cells


def test_cmcr_pipeline_needs_the_full_grid(fadul):
    with pytest.raises(ParameterError, match="coarse_step"):
        compare(fadul[0], fadul[1], pipeline="cmcr")
    with pytest.raises(ParameterError, match="handedness"):
        compare(fadul[0], fadul[1], pipeline="cmcr", coarse_step=None, handedness="both")
    with pytest.raises(ParameterError, match="pipeline"):
        compare(fadul[0], fadul[1], pipeline="magic")


# ----------------------------------------------------------------------------- cmcR 0.1.11, exactly
CMCR_REF = Path(__file__).resolve().parents[1] / "data" / "cmcr_reference"


def _cmcr_inputs():
    bundled = {s.name: s for s in datasets.fadul("processed")}
    cmcr = {}
    for n in ("Fadul 1-1", "Fadul 1-2", "Fadul 2-1"):
        z = np.load(CMCR_REF / f"{n} processed by cmcR 0.1.11.npz")
        cmcr[n] = scan_from_array(z["heights_m"].astype(np.float64), tuple(z["spacing_m"]), name=n)
    return bundled, cmcr


@pytest.mark.parametrize("row", list(csv.DictReader(open(CMCR_REF / "counts_and_times.csv"))),
                         ids=lambda r: f"{r['input'][:14]}:{r['pair']}")
def test_cmcr_preset_reproduces_cmcr_exactly(row):
    """preset='cmcr' gives cmcR 0.1.11's counts, pass/fail and registration on all six
    reference rows (tests/data/cmcr_reference; 2020 rows on the bundled sample)."""
    bundled, cmcr = _cmcr_inputs()
    src = bundled if row["input"].startswith("fadul/processed") else cmcr
    n1, n2 = row["pair"].split(" vs ")
    res = compare(src[n1], src[n2], "original", preset="cmcr")
    d1, d2 = res.directions["a_to_b"], res.directions["b_to_a"]
    assert (d1["original_count"], d2["original_count"]) == (int(row["original_A_ref"]), int(row["original_B_ref"]))
    assert (d1["high_count"], d2["high_count"]) == (int(row["high_A_ref"]), int(row["high_B_ref"]))
    assert d1["high_passed"] is (row["high_A_status"] == "passed")
    assert d2["high_passed"] is (row["high_B_status"] == "passed")
    assert res.method_counts["high"] == int(row["combined_high"])
    # cmcR's registration: median of the cells' best (theta, x, y); its x is our row offset
    assert d1["rotation_deg"] == float(row["theta_A_ref_deg"])
    assert d1["cmcr_translation_px"] == [float(row["dx_A_ref_px"]), float(row["dy_A_ref_px"])]


def test_threads_switch_is_explicit_and_restored():
    import numba

    import ballistics
    from ballistics._threads import get_fft_workers
    before = numba.get_num_threads()
    with ballistics.threads(1):
        assert numba.get_num_threads() == 1 and get_fft_workers() == 1
    assert numba.get_num_threads() == before
    for bad in (0, -1, 1.5, "two", numba.config.NUMBA_NUM_THREADS + 1):
        with pytest.raises(ParameterError, match="threads"):
            ballistics.set_threads(bad)


@pytest.mark.parametrize("i, j", [(0, 1), (2, 3)])
def test_half_resolution_fine_stage_keeps_the_strong_cells_registration(fadul, i, j):
    """The default fine stage (``fine_factor=2``: whole region at half resolution, then
    +-3 px at full resolution) against the full-resolution search of the whole region
    (``fine_factor=1``) on the same rotations and priors of a same-slide pair: most cells
    that correlate (NCC >= 0.5 at full resolution) get exactly the same shift and NCC.
    Measured 91-94 % on these pairs; the rest are cells with two near-equal peaks."""
    from ballistics.comparison._search import _coarse, _fine
    p2 = PRESETS["default"]
    p1 = p2.replace(fine_factor=1)
    a, b = prepare(fadul[i]), prepare(fadul[j])
    cands = _coarse(a, b, p2)[0]
    f1, f2 = _fine(a, b, cands, p1), _fine(a, b, cands, p2)
    np.testing.assert_array_equal(f1.thetas, f2.thetas)
    strong = f1.ncc >= 0.5
    same = (f1.dy == f2.dy) & (f1.dx == f2.dx) & (np.abs(f1.ncc - f2.ncc) < 1e-6)
    assert strong.sum() >= 50
    assert (same & strong).sum() >= 0.85 * strong.sum()


def test_small_surfaces_are_searched_at_scales_that_keep_their_cells(fadul):
    """A surface too small for the default coarse scale (an 8 x 8 grid on 90 px leaves
    coarse cells of 2 px) is searched at lower downsampling factors instead of silently
    at a single rotation; the factors used are recorded in the result."""
    from ballistics.comparison._cells import downsample
    from ballistics.comparison._search import MIN_CELL_PX, fit_factors
    p = PRESETS["default"]
    full = [prepare(s) for s in fadul[:2]]
    assert fit_factors(p, *full) is p                       # 69 px cells: the defaults stand
    for f in (4, 6):
        small = [scan_from_array(downsample(s.data, f), (s.spacing[0] * f, s.spacing[1] * f), name=s.name)
                 for s in fadul[:2]]
        ps = [prepare(s) for s in small]
        q = fit_factors(p, *ps)
        side = min(ps[0].level(1).cell_shape)
        assert q.coarse_factor < p.coarse_factor and side / q.coarse_factor >= MIN_CELL_PX
        assert len(ps[0].level(q.coarse_factor).rc) > 0
        r = compare(ps[0], ps[1], lr_system=None)
        assert r.params["coarse_factor"] == q.coarse_factor and r.params["fine_factor"] == q.fine_factor
        assert len(r.rotation_curve["a_to_b"]) >= 60                # the whole circle was searched
        assert abs(r.directions["a_to_b"]["rotation_deg"] - (-24.0)) <= 6.0   # as at full size
