"""Finding the primer, the firing-pin hole and the firing-pin impression in a scan.

Works on a coarse copy of the scan (about 12.5 um per pixel; every size below is
physical and converted with the scan's own spacing) so that it costs a few tens of
milliseconds whatever the instrument:

1. **Primer edge.**  The *foreground* is the measured area of a height map (data are
   missing outside the primer of a confocal scan) or the bright disc of a ring-light
   image (Otsu threshold of the smoothed image).  Its largest component is opened
   (removes the ragged, partly-measured rounded primer edge and debris), its holes
   filled, and a circle is fitted to its boundary with RANSAC; points on the image
   border are ignored, so off-centre scans that cut the primer still work.
2. **Firing-pin hole.**  The largest unmeasured component inside the primer that is
   not connected to the outside (height maps only; a drop-out area).
3. **Firing-pin impression.**  Steep slopes (heights, default > 15 degrees) or strong
   normalised-intensity gradients (images, top 5 %) between the hole and the primer
   edge; a RANSAC circle through them is the crater rim. The region excluded from
   the breech face reaches out to the 98th percentile of the rim points' distance
   (the rim is rarely a perfect circle: drag marks, primer flow-back) plus a guard.

References
----------
Fischler & Bolles (1981), RANSAC. *Comm. ACM* 24(6), 381-395.
Otsu, N. (1979). A threshold selection method from gray-level histograms. *IEEE SMC* 9(1).
Zemmels, Hofmann & VanderPlas (2022), cmcR: an implementation of the Congruent
Matching Cells method, *R Journal* (primer/firing-pin cropping of the reference
implementation; its crop offsets are fixed pixel counts, here they are measured).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from ..errors import EmptyScanError, ParameterError, RegionNotFoundError
from ..scan import Scan
from ._circle import Circle, fit_circle_ransac
from ._regions_topo import crater_from_depth, fully_measured, topography_foreground

logger = logging.getLogger(__name__)

__all__ = ["Regions", "block_nanmean", "find_regions"]

#: Defaults of :func:`find_regions` (all lengths in metres).
DEFAULTS: dict[str, Any] = {
    "work_spacing_m": 12.5e-6,
    "primer_radius_range_m": (1.0e-3, 3.5e-3),
    "firing_pin_radius_range_m": (0.15e-3, 1.8e-3),
    "primer_margin_m": 75e-6,
    "firing_pin_margin_m": 30e-6,
    "edge_slope_deg": 15.0,
    "fit_tolerance_m": 25e-6,
    "min_step_m": 5e-6,
    "min_crater_depth_m": 20e-6,
}


@dataclass(frozen=True)
class Regions:
    """Geometry of the primer and the firing-pin impression of one scan (metres).

    Coordinates are ``(y, x)`` in metres from the centre of pixel ``(0, 0)`` of the
    scan they were found in.

    Attributes
    ----------
    centre_m : (float, float)
        Centre of the primer.
    primer_radius_m : float
        Radius of the primer edge (fitted to the edge of the measured / bright area).
    firing_pin_centre_m : (float, float)
        Centre of the firing-pin impression's rim.
    firing_pin_radius_m : float
        Radius of the firing-pin impression's rim (the circle fitted to the crater edge).
    breech_face_outer_radius_m : float
        Outer radius of the breech-face annulus (primer radius minus the edge margin),
        about ``centre_m``.
    breech_face_inner_radius_m : float
        Inner radius of the breech-face annulus about ``firing_pin_centre_m``: the
        whole rim plus a guard band.
    hole_centre_m, hole_radius_m : tuple or None, float or None
        The unmeasured firing-pin hole, when the scan has one.
    primer_rms_m, firing_pin_rms_m : float
        RMS distance of the inlier edge points from the fitted circles.
    primer_inlier_fraction, firing_pin_inlier_fraction : float
        Fraction of edge points explained by the circles (0..1).
    primer_coverage, firing_pin_coverage : float
        Fraction of the 36 ten-degree sectors around the circle holding inliers.
    confidence : float
        0..1 summary (product of inlier fractions and coverages, square-rooted).
    kind : str
        ``"height"`` or ``"intensity"``: the kind of scan.
    method : str
        Which primer detector was chosen from what the scan holds: ``"measured-area"``
        (height map with the area around the primer unmeasured), ``"topography"``
        (fully measured height map: step below the case head and crater depth, see
        :mod:`._regions_topo`) or ``"intensity"`` (2-D image).
    params : dict
        Every parameter used.
    diagnostics : dict
        ``long_wave_fraction`` (height maps): share of the height variation at
        wavelengths above 0.5 mm after plane removal. Raw primers carry their form
        (crater shoulder, primer curvature): about 0.8 on the Fadul scans, while
        already band-passed surfaces give 0.2-0.45; below 0.6 a warning is logged.
    """

    centre_m: tuple[float, float]
    primer_radius_m: float
    firing_pin_centre_m: tuple[float, float]
    firing_pin_radius_m: float
    breech_face_outer_radius_m: float
    breech_face_inner_radius_m: float
    hole_centre_m: tuple[float, float] | None = None
    hole_radius_m: float | None = None
    primer_rms_m: float = 0.0
    firing_pin_rms_m: float = 0.0
    primer_inlier_fraction: float = 0.0
    firing_pin_inlier_fraction: float = 0.0
    primer_coverage: float = 0.0
    firing_pin_coverage: float = 0.0
    confidence: float = 0.0
    kind: str = "height"
    method: str = "measured-area"
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary."""
        return asdict(self)

    def breech_face_mask(self, shape: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
        """The breech-face annulus as a boolean mask on a grid.

        Parameters
        ----------
        shape : (int, int)
            Grid size, pixels.
        spacing : (float, float)
            Pixel size ``(dy, dx)``, metres (the grid's pixel ``(0, 0)`` is the origin).

        Returns
        -------
        numpy.ndarray of bool
            Inside the outer radius about ``centre_m`` and outside the inner radius
            about ``firing_pin_centre_m``.
        """
        yy = np.arange(shape[0])[:, None] * spacing[0]
        xx = np.arange(shape[1])[None, :] * spacing[1]
        outer = (yy - self.centre_m[0]) ** 2 + (xx - self.centre_m[1]) ** 2 <= self.breech_face_outer_radius_m ** 2
        inner = ((yy - self.firing_pin_centre_m[0]) ** 2 + (xx - self.firing_pin_centre_m[1]) ** 2
                 > self.breech_face_inner_radius_m ** 2)
        return outer & inner

    def shifted(self, dy: float, dx: float) -> dict[str, Any]:
        """Geometry as a dict with every centre moved by ``(-dy, -dx)`` metres."""
        d = self.to_dict()
        for k in ("centre_m", "firing_pin_centre_m", "hole_centre_m"):
            if d[k] is not None:
                d[k] = (d[k][0] - dy, d[k][1] - dx)
        return d


# ---------------------------------------------------------------------- helpers
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


def _nc_smooth(z: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised-convolution Gaussian smoothing (NaN-aware), float32."""
    v = np.isfinite(z)
    zz = np.where(v, z, 0.0).astype(np.float32)
    w = v.astype(np.float32)
    num = cv2.GaussianBlur(zz, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    out = num / np.maximum(den, 1e-6)
    out[den < 1e-3] = np.nan
    return out


def _boundary_points(mask: np.ndarray) -> np.ndarray:
    """``(y, x)`` of the mask's boundary pixels, ignoring the image border."""
    edge = mask & ~ndi.binary_erosion(mask)
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    return np.argwhere(edge).astype(float)


def _largest(mask: np.ndarray) -> np.ndarray:
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


def _check_circle(c: Circle | None, what: str, name: str) -> Circle:
    if c is None or c.support < MIN_PRIMER_SUPPORT or c.coverage < MIN_PRIMER_COVERAGE:
        detail = "no admissible circle" if c is None else (
            f"best circle explains {100 * c.support:.0f} % of the edge points on or outside it over "
            f"{100 * c.coverage:.0f} % of the circumference")
        raise RegionNotFoundError(
            f"Could not find the {what} in {name!r}: {detail}. Check that the scan shows a "
            "primer, or adjust the radius range (in metres) passed to find_regions().")
    return c


# ---------------------------------------------------------------------- main
def find_regions(
    scan: Scan,
    *,
    work_spacing_m: float = DEFAULTS["work_spacing_m"],
    primer_radius_range_m: tuple[float, float] = DEFAULTS["primer_radius_range_m"],
    firing_pin_radius_range_m: tuple[float, float] = DEFAULTS["firing_pin_radius_range_m"],
    primer_margin_m: float = DEFAULTS["primer_margin_m"],
    firing_pin_margin_m: float = DEFAULTS["firing_pin_margin_m"],
    edge_slope_deg: float = DEFAULTS["edge_slope_deg"],
    fit_tolerance_m: float = DEFAULTS["fit_tolerance_m"],
    min_step_m: float = DEFAULTS["min_step_m"],
    min_crater_depth_m: float = DEFAULTS["min_crater_depth_m"],
) -> Regions:
    """Locate the primer edge, the firing-pin hole and the firing-pin impression.

    Parameters
    ----------
    scan : Scan
        A raw scan of the primer: a height map (metres, NaN where not measured) or a
        2-D optical image (``kind == "intensity"``).
    work_spacing_m : float
        Pixel size of the coarse grid the regions are found on, metres.
    primer_radius_range_m : (float, float)
        Plausible primer radii, metres (default 1.0-3.5 mm covers small and large
        pistol and rifle primers).
    firing_pin_radius_range_m : (float, float)
        Plausible radii of the firing-pin impression's rim, metres.
    primer_margin_m : float
        Guard band inside the primer edge excluded from the breech face, metres (at
        least the measured raggedness of the edge is used).
    firing_pin_margin_m : float
        Guard band outside the firing-pin rim excluded from the breech face, metres.
    edge_slope_deg : float
        Slope (degrees) above which a height-map pixel counts as crater rim.
    fit_tolerance_m : float
        RANSAC inlier distance, metres.
    min_step_m : float
        Fully measured height maps only: smallest step between the case head and the
        recessed primer, metres.
    min_crater_depth_m : float
        Fully measured height maps only: smallest depth below the primer surface that
        counts as firing-pin crater, metres.

    Notes
    -----
    The method is chosen from what the scan holds and recorded in ``Regions.method``:
    a height map whose surroundings are unmeasured (confocal scans of the primer) takes
    the primer edge from the measured area and the firing-pin hole from the unmeasured
    hole; a height map measured everywhere (TopMatch / GelSight, wide-field scans with
    the case head) takes it from the step down from the case head and the crater from
    its depth and curvature (:mod:`._regions_topo`); a 2-D image from the bright disc.

    Returns
    -------
    Regions
        Geometry in metres with fit residuals and a confidence.

    Raises
    ------
    ParameterError
        Not a Scan, or a parameter out of range.
    EmptyScanError
        The scan has no valid data.
    RegionNotFoundError
        The scan is too small to hold a primer or no primer / firing pin is found.

    References
    ----------
    Fischler & Bolles (1981); Otsu (1979); Zemmels et al. (2022), cmcR.
    """
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
    for name, v in (("work_spacing_m", work_spacing_m), ("primer_margin_m", primer_margin_m),
                    ("firing_pin_margin_m", firing_pin_margin_m), ("fit_tolerance_m", fit_tolerance_m),
                    ("min_step_m", min_step_m), ("min_crater_depth_m", min_crater_depth_m)):
        if not (0 <= float(v) < 1e-2):
            raise ParameterError(f"{name}={v!r} must be a length in metres (0 .. 10 mm).")
    if not (0 < edge_slope_deg < 90):
        raise ParameterError(f"edge_slope_deg={edge_slope_deg!r} must be between 0 and 90 degrees.")
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
    params = dict(work_spacing_m=work_spacing_m, primer_radius_range_m=(rmin_p, rmax_p),
                  firing_pin_radius_range_m=(rmin_f, rmax_f), primer_margin_m=primer_margin_m,
                  firing_pin_margin_m=firing_pin_margin_m, edge_slope_deg=edge_slope_deg,
                  fit_tolerance_m=fit_tolerance_m, min_step_m=min_step_m,
                  min_crater_depth_m=min_crater_depth_m, coarse_factor=f)
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
    tol = max(1.5, fit_tolerance_m / sp)
    open_px = max(1, int(round(25e-6 / sp)))

    # -- 1. foreground and primer edge
    topo = None
    if scan.kind == "intensity":
        sm = _nc_smooth(d, max(1.0, 25e-6 / sp))
        v = sm[np.isfinite(sm)]
        lo, hi = np.percentile(v, [1, 99])
        if hi - lo <= 0:
            raise RegionNotFoundError(f"Image {scan.name!r} is uniform; there is no primer to find.")
        fg = np.isfinite(sm) & (sm > threshold_otsu(np.clip(v, lo, hi)))
        method = "intensity"
    else:
        sm = None
        fg = valid
        full, outside_missing = fully_measured(valid)
        method = "topography" if full else "measured-area"
        params["outside_missing_fraction"] = outside_missing
        if full:
            topo = topography_foreground(d, sp, scan.name, min_step_m=min_step_m,
                                         edge_slope_deg=edge_slope_deg)
            fg = topo.foreground
    logger.debug("%s: primer detector %r", scan.name, method)
    body = ndi.binary_opening(fg, iterations=open_px)
    body = ndi.binary_fill_holes(body)
    # the primer is the biggest (filled) component; for images prefer the one nearest the centre
    lab, n = ndi.label(body)
    if n == 0:
        raise RegionNotFoundError(f"No primer-like area found in {scan.name!r}.")
    sizes = np.bincount(lab.ravel())[1:]
    cands = np.argsort(sizes)[::-1][:3] + 1
    best: Circle | None = None
    best_comp: np.ndarray | None = None
    best_key = -1.0
    for k in cands:
        comp = lab == k
        pts = _boundary_points(comp)
        if topo is not None:  # keep edge points on the step, not on the grain of the texture
            pts = pts[topo.steep[pts[:, 0].astype(int), pts[:, 1].astype(int)]]
        c = fit_circle_ransac(pts, tol, (rmin_p / sp, rmax_p / sp))
        if c is None or c.support < MIN_PRIMER_SUPPORT or c.coverage < MIN_PRIMER_COVERAGE:
            continue
        key = c.support * c.coverage * float(comp.sum())
        if key > best_key:
            best, best_key, best_comp = c, key, comp
    primer = _check_circle(best, "primer edge" + (" (step below the case head)" if topo else ""),
                           scan.name)
    yy, xx = np.indices(d.shape, dtype=np.float32)
    rp = np.hypot(yy - primer.cy, xx - primer.cx)
    inside = rp < primer.r
    if scan.kind == "height" and valid[inside].mean() < 0.3:
        raise RegionNotFoundError(
            f"The circle found in {scan.name!r} (r = {primer.r * sp * 1e3:.2f} mm) is mostly "
            "unmeasured; no primer surface found.")
    # ragged-edge allowance measured on the scan: 5th percentile of the boundary's radial
    # deviation (partly measured rounded primer edge)
    pts = _boundary_points(best_comp) if scan.kind == "height" and best_comp is not None else np.empty((0, 2))
    ragged = 0.0
    if len(pts):
        rd = np.hypot(pts[:, 0] - primer.cy, pts[:, 1] - primer.cx) - primer.r
        near = np.abs(rd) < 10 * tol
        if near.any():
            ragged = float(-np.percentile(rd[near], 5)) * sp
    outer_r = primer.r * sp - max(primer_margin_m, ragged)

    diagnostics: dict[str, Any] = {}
    if scan.kind == "height":
        from ._filter import ISO_SIGMA_PER_CUTOFF, nan_gaussian
        from ._level import robust_level

        lev, _ = robust_level(d, (sp, sp), max_points=20_000, n_iter=10)
        lw = nan_gaussian(lev, ISO_SIGMA_PER_CUTOFF * 500e-6 / sp)
        ok = np.isfinite(lev) & np.isfinite(lw)
        frac = float(np.std(lw[ok]) / max(np.std(lev[ok]), 1e-30)) if ok.sum() > 10 else float("nan")
        diagnostics["long_wave_fraction"] = frac
        if frac < 0.6:
            logger.warning(
                "%s: only %.0f %% of the height variation is long-wave form; the scan looks already "
                "band-pass filtered (an extracted breech face?). Extraction expects a raw primer scan.",
                scan.name, 100 * frac)

    # -- 2. firing-pin hole (unmeasured, inside the primer, not connected to the outside)
    hole: Circle | None = None
    crater: Circle | None = None
    cextent: np.ndarray | None = None
    if topo is not None:
        cmask, cextent, cinfo = crater_from_depth(topo.surface, sp, (primer.cy, primer.cx), primer.r,
                                         min_depth_m=min_crater_depth_m,
                                         min_area_px=math.pi * rmin_f ** 2 * 0.5 / (sp * sp))
        if cmask is not None:
            crater = fit_circle_ransac(_boundary_points(cmask), tol, (0.5 * rmin_f / sp, rmax_f / sp))
        if crater is not None:
            cinfo.update(centre_px=(crater.cy, crater.cx), radius_m=crater.r * sp)
        diagnostics["topography"] = dict(topo.info, crater=cinfo)
    elif scan.kind == "height":
        holes = ~valid & (rp < 0.9 * primer.r)
        lab_h, nh = ndi.label(holes)
        if nh:
            sz = np.bincount(lab_h.ravel())
            sz[0] = 0
            k = int(np.argmax(sz))
            hm = lab_h == k
            cy_h, cx_h = ndi.center_of_mass(hm)
            if (sz[k] * sp * sp >= math.pi * rmin_f ** 2 * 0.5
                    and math.hypot(cy_h - primer.cy, cx_h - primer.cx) < 0.6 * primer.r):
                hole = fit_circle_ransac(_boundary_points(hm), tol, (0.5 * rmin_f / sp, rmax_f / sp))

    # -- 3. firing-pin impression rim: steep slopes / strong gradients
    if scan.kind == "height":
        zs = _nc_smooth(d, 1.0)
        gy, gx = np.gradient(zs, sp)
        strength = np.hypot(gy, gx)
        strong = strength > math.tan(math.radians(edge_slope_deg))
    else:
        # normalise illumination: gradient relative to local brightness
        assert sm is not None  # smoothed in step 1 for intensity images
        zs = sm
        gy, gx = np.gradient(zs)
        local = _nc_smooth(d, max(2.0, 100e-6 / sp))
        strength = np.hypot(gy, gx) / np.maximum(local, 1e-9)
        ok = np.isfinite(strength) & inside
        strong = strength > (np.percentile(strength[ok], 95) if ok.any() else np.inf)
    strong &= np.isfinite(strength)
    core = hole if hole is not None else crater  # unmeasured hole, or measured deep crater
    if core is not None:
        ccy, ccx = core.cy, core.cx
        r_lo = core.r + max(tol, 100e-6 / sp)
    else:
        ccy, ccx = primer.cy, primer.cx
        r_lo = rmin_f / sp
    r_hi = min(rmax_f / sp, 0.85 * primer.r)
    rc = np.hypot(yy - ccy, xx - ccx)
    strong &= (rc > r_lo) & (rp < 0.85 * primer.r)
    spts = np.argwhere(strong).astype(float)
    fp = fit_circle_ransac(spts, tol, (r_lo, r_hi))
    if fp is not None and math.hypot(fp.cy - ccy, fp.cx - ccx) > 0.5 * primer.r:
        fp = None
    if fp is None or fp.inlier_fraction < 0.05 or fp.coverage < 0.3:
        fallback = hole if hole is not None else crater
        if fallback is None:
            raise RegionNotFoundError(
                f"Could not find the firing-pin impression in {scan.name!r}: no circular rim of "
                "steep slopes inside the primer.")
        logger.info("%s: no crater rim found; using the firing-pin %s", scan.name,
                    "hole" if hole is not None else "crater")
        fp = fallback
        reach = fallback.r
        if hole is None and cextent is not None:  # measured crater: its shallow outer wall is the rim
            whole = fit_circle_ransac(_boundary_points(cextent), tol, (fp.r, rmax_f / sp))
            if whole is not None and whole.coverage >= 0.3:
                fp = whole
            ey, ex = np.nonzero(cextent)
            reach = max(fp.r, float(np.percentile(np.hypot(ey - fp.cy, ex - fp.cx), 98)))
    else:
        # the rim is not a perfect circle: reach out to the 98th percentile of the rim band
        rr = np.hypot(spts[:, 0] - fp.cy, spts[:, 1] - fp.cx)
        band = np.abs(rr - fp.r) < max(6 * tol, 150e-6 / sp)
        reach = float(np.percentile(rr[band], 98)) if band.sum() > 10 else fp.r
    inner_r = reach * sp + firing_pin_margin_m
    if inner_r >= outer_r:
        raise RegionNotFoundError(
            f"In {scan.name!r} the firing-pin impression (r = {inner_r * 1e3:.2f} mm) reaches the "
            f"primer edge (r = {outer_r * 1e3:.2f} mm): no breech-face annulus left.")

    # coarse pixel (i, j) covers fine pixels i*f .. i*f+f-1: centre at (i*f + (f-1)/2) fine px
    off = (f - 1) / 2.0

    def to_m(cy: float, cx: float) -> tuple[float, float]:
        return ((cy * f + off) * dy, (cx * f + off) * dx)

    conf = math.sqrt(max(0.0, primer.support * primer.coverage
                         * min(1.0, 2 * fp.inlier_fraction) * fp.coverage))
    return Regions(
        centre_m=to_m(primer.cy, primer.cx),
        primer_radius_m=primer.r * sp,
        firing_pin_centre_m=to_m(fp.cy, fp.cx),
        firing_pin_radius_m=fp.r * sp,
        breech_face_outer_radius_m=outer_r,
        breech_face_inner_radius_m=inner_r,
        hole_centre_m=to_m(hole.cy, hole.cx) if hole is not None else None,
        hole_radius_m=hole.r * sp if hole is not None else None,
        primer_rms_m=primer.rms * sp,
        firing_pin_rms_m=fp.rms * sp,
        primer_inlier_fraction=primer.inlier_fraction,
        firing_pin_inlier_fraction=fp.inlier_fraction,
        primer_coverage=primer.coverage,
        firing_pin_coverage=fp.coverage,
        confidence=conf,
        kind=scan.kind,
        method=method,
        params=params,
        diagnostics=diagnostics,
    )
