"""Numba kernels of the cmcR-compatible cell comparison (``preset="cmcr"``).

Two steps of cmcR 0.1.11's ``comparison_allTogether`` (Zemmels, Hofmann & VanderPlas)
that run once per rotation and cell:

* :func:`cut_windows` cuts each cell's target region (``comparison_getTargetRegions``:
  the cell's centre +- 3/2 of its side, pixels outside the target missing), and
  standardises it over its valid pixels (``comparison_standardizeHeights``: mean, sd with
  n - 1) with missing pixels set to 0 (``comparison_replaceMissing``) for the FFT;
* :func:`ccf_argmax` finds the peak of the FFT cross-correlation over the window of
  shifts cartridges3D's ``filterViaFFT`` keeps (the region's size around its centre);
* :func:`window_pearson` is the pairwise-complete Pearson correlation of each cell with
  a same-sized window of the rotated target (``comparison_alignedTargetCell`` followed by
  ``cor(use = "pairwise.complete.obs")``).

References
----------
Zemmels, J., Hofmann, H., VanderPlas, S. (2023). Zemmels et al. "A study in
reproducibility: the Congruent Matching Cells algorithm and cmcR package", R Journal;
cmcR 0.1.11 (R package).  Song, J. (2013) AFTE J. 45(2), 184-194.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["cut_windows", "ccf_argmax", "window_pearson"]


@njit(inline="always")
def _region_moments(img, r0, c0, h, w, mu):
    """Count, sum and squared sum of ``v - mu`` over the valid pixels of
    ``img[r0:r0+h, c0:c0+w]`` (outside ``img`` counts as missing)."""
    R, C = img.shape
    n = 0.0
    s = 0.0
    ss = 0.0
    for i in range(h):
        r = r0 + i
        if r < 0 or r >= R:
            continue
        for j in range(w):
            c = c0 + j
            if 0 <= c < C:
                v = img[r, c]
                if v == v:
                    v -= mu
                    n += 1.0
                    s += v
                    ss += v * v
    return n, s, ss


@njit(parallel=True, cache=True)
def _cut_windows(img, r0s, c0s, nrs, ncs, f, miss):
    """For every cell, the window ``img[r0:r0+nr, c0:c0+nc]`` (NaN outside ``img``)
    standardised (mean, sd with n - 1) with NaN set to 0, written to the top-left of
    ``f[k]`` (zero elsewhere), and its missing fraction ``miss[k]`` (cmcR 0.1.11,
    ``comparison_getTargetRegions`` / ``comparison_standardizeHeights`` /
    ``comparison_replaceMissing``)."""
    K = r0s.shape[0]
    R, C = img.shape
    HF, WF = f.shape[1], f.shape[2]
    for k in prange(K):
        n, s, _ = _region_moments(img, r0s[k], c0s[k], nrs[k], ncs[k], 0.0)
        miss[k] = 1.0 - n / (nrs[k] * ncs[k])
        mu = s / n if n > 0 else 0.0
        _, _, ss = _region_moments(img, r0s[k], c0s[k], nrs[k], ncs[k], mu)
        sd = math.sqrt(ss / (n - 1.0)) if n > 1 else 0.0
        inv = 1.0 / sd if sd > 0 else 0.0
        for i in range(HF):
            r = r0s[k] + i
            for j in range(WF):
                c = c0s[k] + j
                v = np.nan
                if i < nrs[k] and j < ncs[k] and 0 <= r < R and 0 <= c < C:
                    v = img[r, c]
                f[k, i, j] = (v - mu) * inv if v == v else 0.0


def cut_windows(img: np.ndarray, r0s: np.ndarray, c0s: np.ndarray, nrs: np.ndarray, ncs: np.ndarray,
                frame: tuple[int, int], dtype=np.float64,
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut windows of different sizes from ``img`` and standardise them (cmcR's regions).

    Parameters
    ----------
    img : numpy.ndarray
        2-D surface (NaN = missing), e.g. the rotated target.
    r0s, c0s : numpy.ndarray
        ``(K,)`` top-left corners of the windows in ``img`` pixels (may lie outside).
    nrs, ncs : numpy.ndarray
        ``(K,)`` window sizes in pixels.
    frame : tuple of int
        ``(H, W)`` of the output frame (the FFT size), at least the largest window.
    dtype : numpy dtype
        dtype of the output.
    out : numpy.ndarray, optional
        C-contiguous ``(K, H, W)`` array of ``dtype`` to write to (reused across calls:
        no fresh frame to allocate and page in); returned as ``f``.

    Returns
    -------
    f : numpy.ndarray
        ``(K, H, W)`` windows standardised over their valid pixels (mean 0, sd 1 with
        n - 1) at the top-left of the frame; 0 where missing and outside the window.
    miss : numpy.ndarray
        ``(K,)`` missing fraction of each window (pixels outside ``img`` are missing).
    """
    img = np.ascontiguousarray(img, dtype=np.float64)
    K = len(r0s)
    nrs = np.ascontiguousarray(nrs, dtype=np.int64)
    ncs = np.ascontiguousarray(ncs, dtype=np.int64)
    H, W = int(frame[0]), int(frame[1])
    if K and (nrs.max() > H or ncs.max() > W or nrs.min() < 1 or ncs.min() < 1):
        raise ValueError("window sizes must be between 1 and the frame")
    if out is None:
        f = np.empty((K, H, W), dtype=dtype)
    elif out.shape != (K, H, W) or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {(K, H, W)}")
    else:
        f = out
    miss = np.empty(K)
    _cut_windows(img, np.ascontiguousarray(r0s, dtype=np.int64), np.ascontiguousarray(c0s, dtype=np.int64),
                 nrs, ncs, f, miss)
    return f, miss


