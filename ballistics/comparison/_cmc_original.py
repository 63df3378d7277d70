"""The original Congruent Matching Cells rule (Song 2013).

Each cell keeps its best rotation (highest correlation).  The consensus registration is
the median of the cells' ``(theta, dx, dy)``; a cell is a CMC when its correlation is at
least ``corr_threshold`` and its rotation and translation are within
``rotation_threshold_deg`` and ``translation_threshold_px`` of the consensus.

References
----------
Song, J. (2013). Proposed NIST ballistics identification system (NBIS) based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Zemmels, Hofmann, VanderPlas: cmcR ``decision_CMC`` (no ``tau``): the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._features import Features, circ_median, wrap

__all__ = ["classify_original"]


def classify_original(feat: Features, corr_threshold: float = 0.5, translation_threshold_px: float = 20.0,
                      rotation_threshold_deg: float = 6.0) -> dict[str, Any]:
    """Apply Song's (2013) rule to one direction's features.

    Returns
    -------
    dict
        ``count``; ``congruent`` (K,) bool; per-cell ``theta``, ``dy``, ``dx``, ``ncc`` at
        each cell's best rotation; ``consensus`` ``(theta, dy, dx)`` (median over cells);
        ``passed`` None (the rule has no pass/fail).
    """
    K = feat.n_cells
    bi, ok = feat.best_per_cell()
    idx = np.arange(K)
    th = feat.thetas[bi].astype(float)
    ncc = feat.ncc[bi, idx]
    dy = feat.dy[bi, idx]
    dx = feat.dx[bi, idx]
    if not ok.any():
        return {"count": 0, "congruent": np.zeros(K, bool), "theta": th, "dy": dy, "dx": dx,
                "ncc": np.where(ok, ncc, np.nan), "consensus": (float("nan"),) * 3, "passed": None}
    mt = circ_median(th[ok])
    my = float(np.median(dy[ok]))
    mx = float(np.median(dx[ok]))
    cong = ok & (ncc >= corr_threshold) & (np.abs(dy - my) <= translation_threshold_px) \
        & (np.abs(dx - mx) <= translation_threshold_px) & (np.abs(wrap(th - mt)) <= rotation_threshold_deg)
    return {"count": int(cong.sum()), "congruent": cong, "theta": th, "dy": dy, "dx": dx,
            "ncc": np.where(ok, ncc, np.nan), "consensus": (mt, my, mx), "passed": None}
