"""Resampling a surface with missing data to a target pixel spacing, with anti-aliasing.

Before decimation, wavelengths shorter than twice the target spacing (the Nyquist
wavelength) are attenuated by an ISO Gaussian low-pass with cut-off
``aa_factor * 2 * target`` -- unless the caller states that the data were already
low-passed at least that much (the band-pass's short cut-off, e.g. 16 um before
going to 6.25 um, which is what cmcR relies on).  Integer factors keep every n-th
pixel (the grid stays aligned with the input, as in cmcR); other factors interpolate
bilinearly the masked data and the mask (normalised), so NaN do not spread.

References
----------
Shannon, C. E. (1949). Communication in the presence of noise. *Proc. IRE* 37(1).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ._filter import ISO_SIGMA_PER_CUTOFF, nan_gaussian

__all__ = ["resample"]


def resample(
    data: np.ndarray,
    spacing: tuple[float, float],
    target_m: float,
    prefiltered_cutoff_m: float = 0.0,
    aa_factor: float = 1.0,
) -> tuple[np.ndarray, tuple[float, float], dict]:
    """Resample to square pixels of ``target_m`` metres.

    Parameters
    ----------
    data : numpy.ndarray
        2-D array, NaN where missing.
    spacing : (float, float)
        Input spacing ``(dy, dx)``, metres.
    target_m : float
        Output pixel size, metres.
    prefiltered_cutoff_m : float
        Short-wave cut-off (metres) already applied to ``data``; anti-aliasing is
        skipped when it is at least the Nyquist wavelength ``2 * target_m``.
    aa_factor : float
        Anti-aliasing cut-off in units of the Nyquist wavelength.

    Returns
    -------
    out : numpy.ndarray
    new_spacing : (float, float)
    info : dict
        What was done (factor, method, anti-aliasing cut-off).
    """
    dy, dx = spacing
    fy, fx = target_m / dy, target_m / dx
    info: dict = {"target_spacing_m": target_m, "factor": [fy, fx]}
    if abs(fy - 1) < 1e-6 and abs(fx - 1) < 1e-6:
        info["method"] = "none"
        return data.copy(), (dy, dx), info
    valid = np.isfinite(data)
    work = data
    nyq = 2.0 * target_m
    if fy > 1 or fx > 1:
        if prefiltered_cutoff_m < nyq * aa_factor:
            cut = nyq * aa_factor
            work = nan_gaussian(data, ISO_SIGMA_PER_CUTOFF * cut / min(dy, dx))
            work[~valid] = np.nan
            info["antialias_cutoff_m"] = cut
        else:
            info["antialias_cutoff_m"] = None
            info["antialias_note"] = f"data already low-passed at {prefiltered_cutoff_m:g} m >= Nyquist {nyq:g} m"
    iy, ix = round(fy), round(fx)
    if abs(fy - iy) < 1e-6 and abs(fx - ix) < 1e-6 and iy >= 1 and ix >= 1:
        info["method"] = "decimate every n-th pixel"
        return np.ascontiguousarray(work[::iy, ::ix]), (dy * iy, dx * ix), info
    h, w = data.shape
    nh, nw = max(1, int(math.floor((h - 1) / fy)) + 1), max(1, int(math.floor((w - 1) / fx)) + 1)
    # output pixel k sits at input coordinate k * f (pixel-centre aligned at the origin)
    my = (np.arange(nh, dtype=np.float32) * fy)[:, None].repeat(nw, 1)
    mx = (np.arange(nw, dtype=np.float32) * fx)[None, :].repeat(nh, 0)
    z = np.where(np.isfinite(work), work, 0.0).astype(np.float32)
    m = np.isfinite(work).astype(np.float32)
    zi = cv2.remap(z, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mi = cv2.remap(m, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = np.where(mi > 0.5, zi / np.maximum(mi, 1e-6), np.nan).astype(np.float64)
    info["method"] = "bilinear (normalised)"
    return out, (dy * fy, dx * fx), info
