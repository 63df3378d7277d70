"""The rotation and translation search of one comparison (both directions, both handedness).

Native pipeline, coarse-to-fine (default):

1. **Coarse**: every rotation of the range at ``coarse_step`` on surfaces downsampled by
   ``coarse_factor``; each reference cell searched over its whole region (masked NCC).
   The CMC-theta curve (Tong et al. 2015) of this stage gives the ``n_candidates`` best
   rotations and their consensus translation.
2. **Handedness** (``handedness="both"``): both coarse stages (a->b and b->a) also run
   against ``b`` mirrored (rows flipped, as x3ptools' ``x3p_flip_y``).  A handedness'
   coarse evidence is its *consistent coarse peak* (:func:`consistent_peak`): the
   largest count that direction a->b reaches at some rotation while b->a reaches it at
   the inverse rotation.  With ``handedness_decision="evidence"`` (default) the mirror's
   coarse stage covers the whole grid; the coarse stage alone decides only when one
   handedness leads by more than ``mirror_margin`` cells, otherwise both handedness are
   refined (``Search.alternative``) and ``compare`` keeps the one with the stronger
   final, consistency-checked evidence.  On TopMatch scans of Ruger SR9 breech faces the
   wrong handedness' coarse peak is often as high as the right one's
   (``benchmarks/results_evidence.md``).  With ``handedness_decision="coarse"`` the
   mirror is screened on every 2nd rotation of the coarse grid (its b->a screen only
   where it could win, ``_mirror_screen``) and refined only if its consistent peak beats
   that of the files as given by more than ``mirror_margin`` cells.
3. **Fine**: around each candidate, rotations at ``rotation_step`` within
   +-coarse_step / 2; every cell searched over the whole region
   at ``fine_factor`` (default 2, half resolution) and then at full resolution within
   +-(``refine_px`` + ``fine_factor`` // 2) px of that optimum, or directly at full
   resolution (``fine_factor=1``) (masked NCC).

Each direction runs its own coarse stage, so the two registrations are independent
estimates whose agreement is evidence (``require_consistency``).

References
----------
Song (2013) AFTE J. 45(2); Tong, Song, Chu (2015) J. Res. NIST 120; Chen et al. (2017)
Forensic Sci. Int. 280; Padfield (2012) IEEE TIP 21(5).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._threads import get_fft_workers
from ..errors import ComparisonError
from ._cells import PreparedScan
from ._cmc_high import cmc_theta_distribution
from ._features import Features, wrap
from ._ncc import match_cells
from ._params import CompareParams

log = logging.getLogger(__name__)

__all__ = ["thetas", "Direction", "Search", "search", "consistent_peak", "fit_factors"]


def thetas(lo: float, hi: float, step: float) -> np.ndarray:
    """Rotations from ``lo`` to ``hi`` by ``step`` degrees (a 360-degree range: the circle once)."""
    if step <= 0:
        raise ComparisonError(f"rotation steps must be positive, got {step}")
    if hi - lo >= 360.0 - 1e-9:
        th = lo + step * np.arange(int(math.floor(360.0 / step + 1e-9)))
        th = th[th < lo + 360.0 - 1e-9]
    else:
        th = lo + step * np.arange(int(math.floor((hi - lo) / step + 1e-9)) + 1)
    return np.round(th, 9)


@dataclass
class Direction:
    """One direction's search: the reference, the target and the theta x cell table."""

    name: str
    ref: PreparedScan
    tgt: PreparedScan
    feat: Features
    coarse_curve: list[tuple[float, int]] | None = None


@dataclass
class Search:
    """Both directions of a comparison and the handedness they were refined in;
    ``alternative`` holds the other handedness' refined directions when neither won on
    the coarse evidence (``handedness_decision="evidence"``), for the final decision."""

    directions: list[Direction]
    mirrored: bool = False
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)
    alternative: Search | None = None


def _range(p: CompareParams, reverse: bool) -> tuple[float, float]:
    """The rotation range of direction a->b, or of b->a (``reverse``: ``(-high, -low)``)."""
    lo, hi = p.rotation_range
    return (-hi, -lo) if reverse else (lo, hi)


def _workers(p: CompareParams) -> int:
    return int(p.workers) if p.workers is not None else get_fft_workers()


#: Smallest cell side (pixels) of a downsampled search level.  The defaults keep 11-12 px
#: on Fadul's 6.25 um scans and 9 px on DFSC's 7.4 um scans (coarse_factor 6).
MIN_CELL_PX = 8


