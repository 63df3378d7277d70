"""The comparison driver: parameters, the search of both directions, the decision rules
and the result (``_search`` holds the native search, ``_cmcr`` cmcR's pipeline)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from .._budget import check_compare_budget
from .._threads import with_compute_threads
from .._version import __version__
from ..errors import ComparisonError, EmptyScanError
from ..scan import Scan
from ._cells import PreparedScan, prepare
from ._cmc_convergence import classify_convergence
from ._cmc_high import classify_high, cmc_theta_distribution, combine_directions
from ._cmc_original import classify_original
from ._cmcr import cmcr_features, native_translation, rotation_centre
from ._evidence import attach_evidence
from ._features import Features, wrap
from ._learned import learned_score
from ._params import METHODS, PRESETS, CompareParams, resolve
from ._registration import align_array, areal_correlation, rotation_matrix
from ._result import Comparison
from ._search import Direction, Search, fit_factors, search, thetas

log = logging.getLogger(__name__)

#: The default parameters (``PRESETS["default"]``).
DEFAULTS: CompareParams = PRESETS["default"]

MIRROR_WARNING = ("b matched as a mirror image (rows reversed) of its scan: the two files have opposite "
                  "handedness. Check both files' provenance (instrument export, conversion route) before "
                  "relying on this comparison.")


def _cmcr_search(pa: PreparedScan, pb: PreparedScan, p: CompareParams) -> Search:
    """cmcR 0.1.11's pipeline, both directions over the full grid (``_cmcr``)."""
    from ._search import _workers
    lo, hi = p.rotation_range
    th = thetas(lo, hi, p.rotation_step)
    # float32 FFTs: same counts as float64 on all six cmcR reference rows, 1.5x faster
    min_valid = p.region_min_valid if p.region_min_valid is not None else p.min_valid
    kw: dict[str, Any] = dict(region_multiplier=float(p.region_multiplier), workers=_workers(p), float32=True,
                              max_missing=1.0 - float(min_valid))
    return Search([Direction("a_to_b", pa, pb, cmcr_features(pa.cmcr(), pb.scan.data, th, **kw)),
                   Direction("b_to_a", pb, pa, cmcr_features(pb.cmcr(), pa.scan.data, -th[::-1], **kw))])


def _merge_curve(coarse: list | None, fine: list) -> list[tuple[float, int]]:
    if coarse is None:
        return fine
    out = {round(float(wrap(t)), 6): c for t, c in coarse}
    for t, c in fine:
        out[round(float(wrap(t)), 6)] = c
    return sorted(out.items())


def _pair_decision(ab: dict, ba: dict, m: str, p: CompareParams):
    """Pair-level CMC count of method ``m`` and the two directions' (adjusted) decisions."""
    dab, dba = ab[m], ba[m]
    consistent = _consistent(dab["consensus"], dba["consensus"], p)
    if p.require_consistency and m != "original" and not consistent:
        # the directions disagree on the registration: no pair-level CMCs (see _consistent)
        dab, dba = [dict(d, count=0, congruent=np.zeros_like(d["congruent"]), passed=False,
                         inconsistent=True) if d["passed"] else d for d in (dab, dba)]
    if m == "high":
        cnt = combine_directions(dab, dba, ab["original"], ba["original"], ab["feat"].rc, ba["feat"].rc,
                                 fallback=p.high_fallback)
    else:
        cnt = int(min(dab["count"], dba["count"]))
    return int(cnt), dab, dba, consistent


def _consistent(c_ab, c_ba, p: CompareParams) -> bool:
    """True if the two directions' consensus registrations are inverse of each other.

    Direction b_to_a should find ``theta' = -theta`` and ``t' = -M(theta) t`` (see
    :class:`Comparison`); a pair whose directions agree within the rotation and
    translation thresholds is consistent.  cmcR's earlier combination rule
    (``cmcFilter_improved``, after Tong et al. 2015) required the same of the rotations.
    """
    if not (np.all(np.isfinite(c_ab)) and np.all(np.isfinite(c_ba))):
        return False
    th, t = float(c_ab[0]), np.array(c_ab[1:], float)
    if abs(float(wrap(th + c_ba[0]))) > p.rotation_threshold_deg:
        return False
    expect = -(rotation_matrix(th) @ t)
    return bool(np.all(np.abs(np.array(c_ba[1:], float) - expect) <= p.translation_threshold_px))


