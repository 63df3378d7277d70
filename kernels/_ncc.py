"""Masked (pairwise-complete) normalised cross-correlation kernels for cell matching.

Three kernels, each parallel over cells:

* :func:`ncc_from_sums` turns the six FFT cross-correlation sums of Padfield (2012)
  into the masked NCC at every translation and keeps the best one per cell;
* :func:`masked_ncc_direct` computes the same masked NCC by direct summation (wins
  over the FFT only for small translation windows; see ``benchmarks/bench_compare.py``);
* :func:`pairwise_corr_at` is the Pearson correlation over the pixels valid in both the
  cell and the region at one given translation (cmcR's "pairwise-complete" correlation).

Shifts are the top-left offset ``(sr, sc)`` of the cell inside the region: the cell
overlaps ``region[sr:sr + h, sc:sc + w]``.

References
----------
Padfield, D. (2012). Masked object registration in the Fourier domain. IEEE Trans.
Image Processing 21(5), 2706-2718.
Zemmels, J., Hofmann, H., VanderPlas, S. (2023). cmcR: an implementation of the
Congruent Matching Cells method. Journal of Data Science / R Journal.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Threads: one per comparison unless ballistics.set_threads says otherwise (ballistics._threads).

__all__ = ["ncc_from_sums", "masked_ncc_direct", "pairwise_corr_at"]


@njit(inline="always")
def _pearson(n, a, b, aa, bb, ab):
    """Correlation from the sums over ``n`` pixels; -3 when a side has no variance."""
    vc = aa - a * a / n
    vf = bb - b * b / n
    if vc <= 1e-9 * n or vf <= 1e-9 * n:
        return -3.0
    return (ab - a * b / n) / math.sqrt(vc * vf)


@njit(inline="always")
def _masked_sums(cells, regions, k, r0, c0):
    """Count, sums, sums of squares and cross sum over the pixels where cell ``k`` and
    ``regions[k, r0:r0+h, c0:c0+w]`` are both valid (not NaN)."""
    h, w = cells.shape[1], cells.shape[2]
    n = 0.0
    a = 0.0
    b = 0.0
    aa = 0.0
    bb = 0.0
    ab = 0.0
    for i in range(h):
        for j in range(w):
            x = cells[k, i, j]
            y = regions[k, r0 + i, c0 + j]
            if x == x and y == y:
                n += 1.0
                a += x
                b += y
                aa += x * x
                bb += y * y
                ab += x * y
    return n, a, b, aa, bb, ab


@njit(inline="always")
def _store(k, best, bsr, bsc, bn, out_r, out_sr, out_sc, out_n):
    """Write cell ``k``'s best shift, or NaN and zeros when none was admissible."""
    if bsr < 0:
        out_r[k] = np.nan
        out_sr[k] = 0
        out_sc[k] = 0
        out_n[k] = 0
    else:
        out_r[k] = min(best, 1.0)
        out_sr[k] = bsr
        out_sc[k] = bsc
        out_n[k] = bn



@njit(parallel=True, cache=True)
def _ncc_from_sums(s_cf, s_c, s_cc, s_f, s_ff, s_n, n_sr, n_sc, min_n, out_r, out_sr, out_sc, out_n):
    """Best masked NCC per cell from the six correlation sums (Padfield 2012, eq. 7).

    For each cell ``k`` and shift ``(sr, sc)`` in ``[0, n_sr) x [0, n_sc)`` with overlap
    ``n >= min_n[k]`` pixels: ``ncc = (Scf - Sc Sf / n) / sqrt((Scc - Sc^2 / n)(Sff - Sf^2 / n))``.
    Cells without any admissible shift get ``ncc = NaN``.
    """
    K = s_cf.shape[0]
    for k in prange(K):
        best = -2.0
        bsr = -1
        bsc = -1
        bn = 0.0
        for sr in range(n_sr):
            for sc in range(n_sc):
                n = math.floor(s_n[k, sr, sc] + 0.5)
                if n < min_n[k]:
                    continue
                r = _pearson(n, s_c[k, sr, sc], s_f[k, sr, sc], s_cc[k, sr, sc], s_ff[k, sr, sc],
                             s_cf[k, sr, sc])
                if r > best:
                    best = r
                    bsr = sr
                    bsc = sc
                    bn = n
        _store(k, best, bsr, bsc, bn, out_r, out_sr, out_sc, out_n)


