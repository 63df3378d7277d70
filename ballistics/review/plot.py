"""Figures for examiners (matplotlib): scans, virtual light, regions, cells, scores.

Every function draws into a given :class:`matplotlib.axes.Axes` (or makes a new
figure), puts physical units on its axes (mm for positions, um for heights, degrees
for angles), names the scans in the title and uses colour-blind-safe colours:
``cividis`` for heights, ``PuOr`` (diverging) for agreement, grey for virtual light and
the Okabe-Ito palette for categories.  Scans that are compared share one colour scale
(see :func:`common_limits`).

>>> from ballistics import datasets, plot
>>> a, b = datasets.fadul("processed")[:2]
>>> ax = plot.scan(a)                          # height map, um, axes in mm
>>> ax = plot.virtual_light(a, azimuth_deg=45)  # hill-shading with a movable light

References
----------
Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Tong, M., Song, J., Chu, W. (2015). An improved algorithm of congruent matching cells
(CMC) method for firearm evidence identifications. J. Res. NIST 120, 102-112.
Zemmels, J., Hofmann, H., VanderPlas, S. (2022). cmcR: an implementation of the Congruent
Matching Cells method. The R Journal 14(1) -- its diagnostic plots of congruent cells.
Horn, B. K. P. (1981). Hill shading and the reflectance map. Proc. IEEE 69(1), 14-47.
Okabe, M., Ito, K. (2008). Color Universal Design (CUD): how to make figures and
presentations that are friendly to colorblind people.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import BallisticsError, ComparisonError, EmptyScanError
from ..scan import Scan

if TYPE_CHECKING:  # matplotlib is imported lazily at call time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO", "HEIGHT_CMAP", "DIVERGING_CMAP",
    "common_limits", "hillshade", "scan", "virtual_light", "regions", "comparison",
    "cells", "rotation_curve", "agreement", "local_correlation", "score_reference",
    "roc", "roc_curve", "aligned_pair", "figure_to_png",
]

log = logging.getLogger(__name__)

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
    "bluish_green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
    "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "grey": "#999999",
}
#: Colour map for heights (perceptually uniform, readable with colour-vision deficiency).
HEIGHT_CMAP = "cividis"
#: Diverging colour map for agreement / differences (colour-blind safe).
DIVERGING_CMAP = "PuOr"
#: Colours of the same-firearm and different-firearm reference distributions.
SAME_COLOUR = OKABE_ITO["blue"]
DIFFERENT_COLOUR = OKABE_ITO["vermillion"]
CONGRUENT_COLOUR = OKABE_ITO["bluish_green"]
OTHER_CELL_COLOUR = OKABE_ITO["grey"]


# ---------------------------------------------------------------------------- helpers
def _plt():
    import matplotlib.pyplot as plt  # matplotlib falls back to Agg when there is no display
    return plt


def _axes(ax, figsize=(6, 5)):
    if ax is not None:
        return ax
    plt = _plt()
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _check_scan(s: Any, what: str = "scan") -> Scan:
    if not isinstance(s, Scan):
        raise BallisticsError(f"The {what} must be a ballistics.Scan, got {type(s).__name__}; "
                              "read files with ballistics.read_scan(path).")
    s.require_valid(what=what)
    return s


def _title_name(s: Scan) -> str:
    src = s.provenance.source.replace("\\", "/").rsplit("/", 1)[-1] if s.provenance.source else ""
    if len(src) > 36:  # e.g. content-addressed storage names: keep both ends
        src = src[:12] + "..." + src[-16:]
    if s.exhibit_id and src and s.exhibit_id not in src:
        return f"{s.exhibit_id} ({src})"
    return src or s.name


def _extent_mm(s: Scan) -> list[float]:
    """imshow extent [left, right, bottom, top] in mm; 0 is the centre of pixel (0, 0).

    Positions in the library are measured from the centre of pixel (0, 0), so pixel
    ``(r, c)`` is drawn at ``(c * dx, r * dy)``.
    """
    h, w = s.shape
    dy, dx = s.spacing
    return [-0.5 * dx * 1e3, (w - 0.5) * dx * 1e3, (h - 0.5) * dy * 1e3, -0.5 * dy * 1e3]


def _label_mm(ax) -> None:
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_aspect("equal")


def common_limits(*scans: Scan, percentile: tuple[float, float] = (1.0, 99.0),
                  symmetric: bool = False) -> tuple[float, float]:
    """One colour range (um) for several scans, so their colours mean the same heights.

    Parameters
    ----------
    *scans : Scan
        Height scans (metres).
    percentile : (float, float)
        Lower and upper percentiles of the pooled valid heights (robust to spikes).
    symmetric : bool
        Make the range symmetric about zero.

    Returns
    -------
    (float, float)
        ``(vmin, vmax)`` in micrometres.
    """
    vals = [s.data[s.mask] for s in scans if s.mask.any()]
    if not vals:
        raise EmptyScanError("No measured heights in the scans given; nothing to scale colours to.")
    pooled = np.concatenate(vals) * 1e6
    lo, hi = np.percentile(pooled, percentile)
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    if hi <= lo:
        hi = lo + 1e-3
    return float(lo), float(hi)


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
        Illumination 0 (shadow) .. 1 (fully lit), NaN where ``data`` is NaN.

    References
    ----------
    Horn (1981), Hill shading and the reflectance map; implemented with
    :meth:`matplotlib.colors.LightSource.hillshade`.
    """
    from matplotlib.colors import LightSource

    z = np.asarray(data, dtype=np.float64)
    if z.ndim != 2:
        raise BallisticsError(f"hillshade needs a 2-D height map, got shape {z.shape}.")
    if not (0.0 <= altitude_deg <= 90.0):
        raise BallisticsError(f"altitude_deg must be within 0..90 degrees, got {altitude_deg}.")
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


