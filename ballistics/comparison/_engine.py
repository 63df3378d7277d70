"""The comparison driver: both directions, full grid or coarse-to-fine rotation search."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ComparisonError, EmptyScanError
from ..scan import Scan
from ._cells import PreparedScan, prepare
from ._cmcr import cmcr_features, native_translation, rotation_centre
from ._cmc_convergence import classify_convergence
from ._cmc_high import classify_high, cmc_theta_distribution, combine_directions
from ._cmc_original import classify_original
from ._features import Features, wrap
from ._ncc import match_cells
from ._registration import align_array, areal_correlation, rotation_matrix
from ._result import Comparison

log = logging.getLogger(__name__)

METHODS = ("original", "high", "convergence")

#: Default parameters (see :func:`compare` for their meaning and sources).
DEFAULTS: dict[str, Any] = {
    "cell_grid": (8, 8),                 # Song 2013; cmcR numCells = 64
    "min_valid": 0.15,                   # cmcR minObservedProp
    "region_min_valid": None,            # min valid fraction of a region's area (cmcR 0.15); None: min_valid x cell area
    "region_multiplier": 3,              # cmcR regionSizeMult = 9 (area) -> 3 x the side
    "corr_threshold": 0.5,               # Song 2013; cmcR corrThresh
    "translation_threshold_px": 20.0,    # cmcR xThresh = yThresh (at 6.25 um)
    "rotation_threshold_deg": 6.0,       # cmcR thetaThresh
    "tau": 1,                            # Tong et al. 2015
    "rotation_range": (-180.0, 180.0),   # any orientation
    "rotation_step": 3.0,                # cmcR
    "coarse_step": 6.0,                  # coarse-to-fine: coarse angular step (None = full grid)
    "coarse_factor": 4,                  # coarse-to-fine: downsampling of the coarse stage
    "n_candidates": 2,                   # coarse-to-fine: rotations refined per direction
    "fine_margin_px": None,              # coarse-to-fine: translation half-width at full resolution (None: region's)
    "high_fallback": "none",             # High CMC, a direction fails: "none" (0) or "original" (cmcR)
    "require_consistency": True,         # both directions' registrations must be inverse of each other
    "correlation": "masked",             # "masked" (Padfield 2012) or "cmcr"
    "min_overlap": 0.8,                  # masked NCC: overlap >= this fraction of the cell's valid pixels
    "spacing_tolerance": 0.01,           # relative spacing difference allowed between a and b
    "workers": 2,                        # FFT threads
    "pipeline": "native",                # "native" or "cmcr" (cmcR 0.1.11's cells, regions, CCF, correlation)
}

#: Named parameter sets. ``"cmcr"`` reproduces cmcR 0.1.11's settings.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cmcr": {"rotation_range": (-30.0, 30.0), "rotation_step": 3.0, "coarse_step": None,
             "correlation": "cmcr", "region_multiplier": 3, "high_fallback": "original",
             "region_min_valid": 0.15, "require_consistency": False, "pipeline": "cmcr"},
}


def _thetas(lo: float, hi: float, step: float) -> np.ndarray:
    if step <= 0:
        raise ComparisonError(f"rotation steps must be positive, got {step}")
    if hi - lo >= 360.0 - 1e-9:
        th = lo + step * np.arange(int(math.floor(360.0 / step + 1e-9)))
        th = th[th < lo + 360.0 - 1e-9]
    else:
        th = lo + step * np.arange(int(math.floor((hi - lo) / step + 1e-9)) + 1)
    return np.round(th, 9)


def _run_grid(ref, tgt, thetas, margin, mode, p, factor=1, prior=None, cache=False) -> Features:
    lr, lt = ref.level(factor), tgt.level(factor)
    T, K = len(thetas), len(lr.rc)
    ncc, dy, dx = np.full((T, K), np.nan), np.zeros((T, K)), np.zeros((T, K))
    for i, th in enumerate(thetas):
        pr = None
        if prior is not None:
            pr = np.broadcast_to(np.asarray(prior[i], float) / factor, (K, 2))
        rmv = p["region_min_valid"]
        if rmv is None:   # as many valid pixels as a cell needs
            rmv = p["min_valid"] * lr.cell_shape[0] * lr.cell_shape[1] / float((lr.cell_shape[0] + 2 * margin)
                                                                           * (lr.cell_shape[1] + 2 * margin))
        r = match_cells(lr, lt, float(th), margin, mode, prior=pr, min_valid=rmv,
                        min_overlap=p["min_overlap"], workers=p["workers"], cache=cache)
        ncc[i], dy[i], dx[i] = r["ncc"], r["dy"] * factor, r["dx"] * factor
    boxes = lr.boxes * factor if factor != 1 else lr.boxes
    return Features(np.asarray(thetas, float), ncc, dy, dx, lr.rc, boxes)


def _candidates(feat: Features, p: dict) -> tuple[list[tuple[float, np.ndarray]], list[tuple[float, int]]]:
    """Best rotations of the coarse stage with their consensus translation (full px)."""
    cand = cmc_theta_distribution(feat, p["corr_threshold"], p["translation_threshold_px"])
    counts = cand.sum(axis=1)
    tie = np.where(cand, np.nan_to_num(feat.ncc, nan=0.0), 0.0).sum(axis=1)
    order = sorted(range(len(feat.thetas)), key=lambda i: (counts[i], tie[i]), reverse=True)
    picked: list[int] = []
    for i in order:
        if len(picked) >= p["n_candidates"]:
            break
        if all(abs(wrap(feat.thetas[i] - feat.thetas[j])) > 2 * p["coarse_step"] - 1e-9 for j in picked):
            picked.append(i)
    out = []
    for i in picked:
        sel = cand[i] if cand[i].any() else np.isfinite(feat.ncc[i])
        if not sel.any():
            continue
        out.append((float(feat.thetas[i]), np.array([np.median(feat.dy[i, sel]), np.median(feat.dx[i, sel])])))
    curve = [(float(t), int(c)) for t, c in zip(feat.thetas, counts)]
    return out, curve


def _margin(ref: PreparedScan, p: dict) -> int:
    h, w = ref.level(1).cell_shape
    return int(round((p["region_multiplier"] - 1) / 2.0 * max(h, w)))


def _coarse(ref: PreparedScan, tgt: PreparedScan, p: dict):
    """Coarse stage: the whole rotation range on surfaces downsampled by coarse_factor."""
    lo, hi = p["rotation_range"]
    k = int(p["coarse_factor"])
    coarse = _run_grid(ref, tgt, _thetas(lo, hi, p["coarse_step"]), int(math.ceil(_margin(ref, p) / k)),
                       "masked", p, factor=k, cache=True)
    return _candidates(coarse, p)


def _fine(ref: PreparedScan, tgt: PreparedScan, cands, p: dict) -> Features:
    """Fine stage: full resolution around each candidate rotation and translation."""
    lo, hi = p["rotation_range"]
    half = math.floor(p["coarse_step"] / 2.0 / p["rotation_step"] + 1e-9) * p["rotation_step"]
    thetas, priors = [], []
    for th, t in cands:
        for d in np.arange(-half, half + 1e-9, p["rotation_step"]):
            x = float(th + d)
            if hi - lo < 360.0 - 1e-9 and not (lo - 1e-9 <= x <= hi + 1e-9):
                continue
            thetas.append(x)
            priors.append(t)
    if not thetas:
        thetas, priors = [float(cands[0][0]) if cands else 0.0], [np.zeros(2)]
    margin = _margin(ref, p) if p["fine_margin_px"] is None else int(p["fine_margin_px"])
    return _run_grid(ref, tgt, np.array(thetas), margin, p["correlation"], p,
                     prior=np.array(priors))


def _both_directions(pa: PreparedScan, pb: PreparedScan, p: dict):
    """Features of a_to_b and b_to_a, with the coarse CMC-theta curves (None on a full grid).

    Full grid: the reverse direction searches the mirrored range (-high..-low).
    Coarse-to-fine: each direction runs its own coarse stage and refines its own
    candidates, so the two registrations are independent estimates and their agreement
    (``require_consistency``) is evidence.  (Seeding the reverse direction with the
    inverse of the forward candidates was 40 % faster but made every pair consistent by
    construction: 10 % of the different-firearm Fadul pairs then had 6-24 CMCs.)
    """
    if p["pipeline"] == "cmcr":
        lo, hi = p["rotation_range"]
        th = _thetas(lo, hi, p["rotation_step"])
        # float32 FFTs: same counts as float64 on all six cmcR reference rows, 1.5x faster
        kw = dict(region_multiplier=float(p["region_multiplier"]), workers=p["workers"], float32=True,
                  max_missing=1.0 - float(p["region_min_valid"] if p["region_min_valid"] is not None
                                          else p["min_valid"]))
        return [("a_to_b", pa, pb, cmcr_features(pa.cmcr(), pb.scan.data, th, **kw), None),
                ("b_to_a", pb, pa, cmcr_features(pb.cmcr(), pa.scan.data, -th[::-1], **kw), None)]
    if p["coarse_step"] is None:
        lo, hi = p["rotation_range"]
        th = _thetas(lo, hi, p["rotation_step"])
        return [("a_to_b", pa, pb, _run_grid(pa, pb, th, _margin(pa, p), p["correlation"], p), None),
                ("b_to_a", pb, pa, _run_grid(pb, pa, -th[::-1], _margin(pb, p), p["correlation"], p), None)]
    cands, curve = _coarse(pa, pb, p)
    rcands, rcurve = _coarse(pb, pa, p)
    return [("a_to_b", pa, pb, _fine(pa, pb, cands, p), curve),
            ("b_to_a", pb, pa, _fine(pb, pa, rcands, p), rcurve)]


def _merge_curve(coarse: list | None, fine: list) -> list[tuple[float, int]]:
    if coarse is None:
        return fine
    out = {round(float(wrap(t)), 6): c for t, c in coarse}
    for t, c in fine:
        out[round(float(wrap(t)), 6)] = c
    return sorted(out.items())


def _pair_decision(ab: dict, ba: dict, m: str, p: dict):
    """Pair-level CMC count of method ``m`` and the two directions' (adjusted) decisions."""
    dab, dba = ab[m], ba[m]
    consistent = _consistent(dab["consensus"], dba["consensus"], p)
    if p["require_consistency"] and m != "original" and not consistent:
        # the directions disagree on the registration: no pair-level CMCs (see _consistent)
        dab, dba = [dict(d, count=0, congruent=np.zeros_like(d["congruent"]), passed=False,
                         inconsistent=True) if d["passed"] else d for d in (dab, dba)]
    if m == "high":
        cnt = combine_directions(dab, dba, ab["original"], ba["original"], ab["feat"].rc, ba["feat"].rc,
                                 fallback=p["high_fallback"])
    else:
        cnt = int(min(dab["count"], dba["count"]))
    return int(cnt), dab, dba, consistent


