"""Nearest-neighbour rotation of a surface about its centre (Numba kernel).

The Congruent Matching Cells method rotates the target surface by each candidate
angle before the reference cells are matched in it (Song 2013; cmcR rotates with
nearest-neighbour interpolation about the centre, Zemmels et al. 2023).  Missing
values stay missing: a pixel whose source falls outside the input or on a NaN is NaN.

Convention (shared by the whole comparison stage, and the same as cmcR's
``imager::imrotate``): a positive angle turns the *content* clockwise as displayed
(rows down, columns right), i.e. from the +column axis towards the +row axis.  The
output pixel ``(i, j)`` takes the input at::

    r = cr_in + cos(t) * (i - cr_out) - sin(t) * (j - cc_out)
    c = cc_in + cos(t) * (j - cc_out) + sin(t) * (i - cr_out)

rounded to the nearest pixel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["rotate_nearest"]


@njit(parallel=True, cache=True)
def _rotate_nearest(img, theta_rad, out_rows, out_cols, cr_in, cc_in, cr_out, cc_out, pad):
    """Rotate ``img`` by ``theta_rad`` (nearest neighbour) into a NaN-padded output.

    The output has ``out_rows + 2 * pad`` rows and ``out_cols + 2 * pad`` columns; the
    centre ``(cr_out, cc_out)`` refers to the unpadded output.  Reference: Song (2013),
    "Proposed NIST ballistics identification system (NBIS) based on 3D topography
    measurements on correlation cells", the rotation step of the CMC method.
    """
    n_r, n_c = img.shape
    R = out_rows + 2 * pad
    C = out_cols + 2 * pad
    out = np.empty((R, C), dtype=np.float64)
    ct = math.cos(theta_rad)
    st = math.sin(theta_rad)
    for i in prange(R):
        di = (i - pad) - cr_out
        for j in range(C):
            dj = (j - pad) - cc_out
            r = cr_in + ct * di - st * dj
            c = cc_in + ct * dj + st * di
            ri = int(math.floor(r + 0.5))
            ci = int(math.floor(c + 0.5))
            if 0 <= ri < n_r and 0 <= ci < n_c:
                out[i, j] = img[ri, ci]
            else:
                out[i, j] = np.nan
    return out


def rotate_nearest(img: np.ndarray, theta_deg: float, out_shape: tuple[int, int] | None = None,
                   centre_in: tuple[float, float] | None = None,
                   centre_out: tuple[float, float] | None = None, pad: int = 0) -> np.ndarray:
    """Rotate a surface by ``theta_deg`` degrees about its centre, nearest neighbour.

    Parameters
    ----------
    img : numpy.ndarray
        2-D array (NaN = missing).
    theta_deg : float
        Angle in degrees; positive turns the content clockwise as displayed (rows down).
    out_shape : tuple of int, optional
        Shape of the output (pixels); default the input's shape.
    centre_in, centre_out : tuple of float, optional
        Rotation centres ``(row, col)`` in input and output pixels; default
        ``((rows - 1) / 2, (cols - 1) / 2)`` of each.
    pad : int
        NaN margin (pixels) added around the output on every side, so that regions
        near the border can be sliced without bounds checks.

    Returns
    -------
    numpy.ndarray
        The rotated surface, float64, NaN outside the input.

    References
    ----------
    Song, J. (2013). Proposed NIST ballistics identification system (NBIS) based on 3D
    topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
    """
    a = np.ascontiguousarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("rotate_nearest needs a 2-D array")
    if out_shape is None:
        out_shape = a.shape
    if centre_in is None:
        centre_in = ((a.shape[0] - 1) / 2.0, (a.shape[1] - 1) / 2.0)
    if centre_out is None:
        centre_out = ((out_shape[0] - 1) / 2.0, (out_shape[1] - 1) / 2.0)
    return _rotate_nearest(a, math.radians(float(theta_deg)), int(out_shape[0]), int(out_shape[1]),
                           float(centre_in[0]), float(centre_in[1]),
                           float(centre_out[0]), float(centre_out[1]), int(pad))
