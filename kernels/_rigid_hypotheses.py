"""Score two-point rigid-motion hypotheses by their inliers (the RANSAC loop of stage 2).

:func:`best_rigid_hypothesis` takes matched points ``a -> b`` and hypotheses given as
pairs of match indices ``(i, j)``.  A hypothesis is kept when ``i != j``, the two
segments ``a[j] - a[i]`` and ``b[j] - b[i]`` differ in length by less than ``tol`` and
the first is longer than ``4 tol``.  Its rotation is the one that turns the first
segment's direction into the second's (cosine and sine from their dot and cross
products over the product of their lengths), its translation takes ``a[i]`` onto
``b[i]``, and its score is the number of matches whose residual is below ``tol``.  The
best kept hypothesis (the first of the highest score) is returned.

Every value is formed with the same float64 operations, in the same order, as the
NumPy twin in the tests (one array expression per step over all hypotheses), so the
scores and the chosen hypothesis are identical.

References
----------
Fischler, M. A., Bolles, R. C. (1981). Random sample consensus. CACM 24(6).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["best_rigid_hypothesis"]


@njit(cache=True, nogil=True)  # releases the GIL: stage 2 verifies candidates on threads
def _best(a, b, i, j, tol):
    n = a.shape[0]
    tol2 = tol * tol
    best_k = -1
    best_n = -1
    bc = 1.0
    bs = 0.0
    btx = 0.0
    bty = 0.0
    for k in range(i.shape[0]):
        p = i[k]
        q = j[k]
        if p == q:
            continue
        dax = a[q, 0] - a[p, 0]
        day = a[q, 1] - a[p, 1]
        dbx = b[q, 0] - b[p, 0]
        dby = b[q, 1] - b[p, 1]
        la = np.sqrt(dax * dax + day * day)
        lb = np.sqrt(dbx * dbx + dby * dby)
        if not (np.abs(la - lb) < tol and la > 4 * tol):
            continue
        den = la * lb
        c = (dax * dbx + day * dby) / den
        s = (dax * dby - day * dbx) / den
        tx = b[p, 0] - (c * a[p, 0] - s * a[p, 1])
        ty = b[p, 1] - (s * a[p, 0] + c * a[p, 1])
        cnt = 0
        for m in range(n):
            ex = c * a[m, 0] - s * a[m, 1] + tx - b[m, 0]
            ey = s * a[m, 0] + c * a[m, 1] + ty - b[m, 1]
            if ex * ex + ey * ey < tol2:
                cnt += 1
        if cnt > best_n:
            best_n = cnt
            best_k = k
            bc, bs, btx, bty = c, s, tx, ty
    return best_k, max(best_n, 0), bc, bs, btx, bty


def best_rigid_hypothesis(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray, tol: float
                          ) -> tuple[int, int, float, float, np.ndarray]:
    """The best of the two-point rigid hypotheses ``(i[k], j[k])`` of matches ``a -> b``.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n, 2), float64
        Matched points (x, y), pixels.
    i, j : numpy.ndarray, shape (n_hyp,), int64
        Indices of the two matches of each hypothesis (``0 <= i, j < n``).
    tol : float
        Inlier distance and segment-length tolerance, pixels.

    Returns
    -------
    k : int
        Index of the best kept hypothesis (-1 when none is kept).
    inliers : int
        Its number of inliers (0 when none is kept).
    cos, sin : float
        Its rotation.
    t : numpy.ndarray, shape (2,)
        Its translation, pixels.
    """
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    if a.ndim != 2 or a.shape[1:] != (2,) or b.shape != a.shape:
        raise ValueError("a and b must be matching (n, 2) arrays of points")
    i = np.ascontiguousarray(i, np.int64)
    j = np.ascontiguousarray(j, np.int64)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError("i and j must be 1-D arrays of the same length")
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= len(a)):
        raise ValueError("hypothesis indices must name matches of a and b")
    k, n, c, s, tx, ty = _best(a, b, i, j, float(tol))
    return int(k), int(n), float(c), float(s), np.array([tx, ty])