def fit_factors(p: CompareParams, pa: PreparedScan, pb: PreparedScan) -> CompareParams:
    """``p`` with ``coarse_factor`` and ``fine_factor`` lowered, where needed, so that the
    downsampled cells of both scans keep at least :data:`MIN_CELL_PX` pixels a side.

    Without this a small surface (e.g. 90 px across with an 8 x 8 grid at
    ``coarse_factor=6``) has no cell left at the coarse scale, and the search would
    silently fall back to a single rotation.  The lowered factors are recorded in the
    result's parameters (so an LR system fitted at the defaults warns about them).
    """
    if p.coarse_step is None or p.pipeline != "native":
        return p
    side = min(min(s.level(1).cell_shape) for s in (pa, pb))

    def fit(f: int) -> int:
        while f > 1 and side / f < MIN_CELL_PX:
            f -= 1
        return f

    cf, ff = fit(p.coarse_factor), fit(p.fine_factor)
    if (cf, ff) == (p.coarse_factor, p.fine_factor):
        return p
    log.info("%s vs %s: cells of %d px: coarse_factor %d -> %d, fine_factor %d -> %d (cells of at least %d px "
             "at every scale)", pa.name, pb.name, side, p.coarse_factor, cf, p.fine_factor, ff, MIN_CELL_PX)
    return p.replace(coarse_factor=cf, fine_factor=ff)


def margin(ref: PreparedScan, p: CompareParams) -> int:
    """Translation search half-width at full resolution: (multiplier - 1) / 2 cell sides."""
    h, w = ref.level(1).cell_shape
    return int(round((p.region_multiplier - 1) / 2.0 * max(h, w)))


def _region_min_valid(p: CompareParams, cell_shape: tuple[int, int], m: int) -> float:
    if p.region_min_valid is not None:
        return float(p.region_min_valid)
    h, w = cell_shape     # as many valid pixels as a cell needs
    return p.min_valid * h * w / float((h + 2 * m) * (w + 2 * m))


def _grid(ref: PreparedScan, tgt: PreparedScan, ths: np.ndarray, m: int, p: CompareParams,
          factor: int = 1, cache: bool = False) -> Features:
    """Every cell over its whole region (half-width ``m`` at this level) at each rotation."""
    lr, lt = ref.level(factor), tgt.level(factor)
    T, K = len(ths), len(lr.rc)
    ncc, dy, dx = np.full((T, K), np.nan), np.zeros((T, K)), np.zeros((T, K))
    rmv = _region_min_valid(p, lr.cell_shape, m)
    w = _workers(p)
    for i, th in enumerate(ths):
        r = match_cells(lr, lt, float(th), m, prior=None, min_valid=rmv, min_overlap=p.min_overlap,
                        workers=w, cache=cache)
        ncc[i], dy[i], dx[i] = r["ncc"], r["dy"] * factor, r["dx"] * factor
    boxes = lr.boxes * factor if factor != 1 else lr.boxes
    return Features(np.asarray(ths, float), ncc, dy, dx, lr.rc, boxes)


def _candidates(feat: Features, p: CompareParams):
    """Best rotations of the coarse stage with their consensus translation (full px), the
    coarse CMC-theta curve and the stage's evidence (peak count, its correlation sum)."""
    cand = cmc_theta_distribution(feat, p.corr_threshold, p.translation_threshold_px)
    counts = cand.sum(axis=1)
    tie = np.where(cand, np.nan_to_num(feat.ncc, nan=0.0), 0.0).sum(axis=1)
    order = sorted(range(len(feat.thetas)), key=lambda i: (counts[i], tie[i]), reverse=True)
    step = p.coarse_step if p.coarse_step is not None else p.rotation_step
    picked: list[int] = []
    for i in order:
        if len(picked) >= p.n_candidates:
            break
        if all(abs(wrap(feat.thetas[i] - feat.thetas[j])) > 2 * step - 1e-9 for j in picked):
            picked.append(i)
    out = []
    for i in picked:
        sel = cand[i] if cand[i].any() else np.isfinite(feat.ncc[i])
        if not sel.any():
            continue
        out.append((float(feat.thetas[i]), np.array([np.median(feat.dy[i, sel]), np.median(feat.dx[i, sel])])))
    curve = [(float(t), int(c)) for t, c in zip(feat.thetas, counts)]
    best = order[0] if order else None
    ev = {"coarse_max_cmc": int(counts[best]) if best is not None else 0,
          "coarse_ncc_sum": float(tie[best]) if best is not None else 0.0,
          "rotation_deg": float(feat.thetas[best]) if best is not None else float("nan")}
    return out, curve, ev


