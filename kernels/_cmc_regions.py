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

__all__ = ["cut_regions"]


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