def _cmcr_to_native(feat: Features, cons, ref_shape, tgt_shape, p: CompareParams) -> np.ndarray:
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
                                      np.full(K, round(float(cons[2]))), p.region_multiplier), 1)
    c_a = (np.asarray(ref_shape, float) - 1.0) / 2.0
    c_b = (np.asarray(tgt_shape, float) - 1.0) / 2.0
    c_rot = rotation_centre(tgt_shape)
    return rotation_matrix(th).T @ (c_rot - c_b) + np.median(nat, axis=0) - c_rot + c_a


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


@with_compute_threads()
def compare(a: Scan | PreparedScan, b: Scan | PreparedScan, method: str = "convergence", *,
            preset: str | CompareParams = "default", lr_system: Any = "default", **params: Any) -> Comparison:
    """Compare two extracted surfaces with the Congruent Matching Cells method.

    Parameters
    ----------
    a, b : Scan or PreparedScan
        Extracted breech-face (or firing-pin) surfaces, heights in metres, same spacing
        (within ``spacing_tolerance``; resample first otherwise).  Pass the output of
        :func:`prepare` to reuse one scan's precomputation across many comparisons.
    method : {"convergence", "high", "original"}
        Decision rule: ``"convergence"`` Chen et al. (2017) (default); ``"high"`` Tong et
        al. (2015) with both directions combined as cmcR does; ``"original"`` Song (2013).
        The pair-level counts of all three are in ``Comparison.method_counts``.
    preset : {"default", "cmcr"} or CompareParams
        ``"default"``: rotations over the full circle, coarse-to-fine, masked NCC, both
        handedness.  ``"cmcr"``: cmcR 0.1.11's settings and cell pipeline (-30..30 deg
        by 3, full grid, ``pipeline="cmcr"``, as given) for validation against cmcR;
        exactly cmcR's counts on its six reference rows
        (``tests/data/cmcr_reference``).  A :class:`CompareParams` is used as given.
    **params
        Override any field of :class:`CompareParams` (validated; ParameterError if out of
        range or unknown).  Each field documents its rule, unit, meaning and source
        (``CompareParams.describe()``): the cell grid, thresholds, the rotation range and
        steps of the coarse-to-fine search, the handedness rule, the masked NCC's minimum
        overlap, and more.  Non-default values take the comparison outside the domain of
        the shipped LR systems (no LR unless ``lr_system`` names one).

    lr_system : str, path-like, LRSystem or None, default "default"
        Likelihood-ratio system that turns the score into a bounded log10 LR
        (``Comparison.llr``, ``llr_interval``, ``lr``).  ``"default"``: the shipped system
        whose declared domain (instrument family, pixel size, processing, comparison
        parameters) covers the pair, and no LR (``llr=None``, the reason in ``warnings``)
        when none does.  A shipped system's name or a lab's own system file gives an LR
        even outside its domain, marked as outside its validation.  None: no LR.

    Returns
    -------
    Comparison
        See its documentation for the direction, sign and handedness conventions.
        ``score`` is the learned score (native pipeline; ``cmc_score`` keeps the CMC
        score) and ``llr`` the calibrated log10 likelihood ratio.

    Raises
    ------
    ParameterError
        An unknown method, preset or parameter, or a value out of range.
    ComparisonError
        Incompatible inputs (kind, spacing).
    EmptyScanError
        A surface has too little valid data to form cells.
    ResourceLimitError
        A surface exceeds the pixel limit or the pair the memory budget
        (``ballistics._budget.COMPUTE_LIMITS``), checked before any work.

    References
    ----------
    Song (2013) AFTE J. 45(2); Tong, Song, Chu (2015) J. Res. NIST 120; Chen et al. (2017)
    Forensic Sci. Int. 280; Padfield (2012) IEEE TIP 21(5); Zemmels, Hofmann & VanderPlas,
    cmcR (R package) and "A study in reproducibility: the Congruent Matching Cells
    algorithm and cmcR package" (2023).
    """
    t0 = time.perf_counter()
    p = resolve(method, preset, params)
    check_compare_budget(a, b)
    pa = prepare(a, p.cell_grid, p.min_valid)
    pb = prepare(b, p.cell_grid, p.min_valid)
    _check_pair(pa.scan, pb.scan, p.spacing_tolerance)
    p = fit_factors(p, pa, pb)
    srch = _cmcr_search(pa, pb, p) if p.pipeline == "cmcr" else search(pa, pb, p)
    result = _result(pa, pb, srch, method, preset, p)
    if srch.alternative is not None:
        result = _decide_handedness(result, _result(pa, pb, srch.alternative, method, preset, p))
    result.elapsed_s = float(time.perf_counter() - t0)
    if result.warnings:
        log.warning("%s vs %s: %s", pa.name, pb.name, MIRROR_WARNING)
    return attach_evidence(result, lr_system, scans=(pa.scan, pb.scan))