# ---------------------------------------------------------------------------- scans
def scan(s: Scan, ax=None, *, vmin: float | None = None, vmax: float | None = None,
         cmap: str = HEIGHT_CMAP, title: str | None = None, colorbar: bool = True) -> "Axes":
    """Draw a scan as a height map (um) with axes in mm.

    Parameters
    ----------
    s : Scan
        Height scan (metres) or intensity image.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure if omitted.
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
    _check_scan(s)
    ax = _axes(ax)
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
    im = ax.imshow(img, extent=_extent_mm(s), cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_facecolor("white")
    _label_mm(ax)
    ax.set_title(title if title is not None else f"{_title_name(s)}: height map")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label, shrink=0.8)
    return ax


def virtual_light(s: Scan, ax=None, *, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                  vertical_exaggeration: float = 1.0, title: str | None = None) -> "Axes":
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
    """
    _check_scan(s)
    if s.kind != "height":
        raise BallisticsError(f"Virtual light needs a height scan; {s.name!r} is an intensity image.")
    ax = _axes(ax)
    shade = hillshade(s.data, s.spacing, azimuth_deg, altitude_deg, vertical_exaggeration)
    ax.imshow(shade, extent=_extent_mm(s), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_facecolor(OKABE_ITO["sky_blue"] + "40")
    _label_mm(ax)
    _light_arrow(ax, azimuth_deg)
    ax.set_title(title if title is not None else
                 f"{_title_name(s)}: virtual light\n(azimuth {azimuth_deg:g} deg, "
                 f"altitude {altitude_deg:g} deg)")
    return ax


def _light_arrow(ax, azimuth_deg: float) -> None:
    """Small arrow in the corner showing where the light comes from."""
    th = np.deg2rad(azimuth_deg)
    # azimuth clockwise from the top of the image: direction towards the light
    dx, dy = np.sin(th), np.cos(th)
    cx, cy, r = 0.9, 0.9, 0.07
    ax.annotate("", xy=(cx - r * dx, cy - r * dy), xytext=(cx + r * dx, cy + r * dy),
                xycoords="axes fraction",
                arrowprops=dict(arrowstyle="->", color=OKABE_ITO["orange"], lw=2))
    ax.text(cx, cy - 0.12, "light", transform=ax.transAxes, ha="center", va="top",
            color="black", fontsize=8, bbox=dict(boxstyle="round,pad=0.15", fc=OKABE_ITO["orange"],
                                                 ec="none", alpha=0.9))


# ---------------------------------------------------------------------------- regions
def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return {k: getattr(obj, k) for k in dir(obj) if not k.startswith("_")
            and not callable(getattr(obj, k, None))}


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def regions(s: Scan, found: Any = None, ax=None, *, title: str | None = None, shaded: bool = False) -> "Axes":
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
    """
    from matplotlib.patches import Circle

    _check_scan(s)
    if found is None:
        from .. import features
        found = features.find_regions(s)
    if isinstance(found, Scan):
        found = found.region
    d = _as_dict(found)
    centre = _first(d, "centre_m", "center_m", "source_centre_m")
    if centre is None:
        raise BallisticsError("The regions hold no centre (expected 'centre_m' in metres); "
                              "pass the output of ballistics.find_regions(scan).")
    # an extracted scan's region is in its own frame: shift it onto the raw scan
    off = np.zeros(2)
    if d.get("output_origin_in_source_m") is not None:
        off = np.asarray(d["output_origin_in_source_m"], float)
    elif d.get("source_centre_m") is not None and d.get("centre_m") is not None:
        off = np.asarray(d["source_centre_m"], float) - np.asarray(d["centre_m"], float)
    if d.get("primer_centre_m") is not None:
        centre = d["primer_centre_m"]
    c0 = np.asarray(centre, float) + off
    fp = _first(d, "firing_pin_centre_m")
    fp = np.asarray(fp, float) + off if fp is not None else c0
    ax = _axes(ax)
    if shaded:
        virtual_light(s, ax=ax, title="")
    else:
        scan(s, ax=ax, title="")
    circles = [
        (c0, _first(d, "primer_radius_m"), OKABE_ITO["orange"], "--", "primer edge"),
        (fp, _first(d, "firing_pin_radius_m"), OKABE_ITO["sky_blue"], "--", "firing-pin impression"),
        (c0, _first(d, "breech_face_outer_radius_m", "outer_radius_m"), OKABE_ITO["vermillion"], "-",
         "breech face (outer)"),
        (fp, _first(d, "breech_face_inner_radius_m", "inner_radius_m"), OKABE_ITO["reddish_purple"], "-",
         "breech face (inner)"),
    ]
    for cen, r, colour, ls, label in circles:
        if r is None:
            continue
        ax.add_patch(Circle((cen[1] * 1e3, cen[0] * 1e3), float(r) * 1e3, fill=False, lw=2, ls=ls,
                            color=colour, label=f"{label} (r = {float(r) * 1e3:.2f} mm)"))
    ax.plot([c0[1] * 1e3], [c0[0] * 1e3], "+", color=OKABE_ITO["vermillion"], ms=12, mew=2,
            label=f"primer centre (x {c0[1] * 1e3:.2f}, y {c0[0] * 1e3:.2f} mm)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7, frameon=False)
    ax.set_title(title if title is not None else f"{_title_name(s)}: regions found")
    return ax


# ---------------------------------------------------------------------------- comparisons
def _cmp_dict(cmp: Any) -> dict[str, Any]:
    """Comparison object or its ``to_dict()`` -> plain dict with the contract's fields."""
    if isinstance(cmp, Mapping):
        return dict(cmp)
    out = {}
    for k in ("method", "cmc_count", "score", "rotation_deg", "translation_m", "correlation",
              "directions", "cells", "rotation_curve", "params", "library_version", "inputs",
              "elapsed_s", "a_name", "b_name"):
        if hasattr(cmp, k):
            out[k] = getattr(cmp, k)
    if not out and hasattr(cmp, "to_dict"):
        return dict(cmp.to_dict())
    return out


def _directions_of(cells_: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for c in cells_:
        d = c.get("direction", "a_to_b")
        if d not in seen:
            seen.append(d)
    return seen


def aligned_pair(a: Scan, b: Scan, cmp: Any) -> tuple[Scan, Scan]:
    """``(a, b resampled into a's frame)`` using the comparison's registration.

    Uses :func:`ballistics.comparison.align`, so the figure shows exactly the
    registration that produced the score.

    Parameters
    ----------
    a, b : Scan
        The compared scans (as given to :func:`ballistics.compare`, ``a`` first).
    cmp : Comparison
        Result of :func:`ballistics.compare`.

    Returns
    -------
    (Scan, Scan)
        ``a`` and ``b`` aligned to it, on ``a``'s pixel grid.
    """
    try:
        from .. import comparison as _c
        align = _c.align
    except (ImportError, AttributeError) as exc:
        fn = getattr(cmp, "aligned_pair", None)
        if callable(fn):  # stand-in objects may carry their own helper
            return tuple(fn(a, b))  # type: ignore[return-value]
        raise ComparisonError("ballistics.comparison.align is not available to align the scans.") from exc
    b_al = align(b, cmp)
    if b_al.shape != a.shape:
        raise ComparisonError(f"The aligned scan has shape {b_al.shape}, not the reference's {a.shape}; "
                              "pass the scans in the order they were compared.")
    return a, b_al


def _rot_corners(centre_rc: Sequence[float], h: float, w: float, angle_deg: float) -> np.ndarray:
    """Corners (x, y) in pixels of an h x w box centred at (r, c) and rotated by angle.

    The angle is the rotation of the cell's content between reference and target,
    positive counter-clockwise as seen on screen (rows down).
    """
    r, c = float(centre_rc[0]), float(centre_rc[1])
    t = np.deg2rad(angle_deg)
    # screen counter-clockwise with y down: x' = x cos + y sin, y' = -x sin + y cos
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    xy = pts @ rot.T
    return xy + np.array([c, r])


def cells(s: Scan, cmp: Any, ax=None, *, role: str = "reference", direction: str | None = None,
          vmin: float | None = None, vmax: float | None = None, show_ncc: bool = True,
          title: str | None = None, shaded: bool = False, colorbar: bool = True) -> "Axes":
    """Draw one scan of a comparison with every cell outlined, congruent cells numbered.

    Parameters
    ----------
    s : Scan
        The scan to draw: the reference of ``direction`` (``role="reference"``) or its
        target (``role="target"``, cells drawn where they matched, rotated).
    cmp : Comparison
        Result of :func:`ballistics.compare`.
    ax : matplotlib.axes.Axes, optional
    role : {"reference", "target"}
    direction : str, optional
        ``"a_to_b"`` (cells cut from a) or ``"b_to_a"``; default the first one present.
    vmin, vmax : float, optional
        Colour range in um (share it between the two scans).
    show_ncc : bool
        Write each cell's correlation (NCC) in it.
    title : str, optional
    shaded : bool
        Draw the surface with virtual light instead of heights.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import Polygon, Rectangle

    d = _cmp_dict(cmp)
    all_cells = list(d.get("cells") or [])
    if direction is None:
        dirs = _directions_of(all_cells)
        direction = dirs[0] if dirs else "a_to_b"
    sel = [c for c in all_cells if c.get("direction", "a_to_b") == direction]
    ax = _axes(ax)
    if shaded:
        virtual_light(s, ax=ax, title="")
    else:
        scan(s, ax=ax, vmin=vmin, vmax=vmax, title="", colorbar=colorbar)
    dy, dx = s.spacing
    k = 0
    numbers = _cell_numbers(sel)
    for c in sel:
        r0, c0, h, w = (float(v) for v in c["ref_box_px"])
        cong = bool(c.get("congruent"))
        colour = CONGRUENT_COLOUR if cong else OTHER_CELL_COLOUR
        lw = 2.2 if cong else 0.8
        if role == "reference":
            patch = Rectangle(((c0 - 0.5) * dx * 1e3, (r0 - 0.5) * dy * 1e3), w * dx * 1e3,
                              h * dy * 1e3, fill=cong, facecolor=colour + "40", edgecolor=colour, lw=lw)
            cx, cy = (c0 + (w - 1) / 2) * dx * 1e3, (r0 + (h - 1) / 2) * dy * 1e3
        else:
            tc = c.get("target_centre_px")
            if tc is None or not np.all(np.isfinite(tc)):
                continue
            xy = _rot_corners(tc, h, w, float(c.get("rotation_deg", 0.0)))
            xy = xy * np.array([dx, dy]) * 1e3
            patch = Polygon(xy, closed=True, fill=cong, facecolor=colour + "40",
                            edgecolor=colour, lw=lw)
            cx, cy = float(tc[1]) * dx * 1e3, float(tc[0]) * dy * 1e3
        ax.add_patch(patch)
        ncc = c.get("ncc")
        label = ""
        if cong:
            label = f"{numbers[id(c)]}"
            k += 1
        if show_ncc and ncc is not None and np.isfinite(ncc):
            label = f"{label}\n{ncc:.2f}" if label else f"{ncc:.2f}"
        if label:
            ax.text(cx, cy, label, ha="center", va="center", fontsize=6 if not cong else 7,
                    color="black" if cong else "#333333", fontweight="bold" if cong else "normal",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none",
                              alpha=0.75 if cong else 0.5))
    n_cong = sum(1 for c in sel if c.get("congruent"))
    what = "reference: cells cut here" if role == "reference" else "target: where the cells matched"
    ax.set_title(title if title is not None else
                 f"{_title_name(s)}\n{what}\n{n_cong} of {len(sel)} cells congruent", fontsize=10)
    return ax


def _cell_numbers(sel: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Number the congruent cells 1..n in reading order (row, then column)."""
    cong = [c for c in sel if c.get("congruent")]
    cong.sort(key=lambda c: (c.get("row", 0), c.get("col", 0)))
    return {id(c): i + 1 for i, c in enumerate(cong)}


def comparison(a: Scan, b: Scan, cmp: Any, *, direction: str | None = None, fig=None,
               shaded: bool = False, aligned: bool = True) -> "Figure":
    """Side-by-side comparison: cells on the reference and on the target, shared colours.

    The left panel shows the reference scan with every cell outlined; congruent cells
    are filled (Okabe-Ito bluish green) and numbered; every cell shows its correlation.
    The middle panel shows the target with each cell where it matched (rotated box),
    the same numbers marking the same cells.  When ``aligned`` is true and the
    comparison can align the scans, a third panel shows the target resampled into the
    reference's frame with the reference's cell grid, so the surfaces can be compared
    side by side.

    Parameters
    ----------
    a, b : Scan
        The scans given to :func:`ballistics.compare` (a first).
    cmp : Comparison
        Its result.
    direction : str, optional
        ``"a_to_b"`` or ``"b_to_a"``; default the first present.
    fig : matplotlib.figure.Figure, optional
    shaded : bool
        Virtual light instead of height colours.
    aligned : bool
        Add the aligned panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_scan(a, "first scan")
    _check_scan(b, "second scan")
    d = _cmp_dict(cmp)
    dirs = _directions_of(d.get("cells") or []) or ["a_to_b"]
    direction = direction or dirs[0]
    ref, tgt = (a, b) if direction == "a_to_b" else (b, a)
    al = None
    if aligned:
        try:
            al = aligned_pair(a, b, cmp)
        except BallisticsError as exc:
            log.info("no aligned panel: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a figure must not fail on the optional panel
            log.warning("aligning the scans failed (%s); drawing without the aligned panel", exc)
    plt = _plt()
    n = 3 if al is not None else 2
    if fig is None:
        fig = plt.figure(figsize=(5.2 * n, 5.6), layout="constrained")
    axs = fig.subplots(1, n)
    lims = common_limits(a, b)
    cells(ref, cmp, ax=axs[0], role="reference", direction=direction, vmin=lims[0],
          vmax=lims[1], shaded=shaded, colorbar=False)
    cells(tgt, cmp, ax=axs[1], role="target", direction=direction, vmin=lims[0],
          vmax=lims[1], shaded=shaded, colorbar=False)
    if al is not None:
        a_al, b_al = al
        if direction == "a_to_b":
            cells(b_al, cmp, ax=axs[2], role="reference", direction=direction, vmin=lims[0],
                  vmax=lims[1], shaded=shaded, colorbar=False, show_ncc=False,
                  title=f"{_title_name(b)}\naligned to {a.name} by the registration\nwith {a.name}'s cell grid")
        else:
            scan(b_al, ax=axs[2], vmin=lims[0], vmax=lims[1], colorbar=False,
                 title=f"{_title_name(b)}\naligned to {a.name}")
    if not shaded:
        import matplotlib as mpl
        sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(*lims), cmap=HEIGHT_CMAP)
        fig.colorbar(sm, ax=list(axs), label="height (um), same scale on all panels",
                     shrink=0.7, location="right")
    score = d.get("cmc_count")
    rot = d.get("rotation_deg")
    n_dir = sum(1 for c in (d.get("cells") or []) if c.get("direction", "a_to_b") == direction
                and c.get("congruent"))
    arrow = f"cells cut from {ref.name}, found in {tgt.name}"
    fig.suptitle(f"{a.name} vs {b.name} -- {d.get('method', 'comparison')} CMC count of the pair: {score}"
                 + (f", registration {rot:.1f} deg" if isinstance(rot, (int, float)) and np.isfinite(rot) else "")
                 + f"\nthis figure: {arrow} ({n_dir} congruent)", fontsize=11)
    return fig


def rotation_curve(cmp: Any, ax=None, *, title: str | None = None) -> "Axes":
    """Number of congruent cells at each trial rotation, for each direction.

    Parameters
    ----------
    cmp : Comparison
        Result of :func:`ballistics.compare` (its ``rotation_curve``).
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _cmp_dict(cmp)
    curves = d.get("rotation_curve") or {}
    if not curves:
        raise ComparisonError("The comparison holds no rotation curve to draw.")
    ax = _axes(ax, figsize=(6, 3.6))
    colours = [OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["bluish_green"],
               OKABE_ITO["reddish_purple"]]
    markers = ["o", "s", "^", "D"]
    for i, (name, pts) in enumerate(curves.items()):
        arr = np.asarray(pts, dtype=float).reshape(-1, 2)
        if arr.size == 0:
            continue
        order = np.argsort(arr[:, 0])
        label = str(name).replace("_", " ")
        if name == "b_to_a":
            label += " (peaks at minus the a-to-b rotation)"
        ax.plot(arr[order, 0], arr[order, 1], marker=markers[i % 4], ms=4,
                color=colours[i % 4], label=label)
    rot = d.get("rotation_deg")
    if isinstance(rot, (int, float)) and np.isfinite(rot):
        ax.axvline(rot, color="black", ls=":", lw=1, label=f"registration {rot:.1f} deg")
    ax.set_xlabel("rotation of the target (degrees)")
    ax.set_ylabel("congruent cells (count)")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names = f"{d.get('a_name', 'a')} vs {d.get('b_name', 'b')}"
    ax.set_title(title if title is not None else f"{names}: congruent cells across rotation")
    return ax


def local_correlation(x: np.ndarray, y: np.ndarray, window_px: int = 25,
                      min_valid: float = 0.5) -> np.ndarray:
    """Correlation of two aligned height maps in a sliding square window.

    Parameters
    ----------
    x, y : numpy.ndarray
        Same-shape height maps (NaN where not measured).
    window_px : int
        Window side in pixels.
    min_valid : float
        Minimum fraction of jointly valid pixels in a window (else NaN).

    Returns
    -------
    numpy.ndarray
        Pearson correlation -1..1 per pixel, NaN where undefined.
    """
    from scipy.ndimage import uniform_filter

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.shape != y.shape:
        raise BallisticsError(f"local_correlation needs equal shapes, got {x.shape} and {y.shape}.")
    if window_px < 3:
        raise BallisticsError(f"window_px must be at least 3 pixels, got {window_px}.")
    m = (np.isfinite(x) & np.isfinite(y)).astype(float)
    x0 = np.where(m > 0, x, 0.0)
    y0 = np.where(m > 0, y, 0.0)
    f = lambda v: uniform_filter(v, size=window_px, mode="constant")  # noqa: E731
    n = f(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = f(x0) / n
        my = f(y0) / n
        vx = f(x0 * x0) / n - mx * mx
        vy = f(y0 * y0) / n - my * my
        cxy = f(x0 * y0) / n - mx * my
        r = cxy / np.sqrt(vx * vy)
    r[(n < min_valid) | (m == 0) | ~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def agreement(a: Scan, b: Scan, cmp: Any = None, *, fig=None, window_um: float = 150.0,
              aligned: tuple[Scan, Scan] | None = None) -> "Figure":
    """Map of where the aligned surfaces agree and where they differ.

    Left: local correlation of the two aligned surfaces (sliding window), 1 = the
    same marks, 0 = unrelated, -1 = inverted.  Right: height difference
    ``a - b`` (um) on a symmetric scale.

    Parameters
    ----------
    a, b : Scan
        The compared scans.
    cmp : Comparison, optional
        Used to align ``b`` to ``a`` (ignored if ``aligned`` is given).
    fig : matplotlib.figure.Figure, optional
    window_um : float
        Side of the correlation window in micrometres.
    aligned : (Scan, Scan), optional
        Already aligned pair on one grid.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if aligned is None:
        if cmp is None:
            raise ComparisonError("agreement() needs the comparison (to align b to a) or an aligned pair.")
        aligned = aligned_pair(a, b, cmp)
    a_al, b_al = aligned
    if a_al.shape != b_al.shape:
        raise ComparisonError(f"Aligned scans have different shapes {a_al.shape} and {b_al.shape}.")
    win = max(3, int(round(window_um * 1e-6 / a_al.spacing[1])))
    r = local_correlation(a_al.data, b_al.data, win)
    diff = (a_al.data - b_al.data) * 1e6
    plt = _plt()
    if fig is None:
        fig = plt.figure(figsize=(11, 5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ext = _extent_mm(a_al)
    im1 = ax1.imshow(r, extent=ext, cmap=DIVERGING_CMAP, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im1, ax=ax1, label="local correlation (-1..1)", shrink=0.8)
    valid = np.isfinite(r)
    frac = float((r[valid] > 0.5).mean()) if valid.any() else float("nan")
    ax1.set_title(f"Where the surfaces agree (window {win * a_al.spacing[1] * 1e6:.0f} um)\n"
                  f"{100 * frac:.0f} % of the overlap correlates above 0.5")
    _label_mm(ax1)
    m = np.nanpercentile(np.abs(diff), 99) if np.isfinite(diff).any() else 1.0
    im2 = ax2.imshow(diff, extent=ext, cmap=DIVERGING_CMAP, vmin=-m, vmax=m, interpolation="nearest")
    fig.colorbar(im2, ax=ax2, label=f"height difference {a.name} - {b.name} (um)", shrink=0.8)
    ax2.set_title("Where they differ (aligned height difference)")
    _label_mm(ax2)
    fig.suptitle(f"{_title_name(a)} vs {_title_name(b)} (aligned to {a.name})", fontsize=11)
    return fig


# ---------------------------------------------------------------------------- scores
def score_reference(score: float, same: Iterable[float], different: Iterable[float], ax=None, *,
                    score_name: str = "congruent matching cells (count)",
                    source: str = "reference pairs", title: str | None = None,
                    integer: bool = True, score_label: str = "this comparison") -> "Axes":
    """Where a score falls against known same-firearm and different-firearm scores.

    Parameters
    ----------
    score : float
        The score of the case comparison.
    same, different : iterable of float
        Scores of known same-firearm and different-firearm pairs, on the SAME scale as
        ``score`` (same method and parameters).
    ax : matplotlib.axes.Axes, optional
    score_name : str
        Axis label (with unit).
    source : str
        Where the reference scores come from (shown in the title).
    title : str, optional
    integer : bool
        Integer-valued scores (counts): one bin per value.
    score_label : str
        Legend text of the vertical line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    same = np.asarray(list(same), float)
    different = np.asarray(list(different), float)
    same, different = same[np.isfinite(same)], different[np.isfinite(different)]
    if same.size == 0 and different.size == 0:
        raise BallisticsError("No reference scores given; cannot place the score.")
    ax = _axes(ax, figsize=(7, 3.8))
    allv = np.concatenate([same, different, [score]])
    if integer:
        bins = np.arange(np.floor(allv.min()) - 0.5, np.ceil(allv.max()) + 1.5, 1.0)
    else:
        bins = np.histogram_bin_edges(allv, bins=min(30, max(8, allv.size // 3)))
    ax.hist(different, bins=bins, color=DIFFERENT_COLOUR, alpha=0.65, hatch="//", edgecolor="white",
            label=f"different firearm (n = {different.size})")
    ax.hist(same, bins=bins, color=SAME_COLOUR, alpha=0.65, edgecolor="white",
            label=f"same firearm (n = {same.size})")
    ax.axvline(score, color="black", lw=2.5, label=f"{score_label}: {score:g}")
    n_same_ge = int((same >= score).sum())
    n_diff_ge = int((different >= score).sum())
    ax.text(0.99, 0.97,
            f"same-firearm pairs scoring >= {score:g}: {n_same_ge} of {same.size}\n"
            f"different-firearm pairs scoring >= {score:g}: {n_diff_ge} of {different.size}",
            transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox=dict(fc="white", ec=OKABE_ITO["grey"], alpha=0.9))
    ax.set_xlabel(score_name)
    ax.set_ylabel("pairs (count)")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title(title if title is not None else f"This score among {source}")
    return ax


def roc_curve(same: Iterable[float], different: Iterable[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic of a score (higher = more likely same firearm).

    Parameters
    ----------
    same, different : iterable of float
        Scores of same-firearm and different-firearm pairs.

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        False-positive rate (different-firearm pairs at or above the threshold),
        true-positive rate (same-firearm pairs at or above it), and the thresholds,
        from the strictest (nothing called) to the loosest (everything called).
    """
    s = np.asarray(list(same), float)
    d = np.asarray(list(different), float)
    if s.size == 0 or d.size == 0:
        raise BallisticsError("An ROC curve needs at least one same-firearm and one different-firearm score.")
    thr = np.unique(np.concatenate([s, d]))[::-1]
    thr = np.concatenate([[np.inf], thr])
    tpr = np.array([(s >= t).mean() for t in thr])
    fpr = np.array([(d >= t).mean() for t in thr])
    return fpr, tpr, thr


def roc(same: Iterable[float], different: Iterable[float], ax=None, *, label: str = "score",
        title: str | None = None) -> "Axes":
    """Draw the ROC curve of a score and print its area under the curve (AUC).

    Parameters
    ----------
    same, different : iterable of float
        Scores of same-firearm and different-firearm pairs.
    ax : matplotlib.axes.Axes, optional
    label : str
        Name of the score in the legend.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    fpr, tpr, _ = roc_curve(same, different)
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    ax = _axes(ax, figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, color=OKABE_ITO["blue"], lw=2,
            label=f"{label} (AUC = {auc:.3f})", marker="o", ms=3)
    ax.plot([0, 1], [0, 1], ls=":", color=OKABE_ITO["grey"], label="chance")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (different-firearm pairs called same)")
    ax.set_ylabel("true-positive rate (same-firearm pairs called same)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title if title is not None else "ROC curve")
    return ax


def figure_to_png(fig, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes (and close it)."""
    import io

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
