"""Robust levelling of height maps and illumination normalisation of images.

Height maps are levelled by subtracting a least-absolute-deviation (median) plane,
optionally a second-order surface, fitted by iteratively re-weighted least squares
(IRLS); the median fit ignores the few per cent of debris, drop-outs and edge
artefacts that bias an ordinary least-squares plane (cmcR uses the same median /
quantile-0.5 plane).  Optical images carry no heights: their slowly varying
illumination is divided out (flat-field), and the result is centred on zero.

References
----------
Koenker, R. & Bassett, G. (1978). Regression quantiles. *Econometrica* 46(1), 33-50.
Zemmels, Hofmann & VanderPlas (2022). cmcR, *R Journal* (``preProcess_removeTrend``
with ``statistic = "quantile", tau = 0.5``).
"""

from __future__ import annotations

import numpy as np

from ..errors import EmptyScanError

__all__ = ["robust_level", "normalise_illumination"]


def _design(y: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    cols = [np.ones_like(x), y, x]
    if order >= 2:
        cols += [y * y, x * y, x * x]
    return np.column_stack(cols)


def robust_level(
    data: np.ndarray,
    spacing: tuple[float, float],
    order: int = 1,
    max_points: int = 20_000,
    n_iter: int = 30,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract a median (L1) plane or second-order surface from a height map.

    Parameters
    ----------
    data : numpy.ndarray
        Heights in metres; NaN where not measured.
    spacing : (float, float)
        Pixel spacing ``(dy, dx)`` in metres (coefficients are per metre).
    order : {1, 2}
        1: plane; 2: second-order polynomial surface (for curved primers).
    max_points : int
        Fit on at most this many randomly chosen valid pixels (seeded, reproducible).
    n_iter : int
        IRLS iterations.
    seed : int
        Random seed of the subsample.

    Returns
    -------
    levelled : numpy.ndarray
        ``data`` minus the fitted surface (NaN preserved).
    coef : numpy.ndarray
        Surface coefficients (metres, metres per metre, ...) of
        ``1, y, x[, y^2, xy, x^2]`` with ``y, x`` in metres from the array centre.

    References
    ----------
    Koenker & Bassett (1978), regression quantiles.
    """
    if order not in (1, 2):
        raise ValueError("order must be 1 or 2")
    valid = np.isfinite(data)
    idx = np.flatnonzero(valid)
    if idx.size < 6:
        raise EmptyScanError("Too few measured pixels to level the surface (need at least 6).")
    if idx.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    h, w = data.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    iy, ix = np.divmod(idx, w)
    y = (iy - cy) * spacing[0]
    x = (ix - cx) * spacing[1]
    z = data.ravel()[idx]
    a = _design(y, x, order)
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    an = a / scale
    coef, *_ = np.linalg.lstsq(an, z, rcond=None)
    eps = max(1e-12, 1e-6 * float(np.std(z)))
    for _ in range(n_iter):
        r = np.abs(z - an @ coef)
        wts = 1.0 / np.maximum(r, eps)
        sw = np.sqrt(wts)
        new, *_ = np.linalg.lstsq(an * sw[:, None], z * sw, rcond=None)
        if np.allclose(new, coef, rtol=1e-7, atol=1e-12):
            coef = new
            break
        coef = new
    coef = coef / scale
    yy = (np.arange(h) - cy)[:, None] * spacing[0]
    xx = (np.arange(w) - cx)[None, :] * spacing[1]
    surf = coef[0] + coef[1] * yy + coef[2] * xx
    if order == 2:
        surf = surf + coef[3] * yy * yy + coef[4] * xx * yy + coef[5] * xx * xx
    return data - surf, coef


def normalise_illumination(data: np.ndarray, spacing: tuple[float, float],
                           sigma_m: float = 250e-6) -> np.ndarray:
    """Divide an image by its smoothed self (flat-field) and centre it on zero.

    Parameters
    ----------
    data : numpy.ndarray
        Intensity image; NaN where masked.
    spacing : (float, float)
        Pixel spacing in metres.
    sigma_m : float
        Standard deviation of the Gaussian illumination estimate, metres.

    Returns
    -------
    numpy.ndarray
        ``data / illumination - 1`` (relative contrast, dimensionless), NaN preserved.
    """
    from ._filter import nan_gaussian

    illum = nan_gaussian(data, sigma_m / spacing[1])
    out = data / np.where(illum > 0, illum, np.nan) - 1.0
    return out