def ncc_from_sums(s_cf: np.ndarray, s_c: np.ndarray, s_cc: np.ndarray, s_f: np.ndarray, s_ff: np.ndarray,
                  s_n: np.ndarray, n_shifts: tuple[int, int],
                  min_n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best masked NCC per cell over the shift window, from FFT correlation sums.

    Parameters
    ----------
    s_cf, s_c, s_cc, s_f, s_ff, s_n : numpy.ndarray
        ``(K, R, C)`` arrays: at shift ``(sr, sc)`` the sums over the overlap of
        cell*region, cell, cell^2, region, region^2 and the overlap pixel count.
    n_shifts : tuple of int
        Shifts ``[0, n_sr) x [0, n_sc)`` are searched.
    min_n : numpy.ndarray
        ``(K,)`` minimum overlap in pixels per cell.

    Returns
    -------
    ncc, sr, sc, n : numpy.ndarray
        Best correlation (NaN if no admissible shift), its shift and overlap.
    """
    K = s_cf.shape[0]
    out_r = np.empty(K)
    out_sr = np.empty(K, dtype=np.int64)
    out_sc = np.empty(K, dtype=np.int64)
    out_n = np.empty(K)
    _ncc_from_sums(s_cf, s_c, s_cc, s_f, s_ff, s_n, int(n_shifts[0]), int(n_shifts[1]),
                   np.ascontiguousarray(min_n, dtype=np.float64), out_r, out_sr, out_sc, out_n)
    return out_r, out_sr, out_sc, out_n


@njit(parallel=True, cache=True)
def _masked_ncc_direct(cells, regions, sr0, sc0, n_sr, n_sc, min_n, out_r, out_sr, out_sc, out_n):
    """Best masked NCC per cell by direct summation over shifts
    ``[sr0, sr0 + n_sr) x [sc0, sc0 + n_sc)``; NaN marks missing pixels (Padfield 2012)."""
    K = cells.shape[0]
    for k in prange(K):
        best = -2.0
        bsr = -1
        bsc = -1
        bn = 0.0
        for sr in range(sr0, sr0 + n_sr):
            for sc in range(sc0, sc0 + n_sc):
                n, a, b, aa, bb, ab = _masked_sums(cells, regions, k, sr, sc)
                if n < min_n[k]:
                    continue
                r = _pearson(n, a, b, aa, bb, ab)
                if r > best:
                    best = r
                    bsr = sr
                    bsc = sc
                    bn = n
        _store(k, best, bsr, bsc, bn, out_r, out_sr, out_sc, out_n)


def masked_ncc_direct(cells: np.ndarray, regions: np.ndarray, n_shifts: tuple[int, int], min_n: np.ndarray,
                      start: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best masked NCC per cell by direct summation (no FFT).

    Parameters
    ----------
    cells : numpy.ndarray
        ``(K, h, w)`` cells, NaN = missing.
    regions : numpy.ndarray
        ``(K, H, W)`` target regions, NaN = missing; ``H >= start[0] + n_shifts[0] + h - 1``.
    n_shifts : tuple of int
        Number of shifts searched along rows and columns.
    min_n : numpy.ndarray
        ``(K,)`` minimum overlap in pixels.
    start : tuple of int
        First shift ``(sr0, sc0)``.

    Returns
    -------
    ncc, sr, sc, n : numpy.ndarray
        As :func:`ncc_from_sums`.
    """
    cells = np.ascontiguousarray(cells, dtype=np.float64)
    regions = np.ascontiguousarray(regions, dtype=np.float64)
    K, h, w = cells.shape
    if regions.shape[0] != K or regions.shape[1] < start[0] + n_shifts[0] + h - 1 \
            or regions.shape[2] < start[1] + n_shifts[1] + w - 1:
        raise ValueError("regions too small for the requested shifts")
    out_r = np.empty(K)
    out_sr = np.empty(K, dtype=np.int64)
    out_sc = np.empty(K, dtype=np.int64)
    out_n = np.empty(K)
    _masked_ncc_direct(cells, regions, int(start[0]), int(start[1]), int(n_shifts[0]), int(n_shifts[1]),
                       np.ascontiguousarray(min_n, dtype=np.float64), out_r, out_sr, out_sc, out_n)
    return out_r, out_sr, out_sc, out_n


@njit(parallel=True, cache=True)
def _pairwise_corr_at(cells, regions, sr, sc, min_n, out_r, out_n):
    """Pearson correlation of each cell with the region patch at its shift, over the
    pixels valid in both ("pairwise complete", as R's ``cor(use = "pairwise.complete.obs")``
    used by cmcR)."""
    K = cells.shape[0]
    for k in prange(K):
        n, a, b, aa, bb, ab = _masked_sums(cells, regions, k, sr[k], sc[k])
        out_n[k] = n
        if n < max(min_n[k], 2.0):
            out_r[k] = np.nan
            continue
        vc = aa - a * a / n
        vf = bb - b * b / n
        if vc <= 1e-12 * n or vf <= 1e-12 * n:
            out_r[k] = np.nan
            continue
        out_r[k] = min(max((ab - a * b / n) / math.sqrt(vc * vf), -1.0), 1.0)


def pairwise_corr_at(cells: np.ndarray, regions: np.ndarray, sr: np.ndarray, sc: np.ndarray,
                     min_n: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Pearson correlation of each cell with its region at one shift.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(K, h, w)``, NaN = missing.
    regions : numpy.ndarray
        ``(K, H, W)``, NaN = missing.
    sr, sc : numpy.ndarray
        ``(K,)`` top-left shifts of the cells inside the regions (pixels).
    min_n : numpy.ndarray, optional
        ``(K,)`` minimum number of common valid pixels (default 2).

    Returns
    -------
    r, n : numpy.ndarray
        Correlation (NaN if too few common pixels or no variance) and common pixel count.
    """
    cells = np.ascontiguousarray(cells, dtype=np.float64)
    regions = np.ascontiguousarray(regions, dtype=np.float64)
    K, h, w = cells.shape
    sr = np.ascontiguousarray(sr, dtype=np.int64)
    sc = np.ascontiguousarray(sc, dtype=np.int64)
    if np.any(sr < 0) or np.any(sc < 0) or np.any(sr + h > regions.shape[1]) or np.any(sc + w > regions.shape[2]):
        raise ValueError("shift outside the region")
    if min_n is None:
        min_n = np.full(K, 2.0)
    out_r = np.empty(K)
    out_n = np.empty(K)
    _pairwise_corr_at(cells, regions, sr, sc, np.ascontiguousarray(min_n, dtype=np.float64), out_r, out_n)
    return out_r, out_n
