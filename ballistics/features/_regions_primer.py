"""Region finding, step 1: the coarse grid, the foreground and the primer edge.

The *foreground* is the measured area of a height map (data are missing outside the
primer of a confocal scan), the area recessed below the case head of a fully measured
height map (:mod:`._regions_topo`), or the bright disc of a ring-light image (Otsu
threshold of the smoothed image).  Its largest components are opened, their holes
filled, and a circle is fitted to their boundary with RANSAC (Fischler & Bolles 1981);
points on the image border are ignored, so off-centre scans that cut the primer work.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from ..errors import EmptyScanError, ParameterError, RegionNotFoundError
from ..scan import Scan
from ._circle import Circle, fit_circle_ransac
from ._regions_grid import (
    MIN_PRIMER_COVERAGE,
    MIN_PRIMER_SUPPORT,
    block_nanmean,
    boundary_points,
    check_circle,
    nc_smooth,
)
from ._regions_topo import fully_measured, topography_foreground

logger = logging.getLogger(__name__)

__all__ = ["Grid", "Primer", "check_arguments", "coarse_grid", "find_primer", "long_wave_fraction"]


@dataclass
class Grid:
    """The coarse copy of a scan that regions are found on.

    Attributes
    ----------
    d : numpy.ndarray
        Block means of the scan (NaN where not measured).
    valid : numpy.ndarray of bool
    f : int
        Block size, scan pixels per coarse pixel.
    sp : float
        Coarse pixel size, metres.
    tol : float
        RANSAC inlier distance, coarse pixels.
    open_px : int
        Opening of the foreground, coarse pixels (25 um).
    name, kind : str
        Of the scan.
    params : dict
        Every parameter used (recorded in ``Regions.params``).
    """

    d: np.ndarray
    valid: np.ndarray
    f: int
    sp: float
    tol: float
    open_px: int
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Primer:
    """The primer found on the grid: circle (coarse pixels), its component and the detector."""

    circle: Circle
    component: np.ndarray | None
    method: str
    smoothed: np.ndarray | None     # smoothed image (intensity scans), reused for the rim
    topo: Any                       # topography_foreground's result for fully measured scans


def check_arguments(scan: Any, primer_radius_range_m: Any, firing_pin_radius_range_m: Any,
                    lengths: dict[str, float], edge_slope_deg: float) -> tuple[float, float, float, float]:
    """Validate :func:`find_regions`'s arguments; the radius ranges as floats, metres."""
    if not isinstance(scan, Scan):
        raise ParameterError(f"find_regions needs a ballistics.Scan, got {type(scan).__name__}.")
    try:
        rmin_p, rmax_p = (float(v) for v in primer_radius_range_m)
        rmin_f, rmax_f = (float(v) for v in firing_pin_radius_range_m)
    except (TypeError, ValueError) as exc:
        raise ParameterError("radius ranges must be (min, max) in metres") from exc
    if not (0 < rmin_p < rmax_p < 0.05 and 0 < rmin_f < rmax_f < 0.05):
        raise ParameterError(
            f"radius ranges must be 0 < min < max in metres; got primer {primer_radius_range_m!r}, "
            f"firing pin {firing_pin_radius_range_m!r}.")
    for name, v in lengths.items():
        if not (0 <= float(v) < 1e-2):
            raise ParameterError(f"{name}={v!r} must be a length in metres (0 .. 10 mm).")
    if not (0 < edge_slope_deg < 90):
        raise ParameterError(f"edge_slope_deg={edge_slope_deg!r} must be between 0 and 90 degrees.")
    return rmin_p, rmax_p, rmin_f, rmax_f


def coarse_grid(scan: Scan, work_spacing_m: float, rmin_p: float, fit_tolerance_m: float,
                params: dict[str, Any]) -> Grid:
    """Block-average ``scan`` to about ``work_spacing_m`` after checking it can hold a primer."""
    scan.require_valid(0.0, "scan")
    dy, dx = scan.spacing
    if not math.isclose(dy, dx, rel_tol=0.02):
        raise RegionNotFoundError(
            f"Scan {scan.name!r} has non-square pixels ({dy:.3g} x {dx:.3g} m); resample it "
            "to square pixels before finding regions.")
    ext = scan.extent
    if max(ext) < 1.5 * rmin_p:
        raise RegionNotFoundError(
            f"Scan {scan.name!r} is only {ext[0] * 1e3:.3f} x {ext[1] * 1e3:.3f} mm, too small to "
            f"show a primer of radius >= {rmin_p * 1e3:.2f} mm; scan the whole primer.")
    f = max(1, int(round(work_spacing_m / dx)))
    sp = dx * f
    params["coarse_factor"] = f
    d = block_nanmean(scan.data, f)
    if min(d.shape) < 16:
        raise RegionNotFoundError(
            f"Scan {scan.name!r} has only {scan.shape[0]} x {scan.shape[1]} pixels at "
            f"{dx * 1e6:.3g} um: too few to locate a primer.")
    valid = np.isfinite(d)
    if valid.mean() < 0.05:
        raise EmptyScanError(
            f"Scan {scan.name!r} is {100 * (1 - valid.mean()):.1f} % unmeasured at {sp * 1e6:.3g} um "
            "resolution; there is no primer surface to work on.")
    return Grid(d=d, valid=valid, f=f, sp=sp, tol=max(1.5, fit_tolerance_m / sp),
                open_px=max(1, int(round(25e-6 / sp))), name=scan.name, kind=scan.kind, params=params)


