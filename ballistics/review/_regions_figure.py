"""Figure of a scan with the regions found in it, saved to a file (for examiners to check by eye)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..scan import Scan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_regions"]


def plot_regions(scan: Scan, regions: Any, path: str | os.PathLike[str] | None = None,
                 title: str | None = None) -> Figure | None:
    """Draw the primer edge, breech-face annulus, firing-pin rim and hole on the scan.

    The figure is a :class:`matplotlib.figure.Figure` made outside pyplot, so saving it
    needs no backend and changes none.

    Parameters
    ----------
    scan : Scan
        The scan the regions were found in.
    regions : Regions
        Output of :func:`ballistics.features.find_regions` (metres).
    path : path-like, optional
        Save the figure as PNG there (atomically).
    title : str, optional
        Figure title (default: the scan's name, kind and the detection confidence).

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure (None when saved to ``path``).
    """
    from .._io import atomic_write_bytes
    from ..errors import OutputError
    from ._figures import figure_to_png, new_figure
    from ._plot_surfaces import regions as draw_regions

    h, w = scan.shape
    fig = new_figure((7.0, 7.0 * h / max(w, 1) + 1.2))
    if title is None:
        title = f"{scan.name} ({scan.kind}) - confidence {regions.confidence:.2f}"
    draw_regions(scan, regions, ax=fig.add_subplot(), title=title)
    if path is None:
        return fig
    try:
        atomic_write_bytes(path, figure_to_png(fig, dpi=110))
    except OSError as exc:
        raise OutputError(f"Cannot write the regions figure to {path}: {exc}") from exc
    return None
