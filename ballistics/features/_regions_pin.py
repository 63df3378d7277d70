"""Region finding, steps 2 and 3: the firing-pin hole or crater, and the impression's rim.

2. **Firing-pin hole.**  The largest unmeasured component inside the primer that is
   not connected to the outside (height maps with missing data; a drop-out area), or on
   fully measured height maps the deepest concave bowl near the centre
   (:func:`._regions_topo.crater_from_depth`).
3. **Firing-pin impression.**  Steep slopes (heights, default > 15 degrees) or strong
   normalised-intensity gradients (images, top 5 %) between the hole and the primer
   edge; a RANSAC circle through them is the crater rim.  The region excluded from the
   breech face reaches out to the 98th percentile of the rim points' distance (the rim
   is rarely a perfect circle: drag marks, primer flow-back) plus a guard.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import RegionNotFoundError
from ._circle import Circle, fit_circle_ransac
from ._regions_grid import boundary_points, nc_smooth
from ._regions_primer import Grid, Primer
from ._regions_topo import crater_from_depth

logger = logging.getLogger(__name__)

__all__ = ["Core", "find_core", "find_rim"]


@dataclass
class Core:
    """The firing-pin hole (unmeasured) or crater (measured) found inside the primer."""

    hole: Circle | None = None
    crater: Circle | None = None
    extent: np.ndarray | None = None       # the measured crater's whole extent
    diagnostics: dict[str, Any] = field(default_factory=dict)


def find_core(g: Grid, p: Primer, rp: np.ndarray, rmin_f: float, rmax_f: float,
              min_crater_depth_m: float) -> Core:
    """Step 2: the firing-pin hole (height maps with missing data) or crater (fully measured)."""
    primer, tol, sp = p.circle, g.tol, g.sp
    core = Core()
    if p.topo is not None:
        cmask, core.extent, cinfo = crater_from_depth(p.topo.surface, sp, (primer.cy, primer.cx), primer.r,
                                                      min_depth_m=min_crater_depth_m,
                                                      min_area_px=math.pi * rmin_f ** 2 * 0.5 / (sp * sp))
        if cmask is not None:
            core.crater = fit_circle_ransac(boundary_points(cmask), tol, (0.5 * rmin_f / sp, rmax_f / sp))
        if core.crater is not None:
            cinfo.update(centre_px=(core.crater.cy, core.crater.cx), radius_m=core.crater.r * sp)
        core.diagnostics["topography"] = dict(p.topo.info, crater=cinfo)
    elif g.kind == "height":
        holes = ~g.valid & (rp < 0.9 * primer.r)
        lab_h, nh = ndi.label(holes)
        if nh:
            sz = np.bincount(lab_h.ravel())
            sz[0] = 0
            k = int(np.argmax(sz))
            hm = lab_h == k
            cy_h, cx_h = ndi.center_of_mass(hm)
            if (sz[k] * sp * sp >= math.pi * rmin_f ** 2 * 0.5
                    and math.hypot(cy_h - primer.cy, cx_h - primer.cx) < 0.6 * primer.r):
                core.hole = fit_circle_ransac(boundary_points(hm), tol, (0.5 * rmin_f / sp, rmax_f / sp))
    return core


def _strong_edges(g: Grid, p: Primer, inside: np.ndarray, edge_slope_deg: float) -> np.ndarray:
    """Steep slopes (heights) or the top 5 % of normalised-intensity gradients (images)."""
    if g.kind == "height":
        zs = nc_smooth(g.d, 1.0)
        gy, gx = np.gradient(zs, g.sp)
        strength = np.hypot(gy, gx)
        strong = strength > math.tan(math.radians(edge_slope_deg))
    else:
        # normalise illumination: gradient relative to local brightness
        assert p.smoothed is not None  # smoothed in step 1 for intensity images
        gy, gx = np.gradient(p.smoothed)
        local = nc_smooth(g.d, max(2.0, 100e-6 / g.sp))
        strength = np.hypot(gy, gx) / np.maximum(local, 1e-9)
        ok = np.isfinite(strength) & inside
        strong = strength > (np.percentile(strength[ok], 95) if ok.any() else np.inf)
    return strong & np.isfinite(strength)


def _fallback_rim(g: Grid, core: Core, rmax_f: float) -> tuple[Circle, float]:
    """No rim of steep slopes: the hole, or the measured crater (its shallow outer wall)."""
    fallback = core.hole if core.hole is not None else core.crater
    if fallback is None:
        raise RegionNotFoundError(
            f"Could not find the firing-pin impression in {g.name!r}: no circular rim of "
            "steep slopes inside the primer.")
    logger.info("%s: no crater rim found; using the firing-pin %s", g.name,
                "hole" if core.hole is not None else "crater")
    fp = fallback
    reach = fallback.r
    if core.hole is None and core.extent is not None:  # measured crater: its shallow outer wall is the rim
        whole = fit_circle_ransac(boundary_points(core.extent), g.tol, (fp.r, rmax_f / g.sp))
        if whole is not None and whole.coverage >= 0.3:
            fp = whole
        ey, ex = np.nonzero(core.extent)
        reach = max(fp.r, float(np.percentile(np.hypot(ey - fp.cy, ex - fp.cx), 98)))
    return fp, reach


def find_rim(g: Grid, p: Primer, core: Core, yy: np.ndarray, xx: np.ndarray, rp: np.ndarray,
             rmin_f: float, rmax_f: float, edge_slope_deg: float) -> tuple[Circle, float]:
    """Step 3: the firing-pin impression's rim and its reach (coarse pixels)."""
    primer, tol, sp = p.circle, g.tol, g.sp
    strong = _strong_edges(g, p, rp < primer.r, edge_slope_deg)
    centre = core.hole if core.hole is not None else core.crater  # unmeasured hole, or measured deep crater
    if centre is not None:
        ccy, ccx = centre.cy, centre.cx
        r_lo = centre.r + max(tol, 100e-6 / sp)
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
        return _fallback_rim(g, core, rmax_f)
    # the rim is not a perfect circle: reach out to the 98th percentile of the rim band
    rr = np.hypot(spts[:, 0] - fp.cy, spts[:, 1] - fp.cx)
    band = np.abs(rr - fp.r) < max(6 * tol, 150e-6 / sp)
    reach = float(np.percentile(rr[band], 98)) if band.sum() > 10 else fp.r
    return fp, reach