def _coarse_grid(p: CompareParams, reverse: bool = False, every: int = 1) -> np.ndarray:
    """The coarse stage's rotations (every ``every``-th); ``reverse``: direction b->a's."""
    assert p.coarse_step is not None   # the coarse stage runs only in coarse-to-fine searches
    return thetas(*_range(p, reverse), p.coarse_step)[::every]


def _coarse(ref: PreparedScan, tgt: PreparedScan, p: CompareParams, every: int = 1,
            reverse: bool = False, ths: np.ndarray | None = None):
    """The coarse stage; ``every > 1`` evaluates only every ``every``-th rotation of its grid
    (the mirrored handedness' screen); ``reverse`` searches direction b->a, whose
    rotations are the negated range; ``ths`` (degrees) replaces the grid."""
    k = p.coarse_factor
    if ths is None:
        ths = _coarse_grid(p, reverse, every)
    feat = _grid(ref, tgt, ths, int(math.ceil(margin(ref, p) / k)), p, factor=k, cache=True)
    return _candidates(feat, p)


# The mirror image's coarse stages are screened on every 2nd rotation of the coarse grid.
_SCREEN_EVERY = 2


def _match_fine(ref: PreparedScan, tgt: PreparedScan, th: float, prior: np.ndarray, m: int,
                p: CompareParams) -> dict[str, np.ndarray]:
    """Full-resolution features of every cell at one rotation, searched within ``m`` px of
    ``prior``: directly (``fine_factor == 1``) or at ``fine_factor`` then refined."""
    lr1, lt1 = ref.level(1), tgt.level(1)
    K = len(lr1.rc)
    w = _workers(p)
    f = p.fine_factor
    if f == 1:
        return match_cells(lr1, lt1, th, m, prior=np.broadcast_to(prior, (K, 2)),
                           min_valid=_region_min_valid(p, lr1.cell_shape, m),
                           min_overlap=p.min_overlap, workers=w)
    lrf, ltf = ref.level(f, aligned=True), tgt.level(f)
    mf = int(math.ceil(m / f))
    rf = match_cells(lrf, ltf, th, mf, prior=np.broadcast_to(prior / f, (len(lrf.rc), 2)),
                     min_valid=_region_min_valid(p, lrf.cell_shape, mf), min_overlap=p.min_overlap, workers=w)
    where = {(int(r), int(c)): i for i, (r, c) in enumerate(lrf.rc)}
    idx = np.array([where.get((int(r), int(c)), -1) for r, c in lr1.rc])
    ok = idx >= 0
    ok[ok] = np.isfinite(rf["ncc"][idx[ok]])
    t0 = np.tile(np.asarray(prior, float), (K, 1))
    t0[ok, 0] = rf["dy"][idx[ok]] * f
    t0[ok, 1] = rf["dx"][idx[ok]] * f
    # (the region's validity was judged at level f; the small local window is not re-judged)
    r1 = match_cells(lr1, lt1, th, p.refine_px + f // 2, prior=t0, min_valid=0.0, min_overlap=p.min_overlap,
                     workers=w)
    r1["ncc"] = np.where(ok, r1["ncc"], np.nan)
    return r1


def _fine(ref: PreparedScan, tgt: PreparedScan, cands, p: CompareParams, reverse: bool = False) -> Features:
    lo, hi = _range(p, reverse)
    assert p.coarse_step is not None   # the fine stage refines a coarse stage
    half = math.floor(p.coarse_step / 2.0 / p.rotation_step + 1e-9) * p.rotation_step
    ths, priors = [], []
    for th, t in cands:
        for d in np.arange(-half, half + 1e-9, p.rotation_step):
            x = float(th + d)
            if hi - lo < 360.0 - 1e-9 and not (lo - 1e-9 <= x <= hi + 1e-9):
                continue
            ths.append(x)
            priors.append(t)
    if not ths:
        ths, priors = [float(cands[0][0]) if cands else 0.0], [np.zeros(2)]
    m = margin(ref, p) if p.fine_margin_px is None else int(p.fine_margin_px)
    lr = ref.level(1)
    T, K = len(ths), len(lr.rc)
    ncc, dy, dx = np.full((T, K), np.nan), np.zeros((T, K)), np.zeros((T, K))
    for i, (th, pr) in enumerate(zip(ths, priors)):
        r = _match_fine(ref, tgt, th, np.asarray(pr, float), m, p)
        ncc[i], dy[i], dx[i] = r["ncc"], r["dy"], r["dx"]
    return Features(np.asarray(ths, float), ncc, dy, dx, lr.rc, lr.boxes)