def _consistent(c_ab, c_ba, p: dict) -> bool:
    """True if the two directions' consensus registrations are inverse of each other.

    Direction b_to_a should find ``theta' = -theta`` and ``t' = -M(theta) t`` (see
    :class:`Comparison`); a pair whose directions agree within the rotation and
    translation thresholds is consistent.  cmcR's earlier combination rule
    (``cmcFilter_improved``, after Tong et al. 2015) required the same of the rotations.
    """
    if not (np.all(np.isfinite(c_ab)) and np.all(np.isfinite(c_ba))):
        return False
    th, t = float(c_ab[0]), np.array(c_ab[1:], float)
    if abs(float(wrap(th + c_ba[0]))) > p["rotation_threshold_deg"]:
        return False
    expect = -(rotation_matrix(th) @ t)
    return bool(np.all(np.abs(np.array(c_ba[1:], float) - expect) <= p["translation_threshold_px"]))


def _cmcr_to_native(feat: Features, cons, ref_shape, tgt_shape, p: dict) -> np.ndarray:
    """cmcR's consensus ``(theta, x, y)`` as the translation ``t`` of :class:`Comparison`'s
    convention ``x_b = c_b + M(theta) (x_a - c_a + t)`` (centres ``(n - 1) / 2``).

    cmcR's translation is relative to each cell's region at the cell's own pixel indices,
    in the target rotated about ``floor(n / 2)``; the median over the cells of the window
    offset it implies is converted (reporting and :func:`align` only; the decision rules
    use cmcR's values).
    """
    th = float(cons[0])
    K = feat.n_cells
    nat = np.stack(native_translation(feat.boxes, np.full(K, round(float(cons[1]))),
                                      np.full(K, round(float(cons[2]))), p["region_multiplier"]), 1)
    c_a = (np.asarray(ref_shape, float) - 1.0) / 2.0
    c_b = (np.asarray(tgt_shape, float) - 1.0) / 2.0
    c_rot = rotation_centre(tgt_shape)
    return rotation_matrix(th).T @ (c_rot - c_b) + np.median(nat, axis=0) - c_rot + c_a


