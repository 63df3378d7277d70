"""Gaussian filtering of surfaces with missing data, and outlier removal.

Missing data are handled by **normalised convolution** (Knutsson & Westin 1993):
``G * (z w) / G * w`` with ``w`` the validity mask.  This is exactly the zeroth-order
Gaussian *regression* filter of ISO 16610-21/-28 (the local weighted mean with
Gaussian weights), the standard's answer to end effects and holes, so the two names
denote the same operator here.  It was preferred to the higher-order or robust
regression filters (ISO 16610-31/-71) because it is linear, costs two separable
OpenCV Gaussian blurs whatever the hole pattern (no per-pixel least squares), and
is what cmcR's band-pass amounts to inside the breech face; robustness to spikes is
provided by the separate outlier step instead.  Cut-off wavelengths follow ISO
16610-21: the Gaussian weighting function has 50 % transmission at the cut-off
``lambda_c``, i.e. ``sigma = lambda_c * sqrt(ln 2 / (2 pi^2)) ~= 0.1874 lambda_c``.

References
----------
Knutsson, H. & Westin, C.-F. (1993). Normalized and differential convolution. *CVPR*.
ISO 16610-21:2011 Linear profile filters: Gaussian filters; ISO 16610-28:2016 End effects.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["ISO_SIGMA_PER_CUTOFF", "nan_gaussian", "gaussian_lowpass", "gaussian_bandpass",
           "remove_outliers"]

#: sigma of the ISO 16610-21 Gaussian per unit cut-off wavelength.
ISO_SIGMA_PER_CUTOFF = math.sqrt(math.log(2.0) / (2.0 * math.pi ** 2))


def nan_gaussian(data: np.ndarray, sigma_px: float, min_weight: float = 1e-3) -> np.ndarray:
    """Normalised-convolution Gaussian smoothing of an array with NaN.

    Parameters
    ----------
    data : numpy.ndarray
        2-D array, NaN where missing.
    sigma_px : float
        Standard deviation of the Gaussian, pixels.
    min_weight : float
        Output is NaN where the local weight ``G * w`` falls below this (far from data).

    Returns
    -------
    numpy.ndarray
        Smoothed array (float64), defined wherever there is data within ~3 sigma.
    """
    if sigma_px <= 0:
        return np.asarray(data, dtype=np.float64).copy()
    valid = np.isfinite(data)
    offset = float(np.nanmean(data)) if valid.any() else 0.0
    z = np.where(valid, data - offset, 0.0).astype(np.float32)
    w = valid.astype(np.float32)
    num = cv2.GaussianBlur(z, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(w, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    out = num.astype(np.float64) / np.maximum(den, min_weight) + offset
    out[den < min_weight] = np.nan
    return out


def gaussian_lowpass(data: np.ndarray, spacing_m: float, cutoff_m: float) -> np.ndarray:
    """ISO 16610-21 Gaussian low-pass (cut-off ``cutoff_m`` metres), NaN-aware, mask kept."""
    out = nan_gaussian(data, ISO_SIGMA_PER_CUTOFF * cutoff_m / spacing_m)
    out[~np.isfinite(data)] = np.nan
    return out


def gaussian_bandpass(data: np.ndarray, spacing_m: float, short_m: float | None,
                      long_m: float | None) -> np.ndarray:
    """Gaussian band-pass: keep wavelengths between ``short_m`` and ``long_m`` metres.

    ``LP_short(z) - LP_long(z)`` with both low-passes by normalised convolution; the
    mask of ``data`` is kept.  ``None`` disables that side.
    """
    valid = np.isfinite(data)
    s = nan_gaussian(data, ISO_SIGMA_PER_CUTOFF * short_m / spacing_m) if short_m else data.copy()
    if long_m:
        s = s - nan_gaussian(np.where(valid, s, np.nan), ISO_SIGMA_PER_CUTOFF * long_m / spacing_m)
    s[~valid] = np.nan
    return s


def remove_outliers(
    data: np.ndarray,
    spacing_m: float,
    scale_m: float = 16e-6,
    k: float = 6.0,
    min_island_m2: float = (50e-6) ** 2,
) -> tuple[np.ndarray, dict[str, int]]:
    """Remove spikes and small isolated islands of data (drop-out debris).

    A pixel is a spike when it departs from the Gaussian low-pass at ``scale_m`` by
    more than ``k`` robust standard deviations (1.4826 MAD) of that residual.
    Connected valid islands smaller than ``min_island_m2`` are removed too.

    Returns
    -------
    cleaned : numpy.ndarray
        Copy of ``data`` with outliers set to NaN.
    counts : dict
        ``{"spikes": n, "island_pixels": m}``.
    """
    out = np.array(data, dtype=np.float64, copy=True)
    valid = np.isfinite(out)
    n_spikes = 0
    if valid.sum() > 10:
        lp = nan_gaussian(out, max(0.5, ISO_SIGMA_PER_CUTOFF * scale_m / spacing_m))
        r = out - lp
        rv = r[valid]
        mad = 1.4826 * float(np.median(np.abs(rv - np.median(rv))))
        if mad > 0:
            bad = valid & (np.abs(r - np.median(rv)) > k * mad)
            n_spikes = int(bad.sum())
            out[bad] = np.nan
            valid &= ~bad
    n_island = 0
    min_px = int(min_island_m2 / spacing_m ** 2)
    if min_px > 1:
        nlab, lab, stats, _ = cv2.connectedComponentsWithStats(valid.astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_px)
        small = small[small > 0]
        if small.size:
            kill = np.isin(lab, small)
            n_island = int(kill.sum())
            out[kill] = np.nan
    return out, {"spikes": n_spikes, "island_pixels": n_island}
