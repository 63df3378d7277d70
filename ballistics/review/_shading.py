"""Virtual light: Lambertian hill-shading of a height map (no plotting here).

References
----------
Horn, B. K. P. (1981). Hill shading and the reflectance map. Proc. IEEE 69(1), 14-47.
"""

from __future__ import annotations

import numpy as np

from ..errors import EmptyScanError, ParameterError

__all__ = ["hillshade"]


def hillshade(data: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0),
              azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
              vertical_exaggeration: float = 1.0) -> np.ndarray:
    """Virtual-light rendering (Lambertian hill-shading) of a height map.

    Parameters
    ----------
    data : numpy.ndarray
        Heights (metres), NaN where not measured.
    spacing : (float, float)
        Pixel spacing ``(dy, dx)`` in metres (same unit as the heights).
    azimuth_deg : float
        Direction the light comes from, degrees clockwise from the top of the image.
    altitude_deg : float
        Elevation of the light above the surface plane, degrees (0-90).
    vertical_exaggeration : float
        Factor applied to the heights before shading (1 = true slopes).

    Returns
    -------
    numpy.ndarray
        Illumination 0 (shadow) .. 1 (fully lit), NaN where ``data`` is NaN; stretched
        so that the 0.5 and 99.5 percentiles of the measured pixels map to 0 and 1.

    References
    ----------
    Horn (1981), Hill shading and the reflectance map; implemented with
    :meth:`matplotlib.colors.LightSource.hillshade`.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.linspace(0, 1e-4, 50), (20, 1))     # rises to the east
    >>> shade = hillshade(ramp, (1e-5, 1e-5), azimuth_deg=90)  # light from the east
    >>> bool(np.nanmean(shade) > 0.4)
    True
    """
    from matplotlib.colors import LightSource

    z = np.asarray(data, dtype=np.float64)
    if z.ndim != 2:
        raise ParameterError(f"hillshade needs a 2-D height map, got shape {z.shape}.")
    if not (0.0 <= altitude_deg <= 90.0):
        raise ParameterError(f"altitude_deg must be within 0..90 degrees, got {altitude_deg}.")
    if not all(np.isfinite(float(v)) and float(v) > 0 for v in spacing):
        raise ParameterError(f"spacing must be two positive lengths (dy, dx), got {spacing}.")
    valid = np.isfinite(z)
    if not valid.any():
        raise EmptyScanError("The height map holds no measured values; nothing to shade.")
    filled = np.where(valid, z, np.nanmedian(z))
    ls = LightSource(azdeg=float(azimuth_deg) % 360.0, altdeg=float(altitude_deg))
    shade = ls.hillshade(filled, vert_exag=float(vertical_exaggeration),
                         dx=float(spacing[1]), dy=float(spacing[0]))
    shade = np.where(valid, shade, np.nan)
    # re-stretch on the measured pixels only (the fill must not set the contrast)
    lo, hi = np.nanpercentile(shade, [0.5, 99.5])
    if hi > lo:
        shade = np.clip((shade - lo) / (hi - lo), 0.0, 1.0)
    return shade