def _resolve(method: str, preset: str, params: dict[str, Any]) -> dict[str, Any]:
    if method not in METHODS:
        raise ComparisonError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if preset not in PRESETS:
        raise ComparisonError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ComparisonError(f"Unknown comparison parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    p = dict(DEFAULTS)
    p.update(PRESETS[preset])
    p.update(params)
    p["cell_grid"] = tuple(int(x) for x in p["cell_grid"])
    p["rotation_range"] = tuple(float(x) for x in p["rotation_range"])
    if p["high_fallback"] not in ("none", "original"):
        raise ComparisonError(f"high_fallback must be 'none' or 'original', got {p['high_fallback']!r}")
    if p["pipeline"] not in ("native", "cmcr"):
        raise ComparisonError(f"pipeline must be 'native' or 'cmcr', got {p['pipeline']!r}")
    if p["pipeline"] == "cmcr" and p["coarse_step"] is not None:
        raise ComparisonError("pipeline='cmcr' evaluates every rotation (as cmcR); set coarse_step=None "
                              "or use preset='cmcr'.")
    if p["correlation"] not in ("masked", "cmcr"):
        raise ComparisonError(f"correlation must be 'masked' or 'cmcr', got {p['correlation']!r}")
    if p["rotation_range"][1] < p["rotation_range"][0]:
        raise ComparisonError(f"rotation_range must be (low, high) degrees, got {p['rotation_range']}")
    if p["region_multiplier"] < 1 or p["coarse_factor"] < 1 or p["n_candidates"] < 1:
        raise ComparisonError("region_multiplier, coarse_factor and n_candidates must be >= 1")
    p["method"] = method
    p["preset"] = preset
    return p


def _check_pair(a: Scan, b: Scan, tol: float) -> None:
    if a.kind != b.kind:
        raise ComparisonError(f"Cannot compare a {a.kind} surface ({a.name!r}) with a {b.kind} surface "
                              f"({b.name!r}); compare scans of the same kind.")
    for i, axis in enumerate(("dy", "dx")):
        sa, sb = a.spacing[i], b.spacing[i]
        if abs(sa - sb) > tol * max(sa, sb):
            raise ComparisonError(
                f"Pixel spacing differs: {a.name!r} has {axis} = {sa:.4g} m, {b.name!r} has {sb:.4g} m "
                f"(more than {100 * tol:g} %); resample one scan to the other's spacing first.")


def compare(a: "Scan | PreparedScan", b: "Scan | PreparedScan", method: str = "convergence", *,
            preset: str = "default", **params: Any) -> Comparison:
    """Compare two extracted surfaces with the Congruent Matching Cells method.

    Parameters
    ----------
    a, b : Scan or PreparedScan
        Extracted breech-face (or firing-pin) surfaces, heights in metres, same spacing
        (within ``spacing_tolerance``; resample first otherwise).  Pass the output of
        :func:`prepare` to reuse one scan's precomputation across many comparisons.
    method : {"convergence", "high", "original"}
        Decision rule: ``"convergence"`` Chen et al. (2017) (default: it separated the
        780 Fadul pairs best, see ``benchmarks/results_compare.md``); ``"high"`` Tong et
        al. (2015) with both directions combined as cmcR does; ``"original"`` Song (2013).
        The pair-level counts of all three are in ``Comparison.method_counts``.
    preset : {"default", "cmcr"}
        ``"default"``: rotations over the full circle, coarse-to-fine, masked NCC.
        ``"cmcr"``: cmcR 0.1.11's settings and cell pipeline (-30..30 deg by 3, full grid,
        ``pipeline="cmcr"``) for validation against cmcR; same counts as cmcR on its
        reference pairs (``benchmarks/results_compare.md`` section 3).
    **params
        Override any of :data:`DEFAULTS`:

        cell_grid : (int, int), default (8, 8)
            Cells over the reference's bounding box (Song 2013).
        min_valid : float, default 0.15
            Minimum valid fraction of a cell (cmcR ``minObservedProp``).
        region_min_valid : float or None, default None
            Minimum valid fraction of a target region's area (cmcR: 0.15, preset
            ``"cmcr"``); None: the region must hold ``min_valid`` x the cell's area, so a
            border cell whose region sticks out of the target is still matched.
        region_multiplier : float, default 3
            Region side / cell side: the translation search is +-(m - 1) / 2 cell sides
            (cmcR regionSizeMult = 9 in area).
        corr_threshold : float, default 0.5
            Minimum cell correlation of a CMC (Song 2013; cmcR).
        translation_threshold_px : float, default 20
            Maximum distance (pixels) of a CMC's translation from the consensus (cmcR,
            20 px = 125 um at 6.25 um).
        rotation_threshold_deg : float, default 6
            Maximum rotation difference (original rule) / width of the High-CMC peak.
        tau : int, default 1
            High CMC: rotations with count >= max - tau are "high" (Tong et al. 2015).
        rotation_range : (float, float), default (-180, 180)
            Rotations of the target searched, degrees (a range of 360 = the full circle).
        rotation_step : float, default 3
            Final angular step, degrees.
        coarse_step : float or None, default 6
            Coarse-to-fine search: the full range is first scanned at this step on
            surfaces downsampled by ``coarse_factor`` (default 4); the ``n_candidates``
            (default 2) best rotations are refined at full resolution within
            +-coarse_step / 2 at ``rotation_step``, translations searched within
            ``fine_margin_px`` (default None: the region's own margin, +-1 cell side) of
            the coarse estimate.  A narrow window (e.g. 32 px) is 2.4x faster but confines
            non-matching cells' translations so that they pass the translation check.  None = evaluate every rotation of the range at full resolution
            (as cmcR).
        require_consistency : bool, default True
            ``"high"``/``"convergence"``: a direction only keeps its CMCs if the two
            directions' consensus registrations are inverse of each other within the
            rotation and translation thresholds (False in preset ``"cmcr"``, as cmcR 0.1.11).
        high_fallback : {"none", "original"}
            High CMC count of a pair when a direction fails: ``"original"`` = the smaller
            original-rule count (cmcR; preset ``"cmcr"``), ``"none"`` = 0 (default: after
            a coarse-to-fine search every refined cell's rotation lies near the candidate,
            so the original rule's rotation check cannot reject anything and its count
            is no fair fallback).
        correlation : {"masked", "cmcr"}, default "masked"
            Cell correlation of the native pipeline: pairwise-complete masked NCC
            (Padfield 2012), or the zero-filled FFT translation + pairwise-complete
            correlation at it (an approximation of cmcR's, usable with coarse-to-fine).
        pipeline : {"native", "cmcr"}, default "native"
            ``"cmcr"`` (preset ``"cmcr"``): cmcR 0.1.11's cell comparison step for step
            (``ballistics.comparison._cmcr``: ``imager::imsplit`` cell grid, regions at
            the cells' own pixel indices in the target rotated about ``floor(n / 2)``,
            cartridges3D's zero-padded FFT cross-correlation window, the aligned target
            cell's pairwise-complete correlation).  Reproduces cmcR's counts exactly on
            all six reference rows; translations are cmcR's (relative to each cell's
            region, rows and columns), only with ``coarse_step=None``.
        min_overlap : float, default 0.8
            Masked NCC: minimum overlap, fraction of the cell's valid pixels.  Smaller
            overlaps let the maximum over all shifts pick spurious high correlations on
            few pixels (0.5 gave different-firearm Fadul pairs up to 24 CMCs, 0.8 none).
        workers : int, default 2
            Threads for the FFTs.

    Returns
    -------
    Comparison
        See its documentation for the direction and sign conventions.

    Raises
    ------
    ComparisonError
        Incompatible inputs (kind, spacing) or parameters.
    EmptyScanError
        A surface has too little valid data to form cells.

    References
    ----------
    Song (2013) AFTE J. 45(2); Tong, Song, Chu (2015) J. Res. NIST 120; Chen et al. (2017)
    Forensic Sci. Int. 280; Padfield (2012) IEEE TIP 21(5); Zemmels, Hofmann & VanderPlas,
    cmcR (R package) and "A study in reproducibility: the Congruent Matching Cells
    algorithm and cmcR package" (2023).
    """
    t0 = time.perf_counter()
    p = _resolve(method, preset, params)
    pa = prepare(a, p["cell_grid"], p["min_valid"])
    pb = prepare(b, p["cell_grid"], p["min_valid"])
    _check_pair(pa.scan, pb.scan, p["spacing_tolerance"])

    results: dict[str, dict[str, Any]] = {}
    for name, ref, tgt, feat, coarse_curve in _both_directions(pa, pb, p):
        orig = classify_original(feat, p["corr_threshold"], p["translation_threshold_px"], p["rotation_threshold_deg"])
        fine_curve = [(float(t), int(c)) for t, c in zip(
            feat.thetas, cmc_theta_distribution(feat, p["corr_threshold"], p["translation_threshold_px"]).sum(1))]
        curve = _merge_curve(coarse_curve, fine_curve)
        high = classify_high(feat, p["corr_threshold"], p["translation_threshold_px"], p["rotation_threshold_deg"],
                             p["tau"], pass_curve=coarse_curve)
        conv = classify_convergence(feat, p["corr_threshold"], p["translation_threshold_px"],
                                    p["rotation_threshold_deg"], pass_curve=curve if coarse_curve else None)
        results[name] = {"feat": feat, "original": orig, "high": high, "convergence": conv, "curve": curve,
                         "ref": ref, "tgt": tgt}

    ab, ba = results["a_to_b"], results["b_to_a"]
    method_counts = {}
    for m in METHODS:
        cnt, dab, dba, cons_m = _pair_decision(ab, ba, m, p)
        method_counts[m] = cnt
        if m == method:
            cmc, consistent = cnt, cons_m
            ab[method], ba[method] = dab, dba

    directions, cells = {}, []
    congruent_ncc = []
    for name, r in results.items():
        dec = r[method]
        cons = dec["consensus"]
        if not np.all(np.isfinite(cons)):
            cons = r["original"]["consensus"]
        feat, ref, tgt = r["feat"], r["ref"], r["tgt"]
        t_out = [float(cons[1]), float(cons[2])]
        if p["pipeline"] == "cmcr" and np.all(np.isfinite(cons)):
            t_out = [float(x) for x in _cmcr_to_native(r["feat"], cons, ref.scan.shape, tgt.scan.shape, p)]
        directions[name] = {
            "cmc_count": int(dec["count"]), "rotation_deg": float(cons[0]),
            "translation_px": t_out,
            "passed": None if dec["passed"] is None else bool(dec["passed"]),
            "original_count": int(r["original"]["count"]), "high_count": int(r["high"]["count"]),
            "high_passed": bool(r["high"]["passed"]), "convergence_count": int(r["convergence"]["count"]),
            "n_cells": int(feat.n_cells), "reference": ref.name, "target": tgt.name,
            "consistent": bool(consistent),
        }
        if p["pipeline"] == "cmcr":   # cmcR's own (x, y): relative to each cell's region
            directions[name]["cmcr_translation_px"] = [float(cons[1]), float(cons[2])]
        H, W = ref.scan.shape
        c_ref = np.array([(H - 1) / 2.0, (W - 1) / 2.0])
        c_tgt = np.array([(tgt.scan.shape[0] - 1) / 2.0, (tgt.scan.shape[1] - 1) / 2.0])
        cmcr = p["pipeline"] == "cmcr"
        if cmcr:   # window offsets in the rotated target (cmcR's x, y are relative to its region)
            nat = np.stack(native_translation(feat.boxes, np.nan_to_num(dec["dy"]), np.nan_to_num(dec["dx"]),
                                              p["region_multiplier"]), axis=1).astype(float)
            c_rot = rotation_centre(tgt.scan.shape)
        for k in range(feat.n_cells):
            r0, c0, h, w = (int(x) for x in feat.boxes[k])
            p_ = feat.boxes[k, :2].astype(float) + (feat.boxes[k, 2:].astype(float) - 1.0) / 2.0
            th = float(dec["theta"][k])
            t = np.array([dec["dy"][k], dec["dx"][k]], float)
            if cmcr:
                tc = c_rot + rotation_matrix(th) @ (p_ + nat[k] - c_rot)
            else:
                tc = c_tgt + rotation_matrix(th) @ (p_ - c_ref + t)
            ncc = float(dec["ncc"][k])
            cong = bool(dec["congruent"][k])
            if cong:
                congruent_ncc.append(ncc)
            cells.append({"direction": name, "row": int(feat.rc[k, 0]), "col": int(feat.rc[k, 1]),
                          "ref_box_px": [r0, c0, min(h, H - r0), min(w, W - c0)],
                          "target_centre_px": [float(tc[0]), float(tc[1])], "rotation_deg": th,
                          "dy_px": float(t[0]), "dx_px": float(t[1]),
                          "ncc": ncc if math.isfinite(ncc) else None, "congruent": cong})

    rot = directions["a_to_b"]["rotation_deg"]
    tpx = directions["a_to_b"]["translation_px"]
    corr = None
    if np.all(np.isfinite([rot, *tpx])):
        b_al = align_array(pb.scan.data, pa.scan.shape, rot, tpx)
        corr = areal_correlation(pa.scan.data, b_al)
    score = float(cmc + (np.mean(congruent_ncc) if (cmc > 0 and congruent_ncc) else 0.0))
    score = min(score, cmc + 0.999999) if cmc > 0 else 0.0
    sy, sx = pa.scan.spacing
    params_out = dict(p)
    params_out["translation_threshold_m"] = p["translation_threshold_px"] * sx
    params_out["pixel_spacing_m"] = [sy, sx]
    return Comparison(
        method=method, cmc_count=int(cmc), score=score, rotation_deg=float(rot),
        translation_m=(float(tpx[0] * sy), float(tpx[1] * sx)), correlation=corr,
        directions=directions, cells=cells,
        rotation_curve={k: [(float(t), int(c)) for t, c in v["curve"]] for k, v in results.items()},
        params=params_out, library_version=__version__,
        inputs=[{"name": s.scan.name, "sha256": s.scan.provenance.sha256, "checksum": s.checksum}
                for s in (pa, pb)],
        elapsed_s=float(time.perf_counter() - t0), a_name=pa.name, b_name=pb.name,
        method_counts=method_counts,
        frames={"a_shape": list(pa.scan.shape), "b_shape": list(pb.scan.shape),
                "convention": "x_b = c_b + M(theta) (x_a - c_a + t); theta clockwise as displayed"},
    )


__all__ = ["compare", "METHODS", "DEFAULTS", "PRESETS", "EmptyScanError"]
