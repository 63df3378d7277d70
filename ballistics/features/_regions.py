"""Finding the primer, the firing-pin hole and the firing-pin impression in a scan.

Works on a coarse copy of the scan (about 12.5 um per pixel; every size below is
physical and converted with the scan's own spacing) so that it costs a few tens of
milliseconds whatever the instrument:

1. **Primer edge** (:mod:`._regions_primer`): a RANSAC circle fitted to the boundary
   of the foreground (measured area, area below the case head, or bright disc).
2. **Firing-pin hole or crater** and 3. **the impression's rim**
   (:mod:`._regions_pin`): the unmeasured hole or the deepest bowl, then a RANSAC
   circle through the steep slopes around it.

Coarse-grid helpers are in :mod:`._regions_grid`.

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

import numpy as np

from .._threads import with_compute_threads
from ..errors import RegionNotFoundError
from ..scan import Scan
from ._circle import Circle
from ._regions_grid import block_nanmean
from ._regions_pin import find_core, find_rim
from ._regions_primer import Grid, Primer, check_arguments, coarse_grid, find_primer, long_wave_fraction, ragged_edge_m

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


@with_compute_threads(opencv=True)
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
    lengths = dict(work_spacing_m=work_spacing_m, primer_margin_m=primer_margin_m,
                   firing_pin_margin_m=firing_pin_margin_m, fit_tolerance_m=fit_tolerance_m,
                   min_step_m=min_step_m, min_crater_depth_m=min_crater_depth_m)
    rmin_p, rmax_p, rmin_f, rmax_f = check_arguments(scan, primer_radius_range_m, firing_pin_radius_range_m,
                                                     lengths, edge_slope_deg)
    params = dict(work_spacing_m=work_spacing_m, primer_radius_range_m=(rmin_p, rmax_p),
                  firing_pin_radius_range_m=(rmin_f, rmax_f), primer_margin_m=primer_margin_m,
                  firing_pin_margin_m=firing_pin_margin_m, edge_slope_deg=edge_slope_deg,
                  fit_tolerance_m=fit_tolerance_m, min_step_m=min_step_m,
                  min_crater_depth_m=min_crater_depth_m)
    g = coarse_grid(scan, work_spacing_m, rmin_p, fit_tolerance_m, params)

    # -- 1. foreground and primer edge
    p = find_primer(g, rmin_p, rmax_p, min_step_m, edge_slope_deg)
    primer, sp = p.circle, g.sp
    grid = np.indices(g.d.shape, dtype=np.float32)
    yy, xx = grid[0], grid[1]
    rp = np.hypot(yy - primer.cy, xx - primer.cx)
    if scan.kind == "height" and g.valid[rp < primer.r].mean() < 0.3:
        raise RegionNotFoundError(
            f"The circle found in {scan.name!r} (r = {primer.r * sp * 1e3:.2f} mm) is mostly "
            "unmeasured; no primer surface found.")
    outer_r = primer.r * sp - max(primer_margin_m, ragged_edge_m(g, p))
    diagnostics: dict[str, Any] = {}
    if scan.kind == "height":
        diagnostics["long_wave_fraction"] = long_wave_fraction(g)

    # -- 2. firing-pin hole or crater; 3. the impression's rim
    core = find_core(g, p, rp, rmin_f, rmax_f, min_crater_depth_m)
    diagnostics.update(core.diagnostics)
    fp, reach = find_rim(g, p, core, yy, xx, rp, rmin_f, rmax_f, edge_slope_deg)
    inner_r = reach * sp + firing_pin_margin_m
    if inner_r >= outer_r:
        raise RegionNotFoundError(
            f"In {scan.name!r} the firing-pin impression (r = {inner_r * 1e3:.2f} mm) reaches the "
            f"primer edge (r = {outer_r * 1e3:.2f} mm): no breech-face annulus left.")
    return _assemble(scan, g, p, core.hole, fp, outer_r, inner_r, diagnostics)


def _assemble(scan: Scan, g: Grid, p: Primer, hole: Circle | None, fp: Circle, outer_r: float, inner_r: float,
              diagnostics: dict[str, Any]) -> Regions:
    """The :class:`Regions` in metres from the circles found on the coarse grid."""
    dy, dx = scan.spacing
    f, sp, primer = g.f, g.sp, p.circle
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
        method=p.method,
        params=g.params,
        diagnostics=diagnostics,
    )
