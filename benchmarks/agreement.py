"""Agreement of two extracted surfaces on different grids: IoU of masks, height correlation.

Used to check this engine's breech faces against a reference implementation's
(cmcR).  The two arrays have the same spacing but different crops, so they are first
aligned by the integer translation that maximises the FFT cross-correlation of the
(zero-filled, mean-removed) heights; the overlap of valid masks (intersection over
union, counting every valid pixel of both) and the Pearson correlation of heights on
the common pixels are then reported.

References
----------
Lewis, J. P. (1995). Fast normalized cross-correlation. *Vision Interface*.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import fftconvolve

__all__ = ["surface_agreement"]


def _overlay(a: np.ndarray, shape: tuple[int, int], sy: int, sx: int) -> np.ndarray:
    out = np.full(shape, np.nan)
    y0, x0 = max(0, sy), max(0, sx)
    ay0, ax0 = max(0, -sy), max(0, -sx)
    h = min(a.shape[0] - ay0, shape[0] - y0)
    w = min(a.shape[1] - ax0, shape[1] - x0)
    if h > 0 and w > 0:
        out[y0:y0 + h, x0:x0 + w] = a[ay0:ay0 + h, ax0:ax0 + w]
    return out


def surface_agreement(a: np.ndarray, ref: np.ndarray, edge_px: int = 8) -> dict[str, Any]:
    """Align ``a`` onto ``ref`` (same pixel size) and measure their agreement.

    Parameters
    ----------
    a, ref : numpy.ndarray
        Two extracted surfaces (NaN outside their regions) with the same spacing.
    edge_px : int
        Also report the correlation on pixels at least this far (pixels) from the
        edge of the common region (filter edge effects differ between implementations).

    Returns
    -------
    dict
        ``shift`` (rows, columns of ``a`` in ``ref``), ``iou`` of the valid masks,
        ``correlation`` of heights on common pixels, ``correlation_interior`` away
        from edges, ``std_ratio`` (std of ``a`` / std of ``ref`` on common pixels).
    """
    A = np.where(np.isfinite(a), a - np.nanmean(a), 0.0)
    R = np.where(np.isfinite(ref), ref - np.nanmean(ref), 0.0)
    cc = fftconvolve(R, A[::-1, ::-1], mode="full")
    iy, ix = np.unravel_index(int(np.argmax(cc)), cc.shape)
    sy, sx = int(iy - (a.shape[0] - 1)), int(ix - (a.shape[1] - 1))
    # place both on a canvas holding all of a and all of ref
    pad_y0, pad_x0 = max(0, -sy), max(0, -sx)
    H = max(ref.shape[0] + pad_y0, sy + pad_y0 + a.shape[0])
    W = max(ref.shape[1] + pad_x0, sx + pad_x0 + a.shape[1])
    aa = _overlay(a, (H, W), sy + pad_y0, sx + pad_x0)
    rr = _overlay(ref, (H, W), pad_y0, pad_x0)
    ma, mr = np.isfinite(aa), np.isfinite(rr)
    both = ma & mr
    union = (ma | mr).sum()
    out: dict[str, Any] = {"shift": (sy, sx), "iou": float(both.sum() / union) if union else 0.0}
    if both.sum() > 10:
        out["correlation"] = float(np.corrcoef(aa[both], rr[both])[0, 1])
        inner = both & (ndi.distance_transform_edt(both) > edge_px)
        out["correlation_interior"] = (float(np.corrcoef(aa[inner], rr[inner])[0, 1])
                                       if inner.sum() > 10 else float("nan"))
        out["std_ratio"] = float(np.std(aa[both]) / np.std(rr[both]))
    else:
        out.update(correlation=float("nan"), correlation_interior=float("nan"), std_ratio=float("nan"))
    return out
