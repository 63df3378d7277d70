"""Pool Adjacent Violators (PAV): weighted isotonic regression of labels on scores.

The algorithm behind Cllr_min (Brümmer & du Preez 2006) and the isotonic calibrator
(Zadrozny & Elkan 2002).  Equal scores are pooled first, so the fit is a function of
the score.

References
----------
Ayer, M., Brunk, H. D., Ewing, G. M., Reid, W. T., Silverman, E. (1955). An empirical
distribution function for sampling with incomplete information. Ann. Math. Stat. 26(4).
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3), 230-275.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pav"]


def pav(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-decreasing weighted least-squares fit of ``y`` on ``x``.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Scores (any real values; ties are pooled).
    y : ndarray, shape (n,)
        Targets (0/1 labels for calibration).
    w : ndarray, shape (n,), optional
        Non-negative weights (default 1).

    Returns
    -------
    fitted : ndarray, shape (n,)
        Fitted value of every input point (in input order).
    knots_x, knots_y : ndarray
        The lowest and highest score of every pooled block with the block's value, in
        increasing score order (two knots per block, one if the block holds a single
        score value): the fitted step function.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    order = np.argsort(x, kind="mergesort")
    xs, ys, ws = x[order], y[order], w[order]
    # pool ties
    ux, start = np.unique(xs, return_index=True)
    wsum = np.add.reduceat(ws, start)
    ysum = np.add.reduceat(ws * ys, start)
    # stack of blocks: value, weight, first/last unique index
    val: list[float] = []
    wt: list[float] = []
    lo: list[int] = []
    hi: list[int] = []
    for i in range(ux.size):
        v = ysum[i] / wsum[i] if wsum[i] > 0 else 0.0
        cw = wsum[i]
        first = i
        while val and val[-1] >= v:
            pw = wt.pop()
            pv = val.pop()
            first = lo.pop()
            hi.pop()
            tot = pw + cw
            v = (pv * pw + v * cw) / tot if tot > 0 else pv
            cw = tot
        val.append(v)
        wt.append(cw)
        lo.append(first)
        hi.append(i)
    uval = np.empty(ux.size)
    kx: list[float] = []
    ky: list[float] = []
    for v, a, b in zip(val, lo, hi):
        uval[a:b + 1] = v
        kx.append(ux[a])
        ky.append(v)
        if b > a:
            kx.append(ux[b])
            ky.append(v)
    idx = np.searchsorted(ux, xs)
    fitted = np.empty(x.size)
    fitted[order] = uval[idx]
    return fitted, np.asarray(kx), np.asarray(ky)