def _final_evidence(r: Comparison) -> tuple[int, float]:
    """What decides the handedness of a comparison refined both ways: the pair-level
    (consistency-checked) CMC count, then the learned score."""
    return int(r.cmc_count), float(learned_score(r)) if r.params.get("pipeline", "native") == "native" else 0.0


def _decide_handedness(given: Comparison, mirror: Comparison) -> Comparison:
    """Of the comparison as given and with b mirrored (both refined), the one with the
    stronger final evidence: more CMCs, or as many (at least one) and a higher learned
    score.  The files as given win ties, and without a CMC in either handedness the files
    as given are kept: the larger of two chance scores would lift every different-source
    pair.  Both handedness' final CMC counts and learned scores are recorded in
    ``handedness``."""
    eg, em = _final_evidence(given), _final_evidence(mirror)
    win = mirror if (em[0] > eg[0] or (em[0] == eg[0] > 0 and em[1] > eg[1])) else given
    ev = {k: dict(v) for k, v in given.handedness.items()}
    for name, e in (("as_given", eg), ("mirrored", em)):
        ev.setdefault(name, {}).update(final_cmc=e[0], final_learned_score=e[1])
    win.handedness = ev
    return win


def _result(pa: PreparedScan, pb: PreparedScan, srch: Search, method: str, preset: Any,
            p: CompareParams) -> Comparison:
    """The comparison of one refined handedness (before its strength of evidence)."""
    cmcr = p.pipeline == "cmcr"

    results: dict[str, dict[str, Any]] = {}
    for d in srch.directions:
        feat, coarse_curve = d.feat, d.coarse_curve
        args = (p.corr_threshold, p.translation_threshold_px)
        orig = classify_original(feat, *args, p.rotation_threshold_deg)
        fine_curve = [(float(t), int(c)) for t, c in zip(feat.thetas, cmc_theta_distribution(feat, *args).sum(1))]
        curve = _merge_curve(coarse_curve, fine_curve)
        high = classify_high(feat, *args, p.rotation_threshold_deg, p.tau, pass_curve=coarse_curve)
        conv = classify_convergence(feat, *args, p.rotation_threshold_deg,
                                    pass_curve=curve if coarse_curve else None)
        results[d.name] = {"feat": feat, "original": orig, "high": high, "convergence": conv, "curve": curve,
                           "ref": d.ref, "tgt": d.tgt}

    ab, ba = results["a_to_b"], results["b_to_a"]
    method_counts = {}
    for m in METHODS:
        cnt, dab, dba, cons_m = _pair_decision(ab, ba, m, p)
        method_counts[m] = cnt
        if m == method:
            cmc, consistent = cnt, cons_m
            ab[method], ba[method] = dab, dba

    directions, cells = {}, []
    congruent_ncc: list[float] = []
    for name, r in results.items():
        dec = r[method]
        cons = dec["consensus"]
        if not np.all(np.isfinite(cons)):
            cons = r["original"]["consensus"]
        feat, ref, tgt = r["feat"], r["ref"], r["tgt"]
        t_out = [float(cons[1]), float(cons[2])]
        if cmcr and np.all(np.isfinite(cons)):
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
        if cmcr:   # cmcR's own (x, y): relative to each cell's region
            directions[name]["cmcr_translation_px"] = [float(cons[1]), float(cons[2])]
        cells.extend(_cell_rows(name, feat, dec, ref, tgt, p, congruent_ncc))

    rot = directions["a_to_b"]["rotation_deg"]
    tpx = directions["a_to_b"]["translation_px"]
    b_used = srch.directions[0].tgt
    corr = None
    if np.all(np.isfinite([rot, *tpx])):
        b_al = align_array(b_used.scan.data, pa.scan.shape, rot, tpx)
        corr = areal_correlation(pa.scan.data, b_al)
    score = float(cmc + (np.mean(congruent_ncc) if (cmc > 0 and congruent_ncc) else 0.0))
    score = min(score, cmc + 0.999999) if cmc > 0 else 0.0
    sy, sx = pa.scan.spacing
    params_out = p.to_dict()
    params_out.update(method=method, preset=preset if isinstance(preset, str) else "custom",
                      translation_threshold_m=p.translation_threshold_px * sx, pixel_spacing_m=[sy, sx])
    warnings = [MIRROR_WARNING] if (srch.mirrored and cmc > 0) else []
    return Comparison(
        method=method, cmc_count=int(cmc), score=score, rotation_deg=float(rot),
        translation_m=(float(tpx[0] * sy), float(tpx[1] * sx)), correlation=corr,
        directions=directions, cells=cells,
        rotation_curve={k: [(float(t), int(c)) for t, c in v["curve"]] for k, v in results.items()},
        params=params_out, library_version=__version__,
        inputs=[{"name": s.scan.name, "sha256": s.scan.provenance.sha256, "checksum": s.checksum}
                for s in (pa, pb)],
        elapsed_s=0.0, a_name=pa.name, b_name=pb.name,
        method_counts=method_counts,
        frames={"a_shape": list(pa.scan.shape), "b_shape": list(pb.scan.shape), "b_mirrored": srch.mirrored,
                "convention": "x_b = c_b + M(theta) (x_a - c_a + t); theta clockwise as displayed; "
                              "b's rows reversed first when b_mirrored"},
        mirrored=srch.mirrored, warnings=warnings, handedness=srch.evidence,
    )


