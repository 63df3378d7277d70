"""Local (sliding-window) correlation of two aligned height maps (no plotting here)."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["local_correlation"]


def local_correlation(x: np.ndarray, y: np.ndarray, window_px: int = 25,
                      min_valid: float = 0.5) -> np.ndarray:
    """Correlation of two aligned height maps in a sliding square window.

    Window sums are box filters (:func:`scipy.ndimage.uniform_filter`) over the jointly
    measured pixels, so missing data never counts as zeros.

    Parameters
    ----------
    x, y : numpy.ndarray
        Same-shape height maps (NaN where not measured).
    window_px : int
        Window side in pixels (at least 3).
    min_valid : float
        Minimum fraction (0..1) of jointly valid pixels in a window (else NaN).

    Returns
    -------
    numpy.ndarray
        Pearson correlation -1..1 per pixel, NaN where undefined.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 20))
    >>> r = local_correlation(x, 2 * x + 1, window_px=5)
    >>> bool(np.allclose(r[np.isfinite(r)], 1.0))
    True
    """
    from scipy.ndimage import uniform_filter

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.ndim != 2 or x.shape != y.shape:
        raise ParameterError(f"local_correlation needs two 2-D maps of equal shape, got {x.shape} and {y.shape}.")
    if int(window_px) != window_px or window_px < 3:
        raise ParameterError(f"window_px must be an integer of at least 3 pixels, got {window_px}.")
    if not (0.0 <= min_valid <= 1.0):
        raise ParameterError(f"min_valid must be a fraction within 0..1, got {min_valid}.")
    m = (np.isfinite(x) & np.isfinite(y)).astype(float)
    x0 = np.where(m > 0, x, 0.0)
    y0 = np.where(m > 0, y, 0.0)

    def box(v: np.ndarray) -> np.ndarray:
        return uniform_filter(v, size=int(window_px), mode="constant")

    n = box(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = box(x0) / n
        my = box(y0) / n
        vx = box(x0 * x0) / n - mx * mx
        vy = box(y0 * y0) / n - my * my
        cxy = box(x0 * y0) / n - mx * my
        r = cxy / np.sqrt(vx * vy)
    r[(n < min_valid) | (m == 0) | ~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)
