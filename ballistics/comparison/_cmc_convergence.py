"""Convergence CMC (Chen et al. 2017): CMCs around the mode of the registrations.

The original rule takes the *median* of the cells' registrations as the consensus, which
breaks down when fewer than half of the cells match.  Chen et al. (2017) use the
convergence of the cells' registration parameters instead: for a matching pair the
best ``(theta, dx, dy)`` of the matching cells converge on one point, for a non-matching
pair they scatter.  Here the consensus is the densest cluster of the cells' best
registrations (each cell with correlation >= ``corr_threshold`` proposes its own
registration; the proposal with the most cells within the thresholds wins, ties by the
sum of their correlations; its members' median is the consensus).  The direction
*passes* (converges) when that consensus rotation agrees, within
``rotation_threshold_deg``, with the peak of the CMC-theta distribution (Tong 2015) -
the two independent estimates of the rotation converge.  A direction that does not
converge has no CMCs.

References
----------
Chen, Z., Song, J., Chu, W., Soons, J. A., Zhao, X. (2017). A convergence algorithm for
correlation of breech face images based on the congruent matching cells (CMC) method.
Forensic Science International 280, 213-223.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._cmc_high import cmc_theta_distribution
from ._features import Features, circ_median, wrap

__all__ = ["classify_convergence"]


def classify_convergence(feat: Features, corr_threshold: float = 0.5, translation_threshold_px: float = 20.0,
                         rotation_threshold_deg: float = 6.0,
                         pass_curve: list[tuple[float, int]] | None = None) -> dict[str, Any]:
    """Apply the convergence rule to one direction (see module docstring)."""
    K = feat.n_cells
    bi, ok = feat.best_per_cell()
    idx = np.arange(K)
    th = feat.thetas[bi].astype(float)
    ncc = np.where(ok, feat.ncc[bi, idx], np.nan)
    dy = feat.dy[bi, idx]
    dx = feat.dx[bi, idx]
    out = {"theta": th, "dy": dy, "dx": dx, "ncc": ncc}
    good = ok & (np.nan_to_num(ncc, nan=-2) >= corr_threshold)
    if not good.any():
        out.update(count=0, congruent=np.zeros(K, bool), consensus=(float("nan"),) * 3, passed=False)
        return out

    def members(t0, y0, x0):
        return good & (np.abs(wrap(th - t0)) <= rotation_threshold_deg) \
            & (np.abs(dy - y0) <= translation_threshold_px) & (np.abs(dx - x0) <= translation_threshold_px)

    best: tuple[tuple[int, float], np.ndarray] | None = None
    for k in np.flatnonzero(good):
        m = members(th[k], dy[k], dx[k])
        key = (int(m.sum()), float(np.nansum(ncc[m])))
        if best is None or key > best[0]:
            best = (key, m)
    assert best is not None  # good.any(): at least one candidate
    m = best[1]
    cons = (circ_median(th[m]), float(np.median(dy[m])), float(np.median(dx[m])))
    cong = members(*cons)
    if pass_curve is None:
        cand = cmc_theta_distribution(feat, corr_threshold, translation_threshold_px)
        counts = cand.sum(axis=1)
        curve_t, curve_c = feat.thetas, counts
    else:
        curve_t = np.array([t for t, _ in pass_curve], float)
        curve_c = np.array([c for _, c in pass_curve], int)
    peak = circ_median(curve_t[curve_c == curve_c.max()]) if curve_c.max(initial=0) > 0 else float("nan")
    passed = bool(np.isfinite(peak) and abs(wrap(peak - cons[0])) <= rotation_threshold_deg)
    if not passed:
        cong = np.zeros(K, bool)
    out.update(count=int(cong.sum()), congruent=cong, consensus=cons, passed=passed)
    return out
