"""Nearest and second-nearest column of every row of a distance matrix (stage-2 matching).

:func:`two_nearest` finishes, in one compiled pass over the matrix, what stage 2's
descriptor matching starts with one matrix product: given ``P = -2 Q C^T`` (float32,
query descriptors by candidate descriptors) and the candidate descriptors' squared
norms ``c2``, it returns per row the column of the smallest ``P[i, j] + c2[j]``, that
value and the smallest value of the other columns.  The sums are the float32 sums
NumPy forms with ``P += c2[None, :]``, the first smallest column wins a tie (as
:func:`numpy.argmin`), and the second value is the minimum over every other column
(equal to the first when two columns tie), so the results are bit-identical to::

    D = P + c2[None, :]
    first = D.argmin(1); d1 = D[rows, first]; D[rows, first] = inf; dsec = D.min(1)

References
----------
Lowe, D. G. (2004). Distinctive image features from scale-invariant keypoints. IJCV 60(2)
(the ratio of the two distances).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["two_nearest", "ratio_matches"]


@njit(inline="always")
def _row_two(P, c2, i):
    """Row ``i`` of ``P + c2``: the first smallest column, its value, the smallest other value."""
    best = np.float32(np.inf)
    second = np.float32(np.inf)
    bj = 0
    for j in range(P.shape[1]):
        v = P[i, j] + c2[j]
        if v < best:
            second = best
            best = v
            bj = j
        elif v < second:
            second = v
    return bj, best, second


@njit(cache=True, nogil=True)  # releases the GIL: stage 2 verifies candidates on threads
def _two_nearest(P, c2):
    nq = P.shape[0]
    first = np.empty(nq, np.int64)
    d1 = np.empty(nq, np.float32)
    dsec = np.empty(nq, np.float32)
    for i in range(nq):
        bj, best, second = _row_two(P, c2, i)
        first[i] = bj
        d1[i] = best
        dsec[i] = second
    return first, d1, dsec


def two_nearest(P: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``P + c2``: the smallest column, its value and the second smallest value.

    Parameters
    ----------
    P : numpy.ndarray, shape (n_query, n_candidate), float32
        ``-2 q . c`` for every pair of descriptors (a matrix product), C-contiguous.
    c2 : numpy.ndarray, shape (n_candidate,), float32
        Squared norms of the candidate descriptors.

    Returns
    -------
    first : numpy.ndarray, shape (n_query,), int64
        Column of the smallest ``P[i, j] + c2[j]`` (the first on a tie); 0 when there
        are no columns.
    d1, dsec : numpy.ndarray, shape (n_query,), float32
        The smallest value and the smallest over the other columns (``inf`` when there
        is none); add the query's squared norm to get squared distances.
    """
    if not isinstance(P, np.ndarray) or P.ndim != 2 or P.dtype != np.float32:
        raise ValueError("P must be a 2-D float32 array")
    if not isinstance(c2, np.ndarray) or c2.ndim != 1 or c2.dtype != np.float32 or len(c2) != P.shape[1]:
        raise ValueError("c2 must be a 1-D float32 array with one value per column of P")
    return _two_nearest(np.ascontiguousarray(P), np.ascontiguousarray(c2))


@njit(cache=True, nogil=True)  # releases the GIL: stage 2 verifies candidates on threads
def _ratio_matches(P, c2, q2, r2):
    nq, nc = P.shape
    best_d = np.full(nc, np.inf, np.float32)   # per candidate column: the closest passing row
    best_q = np.full(nc, -1, np.int64)
    zero = np.float32(0.0)
    for i in range(nq):
        bj, best, second = _row_two(P, c2, i)
        d1 = best + q2[i]
        ds = second + q2[i]
        if max(d1, zero) < r2 * max(ds, zero) and d1 < best_d[bj]:
            best_d[bj] = d1
            best_q[bj] = i
    n = 0
    for j in range(nc):
        if best_q[j] >= 0:
            n += 1
    iq = np.empty(n, np.int64)
    ic = np.empty(n, np.int64)
    k = 0
    for j in range(nc):
        if best_q[j] >= 0:
            iq[k] = best_q[j]
            ic[k] = j
            k += 1
    return iq, ic


def ratio_matches(P: np.ndarray, c2: np.ndarray, q2: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one descriptor matches that pass Lowe's ratio test, in one compiled pass.

    Per row (query descriptor) the nearest and second-nearest column as
    :func:`two_nearest`; squared distances ``d = P[i, j] + c2[j] + q2[i]`` (float32, in
    that order); the row passes when ``max(d1, 0) < ratio**2 * max(d2, 0)`` (float32);
    each column keeps the passing row closest to it (the first on a tie).  Equal,
    element by element, to :func:`two_nearest` followed by the ratio test in NumPy and a
    stable sort by (column, distance) keeping each column's first.

    Parameters
    ----------
    P : numpy.ndarray, shape (n_query, n_candidate), float32
        ``-2 q . c`` for every pair of descriptors, C-contiguous.
    c2 : numpy.ndarray, shape (n_candidate,), float32
        Squared norms of the candidate descriptors.
    q2 : numpy.ndarray, shape (n_query,), float32
        Squared norms of the query descriptors.
    ratio : float
        Lowe's ratio (0.85 in stage 2).

    Returns
    -------
    iq, ic : numpy.ndarray of int64
        Matched query rows and candidate columns, ordered by column.

    References
    ----------
    Lowe, D. G. (2004). Distinctive image features from scale-invariant keypoints. IJCV 60(2).
    """
    if not isinstance(P, np.ndarray) or P.ndim != 2 or P.dtype != np.float32:
        raise ValueError("P must be a 2-D float32 array")
    for name, v, n in (("c2", c2, P.shape[1]), ("q2", q2, P.shape[0])):
        if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype != np.float32 or len(v) != n:
            raise ValueError(f"{name} must be a 1-D float32 array matching P")
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    r2 = np.float32(float(ratio) * float(ratio))
    return _ratio_matches(np.ascontiguousarray(P), np.ascontiguousarray(c2), np.ascontiguousarray(q2), r2)
