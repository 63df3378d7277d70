"""Agreement map: where two aligned surfaces agree (local correlation) and differ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ComparisonError
from ..scan import Scan
from ._cells import aligned_pair
from ._colour_scale import extent_mm
from ._figures import FigureFactory, check_scan, figure_factory, label_mm, title_name
from ._local_correlation import local_correlation
from ._style import DIVERGING_CMAP

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["agreement"]


def agreement(a: Scan, b: Scan, cmp: Any = None, *, fig: Figure | None = None, window_um: float = 150.0,
              aligned: tuple[Scan, Scan] | None = None) -> Figure:
    """Map of where the aligned surfaces agree and where they differ.

    Left: local correlation of the two aligned surfaces (sliding window,
    :func:`local_correlation`), 1 = the same marks, 0 = unrelated, -1 = inverted.
    Right: height difference ``a - b`` (um) on a symmetric scale.

    Parameters
    ----------
    a, b : Scan
        The compared scans.
    cmp : Comparison, optional
        Used to align ``b`` to ``a`` (ignored if ``aligned`` is given).
    fig : matplotlib.figure.Figure, optional
        Where to draw; a new pyplot figure if omitted.
    window_um : float
        Side of the correlation window in micrometres.
    aligned : (Scan, Scan), optional
        Already aligned pair on one grid.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return draw_agreement(a, b, cmp, figure_factory(fig), window_um=window_um, aligned=aligned)


def draw_agreement(a: Scan, b: Scan, cmp: Any, make_figure: FigureFactory, *, window_um: float = 150.0,
                   aligned: tuple[Scan, Scan] | None = None) -> Figure:
    """:func:`agreement` drawn into ``make_figure(figsize)``."""
    check_scan(a, "first scan")
    check_scan(b, "second scan")
    if not (np.isfinite(window_um) and window_um > 0):
        raise ComparisonError(f"window_um must be a positive length in micrometres, got {window_um}.")
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
    fig = make_figure((11, 5))
    ax1, ax2 = fig.subplots(1, 2)
    ext = extent_mm(a_al)
    im1 = ax1.imshow(r, extent=ext, cmap=DIVERGING_CMAP, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im1, ax=ax1, label="local correlation (-1..1)", shrink=0.8)
    valid = np.isfinite(r)
    frac = float((r[valid] > 0.5).mean()) if valid.any() else float("nan")
    ax1.set_title(f"Where the surfaces agree (window {win * a_al.spacing[1] * 1e6:.0f} um)\n"
                  f"{100 * frac:.0f} % of the overlap correlates above 0.5")
    label_mm(ax1)
    m = float(np.nanpercentile(np.abs(diff), 99)) if np.isfinite(diff).any() else 1.0
    im2 = ax2.imshow(diff, extent=ext, cmap=DIVERGING_CMAP, vmin=-m, vmax=m, interpolation="nearest")
    fig.colorbar(im2, ax=ax2, label=f"height difference {a.name} - {b.name} (um)", shrink=0.8)
    ax2.set_title("Where they differ (aligned height difference)")
    label_mm(ax2)
    fig.suptitle(f"{title_name(a)} vs {title_name(b)} (aligned to {a.name})", fontsize=11)
    return fig