def _cell_rows(name: str, feat: Features, dec: dict, ref: PreparedScan, tgt: PreparedScan, p: CompareParams,
               congruent_ncc: list[float]) -> list[dict[str, Any]]:
    """The per-cell table of one direction (target centres in the target's pixels)."""
    H, W = ref.scan.shape
    c_ref = np.array([(H - 1) / 2.0, (W - 1) / 2.0])
    c_tgt = np.array([(tgt.scan.shape[0] - 1) / 2.0, (tgt.scan.shape[1] - 1) / 2.0])
    cmcr = p.pipeline == "cmcr"
    if cmcr:   # window offsets in the rotated target (cmcR's x, y are relative to its region)
        nat = np.stack(native_translation(feat.boxes, np.nan_to_num(dec["dy"]), np.nan_to_num(dec["dx"]),
                                          p.region_multiplier), axis=1).astype(float)
        c_rot = rotation_centre(tgt.scan.shape)
    rows = []
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
        rows.append({"direction": name, "row": int(feat.rc[k, 0]), "col": int(feat.rc[k, 1]),
                     "ref_box_px": [r0, c0, min(h, H - r0), min(w, W - c0)],
                     "target_centre_px": [float(tc[0]), float(tc[1])], "rotation_deg": th,
                     "dy_px": float(t[0]), "dx_px": float(t[1]),
                     "ncc": ncc if math.isfinite(ncc) else None, "congruent": cong})
    return rows


__all__ = ["compare", "METHODS", "DEFAULTS", "PRESETS", "CompareParams", "EmptyScanError"]
