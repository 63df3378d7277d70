"""Shared colour ranges and image extents of height maps (no plotting here)."""

from __future__ import annotations

import numpy as np

from ..errors import EmptyScanError, ParameterError
from ..scan import Scan

__all__ = ["common_limits", "extent_mm"]


def common_limits(*scans: Scan, percentile: tuple[float, float] = (1.0, 99.0),
                  symmetric: bool = False) -> tuple[float, float]:
    """One colour range (um) for several scans, so their colours mean the same heights.

    Parameters
    ----------
    *scans : Scan
        Height scans (metres).
    percentile : (float, float)
        Lower and upper percentiles of the pooled valid heights (robust to spikes).
    symmetric : bool
        Make the range symmetric about zero.

    Returns
    -------
    (float, float)
        ``(vmin, vmax)`` in micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> from ballistics import scan_from_array
    >>> s = scan_from_array(np.linspace(-1e-6, 1e-6, 101).reshape(1, 101), (1e-6, 1e-6))
    >>> common_limits(s, percentile=(0, 100))
    (-1.0, 1.0)
    """
    lo_p, hi_p = (float(p) for p in percentile)
    if not (0.0 <= lo_p < hi_p <= 100.0):
        raise ParameterError(f"percentile must be (low, high) with 0 <= low < high <= 100, got {percentile}.")
    vals = [s.data[s.mask] for s in scans if s.mask.any()]
    if not vals:
        raise EmptyScanError("No measured heights in the scans given; nothing to scale colours to.")
    pooled = np.concatenate(vals) * 1e6
    lo, hi = np.percentile(pooled, [lo_p, hi_p])
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    if hi <= lo:
        hi = lo + 1e-3
    return float(lo), float(hi)


def extent_mm(s: Scan) -> tuple[float, float, float, float]:
    """``imshow`` extent ``[left, right, bottom, top]`` in mm; 0 is the centre of pixel (0, 0).

    Positions in the library are measured from the centre of pixel (0, 0), so pixel
    ``(r, c)`` is drawn at ``(c * dx, r * dy)``.

    Parameters
    ----------
    s : Scan
        Any scan (its ``shape`` and ``spacing`` in metres are used).

    Returns
    -------
    (float, float, float, float)
        Millimetres, rows growing downwards.
    """
    h, w = s.shape
    dy, dx = s.spacing
    return (-0.5 * dx * 1e3, (w - 0.5) * dx * 1e3, (h - 0.5) * dy * 1e3, -0.5 * dy * 1e3)
