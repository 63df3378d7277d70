"""Figures of congruent matching cells: one scan with its cells, and the pair side by side.

References
----------
Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Zemmels, J., Hofmann, H., VanderPlas, S. (2022). cmcR: an implementation of the Congruent
Matching Cells method. The R Journal 14(1) -- its diagnostic plots of congruent cells.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BallisticsError, ComparisonError
from ..scan import Scan
from ._cells import aligned_pair, cell_numbers, comparison_dict, directions_of, rotated_box_corners
from ._colour_scale import common_limits
from ._figures import FigureFactory, axes_or_new, check_scan, figure_factory, title_name
from ._plot_surfaces import scan, virtual_light
from ._style import CONGRUENT_COLOUR, HEIGHT_CMAP, OTHER_CELL_COLOUR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["cells", "comparison"]

log = logging.getLogger(__name__)


def cells(s: Scan, cmp: Any, ax: Axes | None = None, *, role: str = "reference", direction: str | None = None,
          vmin: float | None = None, vmax: float | None = None, show_ncc: bool = True,
          title: str | None = None, shaded: bool = False, colorbar: bool = True) -> Axes:
    """Draw one scan of a comparison with every cell outlined, congruent cells numbered.

    Parameters
    ----------
    s : Scan
        The scan to draw: the reference of ``direction`` (``role="reference"``) or its
        target (``role="target"``, cells drawn where they matched, rotated).
    cmp : Comparison
        Result of :func:`ballistics.compare` (or its ``to_dict()``).
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
    colorbar : bool
        Add a colour bar to the height map.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import Polygon, Rectangle

    if role not in ("reference", "target"):
        raise BallisticsError(f"role must be 'reference' or 'target', got {role!r}.")
    d = comparison_dict(cmp)
    all_cells = list(d.get("cells") or [])
    if direction is None:
        dirs = directions_of(all_cells)
        direction = dirs[0] if dirs else "a_to_b"
    sel = [c for c in all_cells if c.get("direction", "a_to_b") == direction]
    ax = axes_or_new(ax)
    if shaded:
        virtual_light(s, ax=ax, title="")
    else:
        scan(s, ax=ax, vmin=vmin, vmax=vmax, title="", colorbar=colorbar)
    dy, dx = s.spacing
    numbers = cell_numbers(sel)
    for c in sel:
        r0, c0, h, w = (float(v) for v in c["ref_box_px"])
        cong = bool(c.get("congruent"))
        colour = CONGRUENT_COLOUR if cong else OTHER_CELL_COLOUR
        lw = 2.2 if cong else 0.8
        patch: Any
        if role == "reference":
            patch = Rectangle(((c0 - 0.5) * dx * 1e3, (r0 - 0.5) * dy * 1e3), w * dx * 1e3,
                              h * dy * 1e3, fill=cong, facecolor=colour + "40", edgecolor=colour, lw=lw)
            cx, cy = (c0 + (w - 1) / 2) * dx * 1e3, (r0 + (h - 1) / 2) * dy * 1e3
        else:
            tc = c.get("target_centre_px")
            if tc is None or not np.all(np.isfinite(tc)):
                continue
            xy = rotated_box_corners(tc, h, w, float(c.get("rotation_deg", 0.0))) * np.array([dx, dy]) * 1e3
            patch = Polygon(xy, closed=True, fill=cong, facecolor=colour + "40", edgecolor=colour, lw=lw)
            cx, cy = float(tc[1]) * dx * 1e3, float(tc[0]) * dy * 1e3
        ax.add_patch(patch)
        ncc = c.get("ncc")
        label = f"{numbers[id(c)]}" if cong else ""
        if show_ncc and ncc is not None and np.isfinite(ncc):
            label = f"{label}\n{ncc:.2f}" if label else f"{ncc:.2f}"
        if label:
            ax.text(cx, cy, label, ha="center", va="center", fontsize=7 if cong else 6,
                    color="black" if cong else "#333333", fontweight="bold" if cong else "normal",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.75 if cong else 0.5})
    what = "reference: cells cut here" if role == "reference" else "target: where the cells matched"
    ax.set_title(title if title is not None else
                 f"{title_name(s)}\n{what}\n{len(numbers)} of {len(sel)} cells congruent", fontsize=10)
    return ax


def comparison(a: Scan, b: Scan, cmp: Any, *, direction: str | None = None, fig: Figure | None = None,
               shaded: bool = False, aligned: bool = True) -> Figure:
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
        Where to draw (e.g. a :class:`matplotlib.figure.Figure` made outside pyplot);
        a new pyplot figure if omitted.
    shaded : bool
        Virtual light instead of height colours.
    aligned : bool
        Add the aligned panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return draw_comparison(a, b, cmp, figure_factory(fig), direction=direction, shaded=shaded,
                           aligned=aligned)


def draw_comparison(a: Scan, b: Scan, cmp: Any, make_figure: FigureFactory, *, direction: str | None = None,
                    shaded: bool = False, aligned: bool = True) -> Figure:
    """:func:`comparison` drawn into ``make_figure(figsize)`` (the report passes a non-pyplot factory)."""
    import matplotlib as mpl

    check_scan(a, "first scan")
    check_scan(b, "second scan")
    d = comparison_dict(cmp)
    dirs = directions_of(d.get("cells") or []) or ["a_to_b"]
    direction = direction or dirs[0]
    if direction not in ("a_to_b", "b_to_a"):
        raise ComparisonError(f"direction must be 'a_to_b' or 'b_to_a', got {direction!r}.")
    ref, tgt = (a, b) if direction == "a_to_b" else (b, a)
    al = None
    if aligned:
        try:
            al = aligned_pair(a, b, cmp)
        except BallisticsError as exc:
            log.info("no aligned panel: %s", exc)
    n = 3 if al is not None else 2
    fig = make_figure((5.2 * n, 5.6))
    axs = fig.subplots(1, n)
    lims = common_limits(a, b)
    cells(ref, cmp, ax=axs[0], role="reference", direction=direction, vmin=lims[0],
          vmax=lims[1], shaded=shaded, colorbar=False)
    cells(tgt, cmp, ax=axs[1], role="target", direction=direction, vmin=lims[0],
          vmax=lims[1], shaded=shaded, colorbar=False)
    if al is not None:
        b_al = al[1]
        if direction == "a_to_b":
            cells(b_al, cmp, ax=axs[2], role="reference", direction=direction, vmin=lims[0],
                  vmax=lims[1], shaded=shaded, colorbar=False, show_ncc=False,
                  title=f"{title_name(b)}\naligned to {a.name} by the registration\nwith {a.name}'s cell grid")
        else:
            scan(b_al, ax=axs[2], vmin=lims[0], vmax=lims[1], colorbar=False,
                 title=f"{title_name(b)}\naligned to {a.name}")
    if not shaded:
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
