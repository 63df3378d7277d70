"""The High CMC rule (Tong et al. 2015) and cmcR's combination of both directions.

For every rotation ``theta`` the cells whose translation is within
``translation_threshold_px`` of that rotation's median translation and whose correlation
is at least ``corr_threshold`` are CMC candidates; their number as a function of theta is
the "CMC-theta distribution".  The rotations whose count is at least ``max - tau`` are
"high"; the direction *passes* if they span at most ``rotation_threshold_deg``.  A cell is
then a High CMC if it is a candidate at some high rotation (its best such rotation is
reported).  A failed direction has no High CMCs.

Both directions are combined as cmcR does: if both pass, the count is the number of
distinct cell positions (grid row, col) that are High CMCs in either direction;
otherwise it falls back to the smaller of the two original-rule counts (Song 2013).

References
----------
Tong, M., Song, J., Chu, W. (2015). An improved algorithm of congruent matching cells
(CMC) method for firearm evidence identifications. J. Res. NIST 120, 102-112.
Zemmels, Hofmann, VanderPlas: cmcR ``decision_CMC`` with ``tau``, and its combined count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._features import Features, circ_median, circ_span

__all__ = ["cmc_theta_distribution", "classify_high", "combine_directions"]


def cmc_theta_distribution(feat: Features, corr_threshold: float = 0.5,
                           translation_threshold_px: float = 20.0) -> np.ndarray:
    """``(T, K)`` bool: cell k is a CMC candidate at rotation t (Tong et al. 2015)."""
    T, K = feat.ncc.shape
    cand = np.zeros((T, K), bool)
    for t in range(T):
        ok = np.isfinite(feat.ncc[t])
        if not ok.any():
            continue
        my = np.median(feat.dy[t, ok])
        mx = np.median(feat.dx[t, ok])
        cand[t] = ok & (np.nan_to_num(feat.ncc[t], nan=-2) >= corr_threshold) \
            & (np.abs(feat.dy[t] - my) <= translation_threshold_px) \
            & (np.abs(feat.dx[t] - mx) <= translation_threshold_px)
    return cand


def classify_high(feat: Features, corr_threshold: float = 0.5, translation_threshold_px: float = 20.0,
                  rotation_threshold_deg: float = 6.0, tau: int = 1,
                  pass_curve: list[tuple[float, int]] | None = None) -> dict[str, Any]:
    """Apply the High CMC rule of Tong et al. (2015) to one direction.

    Parameters
    ----------
    feat : Features
        The direction's theta x cell table.
    pass_curve : list of (theta, count), optional
        CMC-theta distribution on which the pass criterion is judged, when it covers
        more rotations than ``feat`` (the coarse 360-degree curve); default the curve of
        ``feat``.

    Returns
    -------
    dict
        ``count``, ``congruent`` (K,), per-cell ``theta``/``dy``/``dx``/``ncc`` (at the
        chosen high rotation for High CMCs, else at the cell's best rotation),
        ``consensus``, ``passed`` (bool), ``curve`` [(theta, count)], ``high_thetas``.
    """
    K = feat.n_cells
    cand = cmc_theta_distribution(feat, corr_threshold, translation_threshold_px)
    counts = cand.sum(axis=1)
    curve = [(float(t), int(c)) for t, c in zip(feat.thetas, counts)]
    bi, ok = feat.best_per_cell()
    idx = np.arange(K)
    out = {"theta": feat.thetas[bi].astype(float), "dy": feat.dy[bi, idx].copy(), "dx": feat.dx[bi, idx].copy(),
           "ncc": np.where(ok, feat.ncc[bi, idx], np.nan), "curve": curve}
    judged = pass_curve if pass_curve is not None else curve
    jt = np.array([t for t, _ in judged], float)
    jc = np.array([c for _, c in judged], int)
    if counts.max(initial=0) == 0 or jc.max(initial=0) == 0:
        out.update(count=0, congruent=np.zeros(K, bool), consensus=(float("nan"),) * 3, passed=False,
                   high_thetas=[])
        return out
    high_j = (jc >= jc.max() - tau) & (jc > 0)
    passed = circ_span(jt[high_j]) <= rotation_threshold_deg + 1e-9
    high = (counts >= counts.max() - tau) & (counts > 0)
    theta_max = circ_median(feat.thetas[counts == counts.max()])
    if not passed:
        out.update(count=0, congruent=np.zeros(K, bool), consensus=(theta_max, float("nan"), float("nan")),
                   passed=False, high_thetas=[float(t) for t in feat.thetas[high]])
        return out
    cmask = cand & high[:, None]
    cong = cmask.any(axis=0)
    score = np.where(cmask, np.nan_to_num(feat.ncc, nan=-2), -np.inf)
    ti = score.argmax(axis=0)
    for k in np.flatnonzero(cong):
        out["theta"][k] = feat.thetas[ti[k]]
        out["dy"][k] = feat.dy[ti[k], k]
        out["dx"][k] = feat.dx[ti[k], k]
        out["ncc"][k] = feat.ncc[ti[k], k]
    # consensus: median of the High CMCs' own (best) registrations; cmcR reports the
    # median of the rotations tied at the maximum count, which splits exact ties.
    mt = circ_median(out["theta"][cong]) if cong.any() else theta_max
    my = float(np.median(out["dy"][cong])) if cong.any() else float("nan")
    mx = float(np.median(out["dx"][cong])) if cong.any() else float("nan")
    out.update(count=int(cong.sum()), congruent=cong, consensus=(mt, my, mx), passed=True,
               high_thetas=[float(t) for t in feat.thetas[high]])
    return out


def combine_directions(high_ab: dict[str, Any], high_ba: dict[str, Any], orig_ab: dict[str, Any],
                       orig_ba: dict[str, Any], rc_ab: np.ndarray, rc_ba: np.ndarray,
                       fallback: str = "original") -> int:
    """cmcR's combined High CMC count of a pair (see the module docstring).

    ``fallback="none"`` gives 0 instead of the original-rule count when a direction fails.
    """
    if high_ab["passed"] and high_ba["passed"]:
        cells = {tuple(x) for x in rc_ab[high_ab["congruent"]]} | {tuple(x) for x in rc_ba[high_ba["congruent"]]}
        return len(cells)
    if fallback == "none":
        return 0
    return int(min(orig_ab["count"], orig_ba["count"]))