def consistent_peak(ab: list[tuple[float, int]], ba: list[tuple[float, int]], tol: float) -> int:
    """The handedness evidence of a coarse stage: the largest ``c`` such that direction a->b
    has ``c`` CMC candidates at some rotation ``theta`` and direction b->a at least ``c``
    within ``tol`` degrees of ``-theta`` (the two registrations must be inverse of each
    other, as ``require_consistency`` demands of the final counts).

    Parameters
    ----------
    ab, ba : list of (float, int)
        CMC-theta curves (rotation in degrees, candidate count) of the two directions.
    tol : float
        Rotation tolerance, degrees.

    Returns
    -------
    int
        The consistent peak count (0 for empty curves).
    """
    if not ab or not ba:
        return 0
    tb = np.array([t for t, _ in ba], float)
    cb = np.array([c for _, c in ba], int)
    best = 0
    for t, c in ab:
        near = np.abs(wrap(tb + t)) <= tol + 1e-9
        if near.any():
            best = max(best, min(int(c), int(cb[near].max())))
    return best


def _on_grid(curve: list[tuple[float, int]], grid: np.ndarray) -> list[tuple[float, int]]:
    """The points of ``curve`` at the rotations of ``grid``."""
    keep = {round(float(t), 6) for t in grid}
    return [(t, c) for t, c in curve if round(float(t), 6) in keep]


@dataclass
class _Sweeps:
    """The coarse stage of both directions in one handedness."""

    tb: PreparedScan
    cands: list
    curve: list[tuple[float, int]]
    ev: dict[str, Any]
    rcands: list
    rcurve: list[tuple[float, int]]


def _sweeps(pa: PreparedScan, tb: PreparedScan, p: CompareParams, every: int = 1) -> _Sweeps:
    cands, curve, ev = _coarse(pa, tb, p, every)
    rcands, rcurve, _ = _coarse(tb, pa, p, every, reverse=True)
    return _Sweeps(tb, cands, curve, ev, rcands, rcurve)


def _mirror_screen(pa: PreparedScan, mb: PreparedScan, p: CompareParams, rgrid: np.ndarray, need: int,
                   tol: float) -> _Sweeps:
    """The mirror image's screen: direction a->b on every ``_SCREEN_EVERY``-th coarse
    rotation, then direction b->a only at the screen rotations within ``tol`` of the
    inverse of an a->b rotation whose count exceeds ``need`` (the count the mirror's
    consistent peak must exceed to win).  The decision is the same as with the whole
    b->a screen: a pair of rotations left out has an a->b count of at most ``need``.
    When rotations were left out and the mirror loses, ``consistent_peak`` is the peak
    over the rotations searched and ``consistent_peak_at_most`` bounds the whole screen's.
    """
    cands, curve, ev = _coarse(pa, mb, p, _SCREEN_EVERY)
    hot = np.array([t for t, c in curve if c > need], float)
    near = np.array([hot.size > 0 and bool(np.any(np.abs(wrap(hot + u)) <= tol + 1e-9)) for u in rgrid], bool)
    rcands, rcurve = [], []
    if near.any():
        rcands, rcurve, _ = _coarse(mb, pa, p, reverse=True, ths=rgrid[near])
    ev["consistent_peak"] = consistent_peak(curve, rcurve, tol)
    ev["screen_b_to_a_rotations"] = int(near.sum())
    if not near.all() and ev["consistent_peak"] <= need:
        ev["consistent_peak_at_most"] = int(need)
    return _Sweeps(mb, cands, curve, ev, rcands, rcurve)


