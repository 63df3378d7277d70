"""Coarse-grid helpers of region finding: block means, NaN-aware smoothing, edge points."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..errors import RegionNotFoundError
from ._circle import Circle

__all__ = ["MIN_PRIMER_COVERAGE", "MIN_PRIMER_SUPPORT", "block_nanmean", "boundary_points", "check_circle",
           "largest", "nc_smooth"]


def block_nanmean(data: np.ndarray, f: int, min_valid: float = 0.5) -> np.ndarray:
    """Mean of ``f x f`` blocks ignoring NaN; NaN where fewer than ``min_valid`` are valid.

    Trailing rows / columns that do not fill a block are dropped.  Uses OpenCV's area
    resampling (exact block means for an integer factor) on the zero-filled data and
    on the validity mask.
    """
    if f <= 1:
        return data.copy()
    h, w = data.shape
    h2, w2 = h // f * f, w // f * f
    a = data[:h2, :w2]
    v = np.isfinite(a)
    off = float(np.mean(a[v])) if v.any() else 0.0
    z = np.where(v, a - off, 0.0).astype(np.float32)
    size = (w2 // f, h2 // f)
    s = cv2.resize(z, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    n = cv2.resize(v.astype(np.float32), size, interpolation=cv2.INTER_AREA).astype(np.float64)
    return np.where(n >= min_valid - 1e-6, s / np.maximum(n, 1e-9) + off, np.nan)


def nc_smooth(z: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised-convolution Gaussian smoothing (NaN-aware), float32."""
    v = np.isfinite(z)
    zz = np.where(v, z, 0.0).astype(np.float32)
    w = v.astype(np.float32)
    num = cv2.GaussianBlur(zz, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    out = num / np.maximum(den, 1e-6)
    out[den < 1e-3] = np.nan
    return out


def boundary_points(mask: np.ndarray) -> np.ndarray:
    """``(y, x)`` of the mask's boundary pixels, ignoring the image border."""
    edge = mask & ~ndi.binary_erosion(mask)
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    return np.argwhere(edge).astype(float)


def largest(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of ``mask`` (``mask`` itself when it is empty)."""
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


#: Minimum inlier fraction and angular coverage of an accepted primer circle.
#: (support = inliers / (inliers + points outside the circle): hole boundaries that an
#: off-centre scan cuts open lie inside the primer and do not count against it.)
MIN_PRIMER_SUPPORT, MIN_PRIMER_COVERAGE = 0.5, 0.4


def check_circle(c: Circle | None, what: str, name: str) -> Circle:
    if c is None or c.support < MIN_PRIMER_SUPPORT or c.coverage < MIN_PRIMER_COVERAGE:
        detail = "no admissible circle" if c is None else (
            f"best circle explains {100 * c.support:.0f} % of the edge points on or outside it over "
            f"{100 * c.coverage:.0f} % of the circumference")
        raise RegionNotFoundError(
            f"Could not find the {what} in {name!r}: {detail}. Check that the scan shows a "
            "primer, or adjust the radius range (in metres) passed to find_regions().")
    return c