@njit(parallel=True, cache=True)
def _ccf_argmax(G, ir, ic, nrs, ncs, out_r, out_c):
    """Row-major first arg-max of ``G[k][ir[k, a], ic[k, b]]`` over ``a < nrs[k]``,
    ``b < ncs[k]``: the peak of the CCF window that cartridges3D's ``filterViaFFT`` keeps
    (cmcR 0.1.11 ``comparison_fft_ccf``; R's column-major ``which`` on its transposed
    matrix is row-major here)."""
    K = G.shape[0]
    for k in prange(K):
        best = -np.inf
        br = 0
        bc = 0
        for a in range(nrs[k]):
            row = ir[k, a]
            for b in range(ncs[k]):
                v = G[k, row, ic[k, b]]
                if v > best:
                    best = v
                    br = a
                    bc = b
        out_r[k] = br
        out_c[k] = bc


def ccf_argmax(G: np.ndarray, ir: np.ndarray, ic: np.ndarray, nrs: np.ndarray,
               ncs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position ``(a, b)`` of the maximum of each cell's CCF window (see :func:`_ccf_argmax`).

    Parameters
    ----------
    G : numpy.ndarray
        ``(K, L0, L1)`` circular cross-correlations.
    ir, ic : numpy.ndarray
        ``(K, A)``, ``(K, B)`` rows / columns of ``G`` of window positions ``a`` / ``b``.
    nrs, ncs : numpy.ndarray
        ``(K,)`` window sizes (positions beyond are ignored).

    Returns
    -------
    a, b : numpy.ndarray
        ``(K,)`` window row and column of the first maximum (row-major order).
    """
    K = G.shape[0]
    out_r = np.empty(K, dtype=np.int64)
    out_c = np.empty(K, dtype=np.int64)
    _ccf_argmax(np.ascontiguousarray(G), np.ascontiguousarray(ir, dtype=np.int64),
                np.ascontiguousarray(ic, dtype=np.int64), np.ascontiguousarray(nrs, dtype=np.int64),
                np.ascontiguousarray(ncs, dtype=np.int64), out_r, out_c)
    return out_r, out_c


@njit(inline="always")
def _window_moments(img, cells, k, h, w, r0, c0, ma, mb):
    """Over the pixels valid in both cell ``k`` and ``img[r0:r0+h, c0:c0+w]`` (outside
    ``img`` counts as missing): count, sums of ``a - ma`` and ``b - mb``, and their
    cross and squared sums."""
    R, C = img.shape
    n = 0.0
    sa = 0.0
    sb = 0.0
    sab = 0.0
    saa = 0.0
    sbb = 0.0
    for i in range(h):
        r = r0 + i
        if r < 0 or r >= R:
            continue
        for j in range(w):
            c = c0 + j
            if c < 0 or c >= C:
                continue
            a = cells[k, i, j]
            b = img[r, c]
            if a == a and b == b:
                a -= ma
                b -= mb
                n += 1.0
                sa += a
                sb += b
                sab += a * b
                saa += a * a
                sbb += b * b
    return n, sa, sb, sab, saa, sbb


@njit(parallel=True, cache=True)
def _window_pearson(img, cells, hs, ws, r0s, c0s, out, nout):
    """Pearson correlation over the pixels valid in both the cell ``cells[k, :h, :w]`` and
    ``img[r0:r0+h, c0:c0+w]`` (NaN outside ``img``); cmcR 0.1.11 ``comparison_allTogether``,
    ``cor(cell, alignedTargetCell, use = "pairwise.complete.obs")``.  Two passes (means,
    then centred sums) for the accuracy of R's ``cor``."""
    K = r0s.shape[0]
    for k in prange(K):
        n, sa, sb, _, _, _ = _window_moments(img, cells, k, hs[k], ws[k], r0s[k], c0s[k], 0.0, 0.0)
        nout[k] = n
        if n < 2:
            out[k] = np.nan
            continue
        _, _, _, sab, saa, sbb = _window_moments(img, cells, k, hs[k], ws[k], r0s[k], c0s[k],
                                                 sa / n, sb / n)
        d = math.sqrt(saa * sbb)
        out[k] = sab / d if d > 0 else np.nan


def window_pearson(img: np.ndarray, cells: np.ndarray, hs: np.ndarray, ws: np.ndarray,
                   r0s: np.ndarray, c0s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete correlation of each cell with a window of ``img``.

    Parameters
    ----------
    img : numpy.ndarray
        2-D surface (NaN = missing), e.g. the rotated target.
    cells : numpy.ndarray
        ``(K, H, W)`` cells (NaN = missing); cell k occupies ``[:hs[k], :ws[k]]``.
    hs, ws : numpy.ndarray
        ``(K,)`` cell sizes in pixels.
    r0s, c0s : numpy.ndarray
        ``(K,)`` top-left corners of the windows in ``img`` (may lie outside: missing).

    Returns
    -------
    r : numpy.ndarray
        ``(K,)`` correlations (NaN with fewer than 2 common pixels or zero variance).
    n : numpy.ndarray
        ``(K,)`` number of pixels valid in both.
    """
    img = np.ascontiguousarray(img, dtype=np.float64)
    cells = np.ascontiguousarray(cells, dtype=np.float64)
    K = len(r0s)
    out = np.empty(K)
    nout = np.empty(K)
    _window_pearson(img, cells, np.ascontiguousarray(hs, dtype=np.int64), np.ascontiguousarray(ws, dtype=np.int64),
                    np.ascontiguousarray(r0s, dtype=np.int64), np.ascontiguousarray(c0s, dtype=np.int64), out, nout)
    return out, nout
