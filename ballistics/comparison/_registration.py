"""Consensus registration: resample ``b`` into ``a``'s frame, areal correlation.

The rotation and translation follow the convention documented in
:class:`~ballistics.comparison.Comparison`: ``x_b = c_b + M(theta) (x_a - c_a + t)``.
Nearest-neighbour resampling (the same kernel as the cell search) keeps the measured
heights unchanged and missing data missing.

References
----------
Song, J. (2013). AFTE Journal 45(2): the areal cross-correlation function (ACCF) of the
registered surfaces as a whole-surface similarity.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ComparisonError
from ..kernels._cmc_rotate import rotate_nearest
from ..scan import Scan

__all__ = ["align_array", "areal_correlation", "align", "aligned_pair", "rotation_matrix"]


def rotation_matrix(theta_deg: float) -> np.ndarray:
    """``M(theta)`` acting on ``(row, col)`` vectors (clockwise as displayed for theta > 0)."""
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def align_array(b: np.ndarray, out_shape: tuple[int, int], theta_deg: float,
                translation_px: tuple[float, float]) -> np.ndarray:
    """``b`` resampled into a frame of ``out_shape``: ``out[x] = b[c_b + M (x - c_a + t)]``."""
    c_a = np.array([(out_shape[0] - 1) / 2.0, (out_shape[1] - 1) / 2.0])
    c_b = np.array([(b.shape[0] - 1) / 2.0, (b.shape[1] - 1) / 2.0])
    centre_in = c_b + rotation_matrix(theta_deg) @ np.asarray(translation_px, float)
    return rotate_nearest(b, theta_deg, out_shape=out_shape, centre_in=tuple(centre_in), centre_out=tuple(c_a))


def areal_correlation(a: np.ndarray, b_aligned: np.ndarray, min_overlap: int = 500) -> float | None:
    """Pearson correlation over the pixels valid in both arrays; None if fewer than
    ``min_overlap`` such pixels or no variance."""
    m = np.isfinite(a) & np.isfinite(b_aligned)
    n = int(m.sum())
    if n < min_overlap:
        return None
    x = a[m] - a[m].mean()
    y = b_aligned[m] - b_aligned[m].mean()
    d = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    if d <= 0:
        return None
    return float((x * y).sum() / d)


def _registration(comparison) -> tuple[float, tuple[float, float]]:
    d = comparison.directions["a_to_b"]
    theta = comparison.rotation_deg
    t = d.get("translation_px")
    if theta is None or t is None or not np.all(np.isfinite([theta, *t])):
        raise ComparisonError("The comparison has no finite consensus registration to align with.")
    return float(theta), (float(t[0]), float(t[1]))


def _b_data(b_s: Scan, comparison) -> np.ndarray:
    """``b``'s heights in the handedness the comparison matched (rows reversed if mirrored)."""
    return b_s.data[::-1] if getattr(comparison, "mirrored", False) else b_s.data


def aligned_pair(a: Scan, b: Scan, comparison) -> tuple[np.ndarray, np.ndarray]:
    """``(a.data, b aligned into a's frame)`` with the comparison's consensus registration.

    Parameters
    ----------
    a, b : Scan
        The two surfaces passed to :func:`~ballistics.comparison.compare` (in that order);
        ``b`` is mirrored (rows reversed) first if the comparison matched it mirrored.
    comparison : Comparison
        Its result.

    Returns
    -------
    tuple of numpy.ndarray
        Two arrays of ``a``'s shape (heights in metres, NaN = missing) that overlay.
    """
    a_s = getattr(a, "scan", a)
    b_s = getattr(b, "scan", b)
    theta, t = _registration(comparison)
    return a_s.data, align_array(_b_data(b_s, comparison), a_s.shape, theta, t)


def align(b_scan: Scan, comparison) -> Scan:
    """``b`` resampled into ``a``'s frame (a new :class:`~ballistics.Scan`, provenance kept).

    Parameters
    ----------
    b_scan : Scan
        The second surface of the comparison.
    comparison : Comparison
        Result of ``compare(a, b)``; its ``frames["a_shape"]`` gives the output shape.
    """
    b_s = getattr(b_scan, "scan", b_scan)
    theta, t = _registration(comparison)
    shape = tuple(comparison.frames.get("a_shape", b_s.shape))
    mirrored = bool(getattr(comparison, "mirrored", False))
    data = align_array(_b_data(b_s, comparison), shape, theta, t)
    return b_s.derive(data, "align_to_reference",
                      {"rotation_deg": theta, "translation_px": list(t), "reference": comparison.a_name,
                       "reference_shape": list(shape), "mirrored": mirrored})
