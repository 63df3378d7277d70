"""Primer edge and firing-pin crater of a *fully measured* height map.

Some instruments (Cadre TopMatch / GelSight, many focus-variation and confocal set-ups
with a wide field) measure every pixel, the head of the case around the primer
included, so the primer edge cannot be taken from the boundary of the measured area.
Here it is taken from the topography itself:

1. **Case-head plane.**  The head of the case surrounds the primer and reaches the
   border of a whole-primer scan.  A plane is fitted to a band along the image border
   by trimmed least squares (iteratively dropping pixels more than 3 robust standard
   deviations from it, lower outliers first: parts of the primer that touch the
   border).  Heights are taken relative to it.
2. **Primer = recessed area.**  The primer sits below the case head: a circular step.
   Pixels clearly below the case head (more than 4 robust standard deviations of the
   case-head residuals and at least half of ``min_step_m``) give the step height (their
   median); the primer foreground is every pixel below half that step.  The step must
   be at least ``min_step_m`` or no primer is reported.
3. **Edge points = step + slope.**  Only foreground-boundary points where the smoothed
   surface is steep (a step, not the grain of the texture) are offered to the RANSAC
   circle fit of :mod:`._regions`.
4. **Firing-pin crater = depth + curvature.**  A plane is fitted (trimmed least
   squares) to the primer surface; the crater is the largest connected area deeper than
   ``min_crater_depth_m`` (and six robust standard deviations of the primer surface)
   below it, near the primer centre, whose mean curvature (Laplacian of the heights
   smoothed at 50 um) is positive: a bowl, not a dent of debris on a bump.

Every threshold is a physical length (metres) or an angle; the coarse grid's spacing
converts them.

References
----------
Fischler & Bolles (1981), RANSAC. *Comm. ACM* 24(6), 381-395.
Rousseeuw & Leroy (1987), *Robust Regression and Outlier Detection*, Wiley (trimmed
least squares, MAD scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..errors import RegionNotFoundError

__all__ = ["TopographyForeground", "crater_from_depth", "fully_measured", "topography_foreground"]

#: A height map counts as fully measured when unmeasured pixels connected to the image
#: border (the area outside the primer of a confocal scan) cover less than this share.
MAX_OUTSIDE_MISSING = 0.02


def fully_measured(valid: np.ndarray) -> tuple[bool, float]:
    """Whether a validity mask leaves no unmeasured area around the primer.

    Parameters
    ----------
    valid : numpy.ndarray of bool
        Measured pixels of the (coarse) height map.

    Returns
    -------
    (bool, float)
        ``True`` when the unmeasured pixels connected to the image border cover less
        than :data:`MAX_OUTSIDE_MISSING` of the image, and that share.
    """
    lab, n = ndi.label(~valid)
    if n == 0:
        return True, 0.0
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    border = border[border > 0]
    frac = float(np.isin(lab, border).mean()) if border.size else 0.0
    return frac < MAX_OUTSIDE_MISSING, frac


def _fill(d: np.ndarray, sigma: float) -> np.ndarray:
    """NaN pixels replaced by a normalised-convolution Gaussian average (iterated)."""
    z = d.astype(np.float64)
    for s in (sigma, 4 * sigma, 16 * sigma, 64 * sigma):
        bad = ~np.isfinite(z)
        if not bad.any():
            break
        v = ~bad
        num = cv2.GaussianBlur(np.where(v, z, 0.0).astype(np.float32), (0, 0), s)
        den = cv2.GaussianBlur(v.astype(np.float32), (0, 0), s)
        est = np.where(den > 1e-4, num / np.maximum(den, 1e-6), np.nan)
        z = np.where(bad, est, z)
    if not np.isfinite(z).all():
        z = np.where(np.isfinite(z), z, np.nanmedian(z))
    return z


def _trimmed_plane(z: np.ndarray, sel: np.ndarray, *, low_first: bool,
                   n_iter: int = 8, max_points: int = 40_000) -> tuple[np.ndarray, float, np.ndarray]:
    """Plane fitted by trimmed least squares to ``z[sel]``.

    Returns the plane over the whole grid, the robust (MAD) standard deviation of the
    kept residuals and the kept-pixel mask.
    """
    ys, xs = np.nonzero(sel)
    if ys.size > max_points:
        idx = np.random.default_rng(0).choice(ys.size, max_points, replace=False)
        ys, xs = ys[idx], xs[idx]
    vals = z[ys, xs]
    a = np.column_stack([ys, xs, np.ones_like(ys)]).astype(np.float64)
    keep = np.ones(ys.size, bool)
    coef = np.zeros(3)
    sig = 0.0
    for it in range(n_iter):
        if keep.sum() < 3:
            break
        coef, *_ = np.linalg.lstsq(a[keep], vals[keep], rcond=None)
        res = vals - a @ coef
        med = float(np.median(res[keep]))
        sig = max(1.4826 * float(np.median(np.abs(res[keep] - med))), 1e-12)
        if low_first and it < 2:
            new = res > med - 2.0 * sig  # drop the recessed part (primer touching the border) first
        else:
            new = np.abs(res - med) < 3.0 * sig
        if np.array_equal(new, keep):
            break
        keep = new
    yy, xx = np.indices(z.shape)
    plane = coef[0] * yy + coef[1] * xx + coef[2]
    kept = np.zeros(z.shape, bool)
    kept[ys[keep], xs[keep]] = True
    return plane, sig, kept


@dataclass(frozen=True)
class TopographyForeground:
    """The recessed primer of a fully measured scan on the coarse grid.

    Attributes
    ----------
    foreground : numpy.ndarray of bool
        Pixels below the case head by more than half the step.
    steep : numpy.ndarray of bool
        Pixels steep enough to be part of the step (edge-point filter).
    surface : numpy.ndarray
        Gap-filled, smoothed heights (metres) used for the crater search.
    info : dict
        ``step_m``, ``case_head_rms_m``, ``threshold_m``, ``edge_slope_deg``.
    """

    foreground: np.ndarray
    steep: np.ndarray
    surface: np.ndarray
    info: dict[str, Any]


def topography_foreground(d: np.ndarray, sp: float, name: str, *, min_step_m: float,
                          edge_slope_deg: float) -> TopographyForeground:
    """Find the recessed primer in a fully measured coarse height map.

    Parameters
    ----------
    d : numpy.ndarray
        Coarse heights, metres (a few NaN allowed).
    sp : float
        Coarse pixel size, metres.
    name : str
        Scan name for messages.
    min_step_m : float
        Smallest step between the case head and the primer accepted, metres.
    edge_slope_deg : float
        Slope (degrees) of the crater rim; the primer step must be at least a third of it.

    Returns
    -------
    TopographyForeground

    Raises
    ------
    RegionNotFoundError
        No recessed area, or a step below ``min_step_m``.
    """
    z = _fill(d, max(1.0, 25e-6 / sp))
    zs = cv2.GaussianBlur(z.astype(np.float32), (0, 0), max(1.0, 25e-6 / sp)).astype(np.float64)
    h, w = zs.shape
    bw = max(2, round(0.03 * min(h, w)))
    band = np.zeros(zs.shape, bool)
    band[:bw], band[-bw:], band[:, :bw], band[:, -bw:] = True, True, True, True
    plane, sig, _ = _trimmed_plane(zs, band, low_first=True)
    rel = zs - plane
    sig = max(sig, 0.05e-6)
    below = rel < -max(4.0 * sig, 0.5 * min_step_m)
    if below.mean() < 0.05:
        raise RegionNotFoundError(
            f"Height map {name!r} is measured everywhere and shows no recessed primer: less than 5 % "
            f"of it lies below the case head (plane along the image border) by more than "
            f"{max(4 * sig, 0.5 * min_step_m) * 1e6:.1f} um. Scan the whole primer with the case head "
            "around it, or mask the case head (NaN) before extracting.")
    step = float(-np.median(rel[below]))
    if step < min_step_m:
        raise RegionNotFoundError(
            f"Height map {name!r}: the step between the case head and the primer is only "
            f"{step * 1e6:.1f} um (minimum {min_step_m * 1e6:.1f} um); no primer edge found.")
    thr = -max(0.5 * step, 4.0 * sig)
    # threshold the unsmoothed heights (3 x 3 median against noise): smoothing a step next
    # to a rounded, lower primer edge would move its half-height crossing outwards
    fg = ndi.median_filter(z - plane, size=3) < thr
    gy, gx = np.gradient(zs, sp)
    slope = np.hypot(gy, gx)
    # a step of height `step` spread over the smoothing width is steep; texture is not
    min_slope = min(math.tan(math.radians(edge_slope_deg)) / 3.0, 0.25 * step / (4 * max(25e-6, sp)))
    steep = ndi.binary_dilation(slope > min_slope, iterations=2)
    info = {"step_m": step, "case_head_rms_m": float(sig), "threshold_m": float(-thr),
            "edge_min_slope_deg": float(math.degrees(math.atan(min_slope))),
            "border_band_px": bw}
    return TopographyForeground(fg, steep, zs, info)


def crater_from_depth(zs: np.ndarray, sp: float, centre: tuple[float, float], radius: float, *,
                      min_depth_m: float, min_area_px: float
                      ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """The firing-pin crater inside a found primer, from depth and curvature.

    Parameters
    ----------
    zs : numpy.ndarray
        Smoothed, gap-filled coarse heights, metres.
    sp : float
        Coarse pixel size, metres.
    centre : (float, float)
        Primer centre on the coarse grid, pixels ``(y, x)``.
    radius : float
        Primer radius, pixels.
    min_depth_m : float
        Smallest depth below the primer plane that counts as crater, metres.
    min_area_px : float
        Smallest crater area, pixels.

    Returns
    -------
    core : numpy.ndarray of bool or None
        The deep part of the crater (holes filled), or None when there is none.
    extent : numpy.ndarray of bool or None
        The whole crater: the area connected to the core that lies more than
        ``max(5 um, 3 sigma)`` below the primer plane (the shallow outer wall included).
    info : dict
        ``depth_m`` (99th percentile of the depth inside), ``mean_curvature_per_m``
        (mean Laplacian of the heights inside; positive for a bowl), ``threshold_m``,
        ``primer_rms_m``.
    """
    yy, xx = np.indices(zs.shape)
    rp = np.hypot(yy - centre[0], xx - centre[1])
    inside = rp < 0.9 * radius
    if inside.sum() < 10:
        return None, None, {"reason": "primer too small"}
    plane, sig, _ = _trimmed_plane(zs, inside, low_first=False)
    depth = plane - zs
    thr = max(min_depth_m, 6.0 * sig)
    deep = (depth > thr) & inside
    info: dict[str, Any] = {"threshold_m": float(thr), "primer_rms_m": float(sig)}
    lab, n = ndi.label(deep)
    if n == 0:
        info["reason"] = "nothing deeper than the threshold"
        return None, None, info
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    lap = ndi.laplace(cv2.GaussianBlur(zs.astype(np.float32), (0, 0), max(1.0, 50e-6 / sp)).astype(np.float64))
    lap /= sp * sp
    for k in np.argsort(sizes)[::-1][:5]:
        if k == 0 or sizes[k] < min_area_px:
            break
        comp = ndi.binary_fill_holes(lab == k)
        cy, cx = ndi.center_of_mass(comp)
        if math.hypot(cy - centre[0], cx - centre[1]) > 0.6 * radius:
            continue
        curv = float(np.mean(lap[comp]))
        if curv <= 0:
            continue
        info.update(depth_m=float(np.percentile(depth[comp], 99)), mean_curvature_per_m=curv,
                    area_m2=float(comp.sum() * sp * sp))
        shallow_lab, _ = ndi.label((depth > max(5e-6, 3.0 * sig)) & inside)
        keys = np.unique(shallow_lab[comp])
        extent = ndi.binary_fill_holes(np.isin(shallow_lab, keys[keys > 0])) | comp
        return comp, extent, info
    info["reason"] = "no deep, concave area near the primer centre"
    return None, None, info