def _foreground(g: Grid, min_step_m: float, edge_slope_deg: float) -> tuple[np.ndarray, np.ndarray | None, Any, str]:
    """Foreground mask, smoothed image (intensity), topography result and detector name."""
    if g.kind == "intensity":
        sm = nc_smooth(g.d, max(1.0, 25e-6 / g.sp))
        v = sm[np.isfinite(sm)]
        lo, hi = np.percentile(v, [1, 99])
        if hi - lo <= 0:
            raise RegionNotFoundError(f"Image {g.name!r} is uniform; there is no primer to find.")
        fg = np.isfinite(sm) & (sm > threshold_otsu(np.clip(v, lo, hi)))
        return fg, sm, None, "intensity"
    full, outside_missing = fully_measured(g.valid)
    g.params["outside_missing_fraction"] = outside_missing
    if not full:
        return g.valid, None, None, "measured-area"
    topo = topography_foreground(g.d, g.sp, g.name, min_step_m=min_step_m, edge_slope_deg=edge_slope_deg)
    return topo.foreground, None, topo, "topography"


def find_primer(g: Grid, rmin_p: float, rmax_p: float, min_step_m: float, edge_slope_deg: float) -> Primer:
    """Fit the primer edge: the best-supported circle of the three largest foreground components."""
    fg, sm, topo, method = _foreground(g, min_step_m, edge_slope_deg)
    logger.debug("%s: primer detector %r", g.name, method)
    body = ndi.binary_opening(fg, iterations=g.open_px)
    body = ndi.binary_fill_holes(body)
    # the primer is the biggest (filled) component; for images prefer the one nearest the centre
    lab, n = ndi.label(body)
    if n == 0:
        raise RegionNotFoundError(f"No primer-like area found in {g.name!r}.")
    sizes = np.bincount(lab.ravel())[1:]
    cands = np.argsort(sizes)[::-1][:3] + 1
    best: Circle | None = None
    best_comp: np.ndarray | None = None
    best_key = -1.0
    for k in cands:
        comp = lab == k
        pts = boundary_points(comp)
        if topo is not None:  # keep edge points on the step, not on the grain of the texture
            pts = pts[topo.steep[pts[:, 0].astype(int), pts[:, 1].astype(int)]]
        c = fit_circle_ransac(pts, g.tol, (rmin_p / g.sp, rmax_p / g.sp))
        if c is None or c.support < MIN_PRIMER_SUPPORT or c.coverage < MIN_PRIMER_COVERAGE:
            continue
        key = c.support * c.coverage * float(comp.sum())
        if key > best_key:
            best, best_key, best_comp = c, key, comp
    primer = check_circle(best, "primer edge" + (" (step below the case head)" if topo else ""), g.name)
    return Primer(circle=primer, component=best_comp, method=method, smoothed=sm, topo=topo)


def ragged_edge_m(g: Grid, p: Primer) -> float:
    """Ragged-edge allowance measured on the scan, metres: 5th percentile of the boundary's
    radial deviation (partly measured rounded primer edge); 0 for images."""
    primer = p.circle
    pts = boundary_points(p.component) if g.kind == "height" and p.component is not None else np.empty((0, 2))
    ragged = 0.0
    if len(pts):
        rd = np.hypot(pts[:, 0] - primer.cy, pts[:, 1] - primer.cx) - primer.r
        near = np.abs(rd) < 10 * g.tol
        if near.any():
            ragged = float(-np.percentile(rd[near], 5)) * g.sp
    return ragged


def long_wave_fraction(g: Grid) -> float:
    """Share of the height variation at wavelengths above 0.5 mm after plane removal.

    Raw primers carry their form (about 0.8 on the Fadul scans); already band-passed
    surfaces give 0.2-0.45, and below 0.6 a warning is logged.
    """
    from ._filter import ISO_SIGMA_PER_CUTOFF, nan_gaussian
    from ._level import robust_level

    lev, _ = robust_level(g.d, (g.sp, g.sp), max_points=20_000, n_iter=10)
    lw = nan_gaussian(lev, ISO_SIGMA_PER_CUTOFF * 500e-6 / g.sp)
    ok = np.isfinite(lev) & np.isfinite(lw)
    frac = float(np.std(lw[ok]) / max(np.std(lev[ok]), 1e-30)) if ok.sum() > 10 else float("nan")
    if frac < 0.6:
        logger.warning(
            "%s: only %.0f %% of the height variation is long-wave form; the scan looks already "
            "band-pass filtered (an extracted breech face?). Extraction expects a raw primer scan.",
            g.name, 100 * frac)
    return frac
