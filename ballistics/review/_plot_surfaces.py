"""Figures of surfaces: height maps, virtual light, regions found on a raw scan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BallisticsError
from ..scan import Scan
from ._colour_scale import common_limits, extent_mm
from ._figures import axes_or_new, check_scan, label_mm, title_name
from ._region_circles import region_circles
from ._shading import hillshade
from ._style import HEIGHT_CMAP, OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["scan", "virtual_light", "regions"]


def scan(s: Scan, ax: Axes | None = None, *, vmin: float | None = None, vmax: float | None = None,
         cmap: str = HEIGHT_CMAP, title: str | None = None, colorbar: bool = True) -> Axes:
    """Draw a scan as a height map (um) with axes in mm.

    Parameters
    ----------
    s : Scan
        Height scan (metres) or intensity image.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new (pyplot) figure if omitted.
    vmin, vmax : float, optional
        Colour range in um (use :func:`common_limits` to share it between scans).
    cmap : str
        Colour map; default ``cividis`` (colour-blind safe).
    title : str, optional
        Default: the scan's exhibit id and file name.
    colorbar : bool
        Add a colour bar labelled with the unit.

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_scan(s)
    ax = axes_or_new(ax)
    if s.kind == "height":
        img = s.data * 1e6
        if vmin is None or vmax is None:
            lo, hi = common_limits(s)
            vmin = lo if vmin is None else vmin
            vmax = hi if vmax is None else vmax
        label = "height (um)"
    else:
        img = s.data
        label = "intensity (a.u.)"
        cmap = "gray" if cmap == HEIGHT_CMAP else cmap
    im = ax.imshow(img, extent=extent_mm(s), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_facecolor("white")
    label_mm(ax)
    ax.set_title(title if title is not None else f"{title_name(s)}: height map")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label, shrink=0.8)
    return ax


def virtual_light(s: Scan, ax: Axes | None = None, *, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                  vertical_exaggeration: float = 1.0, title: str | None = None) -> Axes:
    """Draw a scan lit by a virtual light (hill-shading), like a comparison microscope.

    Parameters
    ----------
    s : Scan
        Height scan (metres).
    ax : matplotlib.axes.Axes, optional
        Where to draw.
    azimuth_deg : float
        Direction of the light, degrees clockwise from the top of the image; move it to
        bring out marks of different orientation.
    altitude_deg : float
        Elevation of the light, degrees above the surface (low = grazing light).
    vertical_exaggeration : float
        Height exaggeration applied before shading.
    title : str, optional
        Default names the scan and the light.

    Returns
    -------
    matplotlib.axes.Axes

    References
    ----------
    Horn, B. K. P. (1981). Hill shading and the reflectance map. Proc. IEEE 69(1), 14-47.
    """
    check_scan(s)
    if s.kind != "height":
        raise BallisticsError(f"Virtual light needs a height scan; {s.name!r} is an intensity image.")
    shade = hillshade(s.data, s.spacing, azimuth_deg, altitude_deg, vertical_exaggeration)
    ax = axes_or_new(ax)
    ax.imshow(shade, extent=extent_mm(s), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_facecolor(OKABE_ITO["sky_blue"] + "40")
    label_mm(ax)
    _light_arrow(ax, azimuth_deg)
    ax.set_title(title if title is not None else
                 f"{title_name(s)}: virtual light\n(azimuth {azimuth_deg:g} deg, "
                 f"altitude {altitude_deg:g} deg)")
    return ax


def _light_arrow(ax: Axes, azimuth_deg: float) -> None:
    """Small arrow in the corner showing where the light comes from."""
    th = np.deg2rad(azimuth_deg)
    # azimuth clockwise from the top of the image: direction towards the light
    dx, dy = np.sin(th), np.cos(th)
    cx, cy, r = 0.9, 0.9, 0.07
    ax.annotate("", xy=(cx - r * dx, cy - r * dy), xytext=(cx + r * dx, cy + r * dy),
                xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": OKABE_ITO["orange"], "lw": 2})
    ax.text(cx, cy - 0.12, "light", transform=ax.transAxes, ha="center", va="top",
            color="black", fontsize=8, bbox={"boxstyle": "round,pad=0.15", "fc": OKABE_ITO["orange"],
                                             "ec": "none", "alpha": 0.9})


def regions(s: Scan, found: Any = None, ax: Axes | None = None, *, title: str | None = None,
            shaded: bool = False) -> Axes:
    """Draw the found regions (primer, firing-pin impression, breech-face annulus) on a scan.

    Parameters
    ----------
    s : Scan
        The raw (whole-primer) scan.
    found : Regions, dict or Scan, optional
        Output of :func:`ballistics.find_regions` (centres and radii in metres from the
        centre of pixel (0, 0) of ``s``), or an extracted scan / its ``region`` dict
        (whose ``source_centre_m`` places it on ``s``).  Computed with
        ``find_regions(s)`` if omitted.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    shaded : bool
        Draw the scan with virtual light instead of as a height map.

    Returns
    -------
    matplotlib.axes.Axes
        Circles are drawn in the order primer edge, firing-pin impression, breech face
        (outer, inner), firing-pin hole -- those present.
    """
    from matplotlib.patches import Circle

    check_scan(s)
    if found is None:
        from ..features import find_regions
        found = find_regions(s)
    if isinstance(found, Scan):
        found = found.region
    c0, circles = region_circles(found)
    ax = axes_or_new(ax)
    if shaded:
        virtual_light(s, ax=ax, title="")
    else:
        scan(s, ax=ax, title="")
    for c in circles:
        ax.add_patch(Circle((c.centre_m[1] * 1e3, c.centre_m[0] * 1e3), c.radius_m * 1e3, fill=False, lw=2,
                            ls=c.linestyle, color=c.colour, label=f"{c.label} (r = {c.radius_m * 1e3:.2f} mm)"))
    ax.plot([c0[1] * 1e3], [c0[0] * 1e3], "+", color=OKABE_ITO["vermillion"], ms=12, mew=2,
            label=f"primer centre (x {c0[1] * 1e3:.2f}, y {c0[0] * 1e3:.2f} mm)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7, frameon=False)
    ax.set_title(title if title is not None else f"{title_name(s)}: regions found")
    return ax