def search(pa: PreparedScan, pb: PreparedScan, p: CompareParams) -> Search:
    """Both directions' features of a native-pipeline comparison (see the module docstring)."""
    lo, hi = p.rotation_range
    variants = ([(False, pb)] if p.handedness != "mirrored" else []) \
        + ([(True, pb.mirrored())] if p.handedness != "as_given" else [])
    tol = p.coarse_step if p.coarse_step is not None else p.rotation_step
    if p.coarse_step is None:        # every rotation at full resolution, both directions
        th = thetas(lo, hi, p.rotation_step)
        stage = {}
        for mir, tb in variants:
            feat = _grid(pa, tb, th, margin(pa, p), p)
            back = _grid(tb, pa, -th[::-1], margin(tb, p), p)
            _, curve, ev = _candidates(feat, p)
            ev["consistent_peak"] = consistent_peak(curve, _candidates(back, p)[1], tol)
            stage[mir] = (tb, feat, back, ev)
        mir = variants[0][0] if len(variants) == 1 else \
            stage[True][3]["consistent_peak"] > stage[False][3]["consistent_peak"] + p.mirror_margin
        evidence = {("mirrored" if k else "as_given"): v[3] for k, v in stage.items()}

        def found(m: bool) -> Search:
            tb, feat, back, _ = stage[m]
            return Search([Direction("a_to_b", pa, tb, feat), Direction("b_to_a", tb, pa, back)], m, evidence)
        if len(variants) == 2 and p.handedness_decision == "evidence" and not mir and \
                not stage[False][3]["consistent_peak"] > stage[True][3]["consistent_peak"] + p.mirror_margin:
            out = found(False)     # neither handedness leads clearly: the final evidence decides
            out.alternative = found(True)
            return out
        return found(bool(mir))
    if len(variants) == 1:
        mir = variants[0][0]
        sw = _sweeps(pa, variants[0][1], p)
        sw.ev["consistent_peak"] = consistent_peak(sw.curve, sw.rcurve, tol)
        evidence = {("mirrored" if mir else "as_given"): sw.ev}
    else:
        # both handedness: the files as given over the whole coarse grid, the mirror image
        # screened on every other rotation; the handedness evidence is compared on the
        # screen's rotations
        g = _sweeps(pa, pb, p)
        grid, rgrid = _coarse_grid(p, False, _SCREEN_EVERY), _coarse_grid(p, True, _SCREEN_EVERY)
        g.ev["consistent_peak"] = consistent_peak(_on_grid(g.curve, grid), _on_grid(g.rcurve, rgrid), tol)
        if p.handedness_decision == "evidence":
            return _search_by_evidence(pa, pb, p, g, tol)
        # "coarse": the mirror's full coarse stage runs and it is refined only if it wins
        need = g.ev["consistent_peak"] + p.mirror_margin      # what the mirror must exceed to win
        m = _mirror_screen(pa, variants[1][1], p, rgrid, need, tol)
        mir = m.ev["consistent_peak"] > need
        if mir:
            screened = m.ev
            m = _sweeps(pa, variants[1][1], p)
            m.ev["consistent_peak"] = screened["consistent_peak"]
        m.ev["screened"] = not mir
        evidence = {"as_given": g.ev, "mirrored": m.ev}
        sw = m if mir else g
    return Search([Direction("a_to_b", pa, sw.tb, _fine(pa, sw.tb, sw.cands, p), sw.curve),
                   Direction("b_to_a", sw.tb, pa, _fine(sw.tb, pa, sw.rcands, p, reverse=True), sw.rcurve)],
                  bool(mir), evidence)


def _refine(pa: PreparedScan, sw: _Sweeps, p: CompareParams) -> list[Direction]:
    return [Direction("a_to_b", pa, sw.tb, _fine(pa, sw.tb, sw.cands, p), sw.curve),
            Direction("b_to_a", sw.tb, pa, _fine(sw.tb, pa, sw.rcands, p, reverse=True), sw.rcurve)]


def _search_by_evidence(pa: PreparedScan, pb: PreparedScan, p: CompareParams, g: _Sweeps, tol: float) -> Search:
    """Handedness decided on the final evidence (``handedness_decision="evidence"``).

    The mirror image's coarse stage runs over the whole grid in both directions, like the
    files as given.  The coarse stage alone decides only when one handedness' consistent
    coarse peak leads the other's by more than ``mirror_margin`` cells; otherwise both
    are refined and :func:`~ballistics.comparison.compare` keeps the one with the
    stronger final, consistency-checked evidence.  Weak marks (e.g. TopMatch scans of
    Ruger SR9 breech faces) give flat coarse CMC-theta curves whose peaks do not tell
    the handedness.
    """
    m = _sweeps(pa, pb.mirrored(), p)
    g.ev["consistent_peak"] = consistent_peak(g.curve, g.rcurve, tol)
    m.ev["consistent_peak"] = consistent_peak(m.curve, m.rcurve, tol)
    m.ev["screened"] = False
    cg, cm = g.ev["consistent_peak"], m.ev["consistent_peak"]
    evidence = {"as_given": g.ev, "mirrored": m.ev}
    if cg > cm + p.mirror_margin:
        return Search(_refine(pa, g, p), False, evidence)
    if cm > cg + p.mirror_margin:
        return Search(_refine(pa, m, p), True, evidence)
    return Search(_refine(pa, g, p), False, evidence, alternative=Search(_refine(pa, m, p), True, evidence))
