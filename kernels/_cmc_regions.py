"""Cut the target regions of all cells from a rotated surface and standardise them.

For each reference cell the CMC method searches a region of the rotated target around
the cell's expected position (Song 2013; cmcR ``comparison_getTargetRegions``: a region
three times the cell's side).  This kernel cuts all regions in one parallel pass and
prepares what the FFT correlation needs: the region standardised over its valid pixels
(mean 0, sd 1) with missing pixels set to 0, and the validity mask.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["cut_regions", "cut_planes"]


@njit(parallel=True, cache=True)
def _cut_regions(img, r0s, c0s, Hr, Wr, raw, f, m, frac):
    """Cut ``img[r0:r0+Hr, c0:c0+Wr]`` for every cell (NaN outside ``img``); write the
    raw region, its standardised zero-filled version and the mask (float32), and the
    valid fraction (Song 2013, Zemmels et al. cmcR ``comparison_standardizeHeights``)."""
    K = r0s.shape[0]
    R, C = img.shape
    for k in prange(K):
        n = 0.0
        s = 0.0
        for i in range(Hr):
            r = r0s[k] + i
            for j in range(Wr):
                c = c0s[k] + j
                v = np.nan
                if 0 <= r < R and 0 <= c < C:
                    v = img[r, c]
                raw[k, i, j] = v
                if v == v:
                    n += 1.0
                    s += v
        frac[k] = n / (Hr * Wr)
        mu = s / n if n > 0 else 0.0
        ss = 0.0
        for i in range(Hr):
            for j in range(Wr):
                v = raw[k, i, j]
                if v == v:
                    ss += (v - mu) * (v - mu)
        sd = math.sqrt(ss / n) if n > 0 else 0.0
        inv = 1.0 / sd if sd > 0 else 1.0
        for i in range(Hr):
            for j in range(Wr):
                v = raw[k, i, j]
                if v == v:
                    f[k, i, j] = (v - mu) * inv
                    m[k, i, j] = 1.0
                else:
                    f[k, i, j] = 0.0
                    m[k, i, j] = 0.0


def cut_regions(img: np.ndarray, r0s: np.ndarray, c0s: np.ndarray, shape: tuple[int, int],
                dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut and standardise the regions of all cells.

    Parameters
    ----------
    img : numpy.ndarray
        2-D surface (NaN = missing), e.g. the rotated target.
    r0s, c0s : numpy.ndarray
        ``(K,)`` top-left corners of the regions in ``img`` pixels (may lie outside).
    shape : tuple of int
        Region shape ``(Hr, Wr)`` in pixels.
    dtype : numpy dtype
        dtype of the standardised output (float32 halves the FFT time).

    Returns
    -------
    raw : numpy.ndarray
        ``(K, Hr, Wr)`` float64 regions, NaN where missing or outside ``img``.
    f : numpy.ndarray
        Standardised regions (mean 0, sd 1 over valid pixels), 0 where missing.
    m : numpy.ndarray
        Validity masks (1 valid, 0 missing).
    frac : numpy.ndarray
        ``(K,)`` valid fraction of each region.
    """
    img = np.ascontiguousarray(img, dtype=np.float64)
    K = len(r0s)
    Hr, Wr = int(shape[0]), int(shape[1])
    raw = np.empty((K, Hr, Wr))
    f = np.empty((K, Hr, Wr), dtype=dtype)
    m = np.empty((K, Hr, Wr), dtype=dtype)
    frac = np.empty(K)
    _cut_regions(img, np.ascontiguousarray(r0s, dtype=np.int64), np.ascontiguousarray(c0s, dtype=np.int64),
                 Hr, Wr, raw, f, m, frac)
    return raw, f, m, frac


@njit(parallel=True, cache=True)
def _cut_planes(img, r0s, c0s, Hr, Wr, out, frac):
    """For every cell, the region ``img[r0:r0+Hr, c0:c0+Wr]`` (NaN outside ``img``) written
    as the three planes of the masked FFT correlation (Padfield 2012): ``out[0, k]`` the
    region standardised over its valid pixels (0 where missing), ``out[1, k]`` its square,
    ``out[2, k]`` the validity mask; the rest of each plane (FFT padding) is 0."""
    K = r0s.shape[0]
    R, C = img.shape
    for k in prange(K):
        n = 0.0
        s = 0.0
        for i in range(Hr):
            r = r0s[k] + i
            if r < 0 or r >= R:
                continue
            for j in range(Wr):
                c = c0s[k] + j
                if 0 <= c < C:
                    v = img[r, c]
                    if v == v:
                        n += 1.0
                        s += v
        frac[k] = n / (Hr * Wr)
        mu = s / n if n > 0 else 0.0
        ss = 0.0
        for i in range(Hr):
            r = r0s[k] + i
            if r < 0 or r >= R:
                continue
            for j in range(Wr):
                c = c0s[k] + j
                if 0 <= c < C:
                    v = img[r, c]
                    if v == v:
                        ss += (v - mu) * (v - mu)
        sd = math.sqrt(ss / n) if n > 0 else 0.0
        inv = 1.0 / sd if sd > 0 else 1.0
        for i in range(out.shape[2]):
            r = r0s[k] + i
            for j in range(out.shape[3]):
                c = c0s[k] + j
                v = np.nan
                if i < Hr and j < Wr and 0 <= r < R and 0 <= c < C:
                    v = img[r, c]
                if v == v:
                    x = (v - mu) * inv
                    out[0, k, i, j] = x
                    out[1, k, i, j] = x * x
                    out[2, k, i, j] = 1.0
                else:
                    out[0, k, i, j] = 0.0
                    out[1, k, i, j] = 0.0
                    out[2, k, i, j] = 0.0


def cut_planes(img: np.ndarray, r0s: np.ndarray, c0s: np.ndarray, shape: tuple[int, int],
               frame: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cut every cell's region and write the three float32 planes the masked FFT
    correlation transforms, zero-padded to the FFT frame, in one array.

    Parameters
    ----------
    img : numpy.ndarray
        2-D surface (NaN = missing), e.g. the rotated target.
    r0s, c0s : numpy.ndarray
        ``(K,)`` top-left corners of the regions in ``img`` pixels (may lie outside).
    shape : tuple of int
        Region shape ``(Hr, Wr)`` in pixels.
    frame : tuple of int
        FFT frame ``(L0, L1)``, at least ``shape``.

    Returns
    -------
    planes : numpy.ndarray
        ``(3, K, L0, L1)`` float32: standardised region (mean 0, sd 1 over its valid
        pixels, 0 where missing), its square, and the validity mask; 0 outside the region.
    frac : numpy.ndarray
        ``(K,)`` valid fraction of each region.
    """
    img = np.ascontiguousarray(img, dtype=np.float64)
    K = len(r0s)
    Hr, Wr = int(shape[0]), int(shape[1])
    L0, L1 = int(frame[0]), int(frame[1])
    if L0 < Hr or L1 < Wr:
        raise ValueError("the FFT frame must hold the region")
    out = np.empty((3, K, L0, L1), dtype=np.float32)
    frac = np.empty(K)
    _cut_planes(img, np.ascontiguousarray(r0s, dtype=np.int64), np.ascontiguousarray(c0s, dtype=np.int64),
                Hr, Wr, out, frac)
    return out, frac
