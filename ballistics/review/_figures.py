"""Where figures come from, and the small conventions every review figure shares.

Figures that are saved or embedded (reports, ``plot_regions(path=...)``) are made with
:class:`matplotlib.figure.Figure` directly (:func:`new_figure`): that needs no backend,
so the library never selects or switches one.  Only the interactive convenience of the
plotting functions -- ``ax=None`` / ``fig=None`` -- goes through :mod:`matplotlib.pyplot`,
so that the figure shows in a notebook; pyplot is imported at that moment, not before.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BallisticsError
from ..scan import Scan

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["new_figure", "pyplot_figure", "figure_to_png", "check_scan", "title_name", "label_mm"]

FigureFactory = Callable[[tuple[float, float]], "Figure"]


def new_figure(figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """A figure outside pyplot (no backend needed; garbage-collected when dropped).

    Parameters
    ----------
    figsize : (float, float)
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        With constrained layout.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def pyplot_figure(figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """A pyplot-managed figure, for interactive use (shown by notebooks)."""
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def axes_or_new(ax: Axes | None, figsize: tuple[float, float] = (6.0, 5.0)) -> Axes:
    """``ax``, or the single axes of a new interactive figure."""
    if ax is not None:
        return ax
    return pyplot_figure(figsize).add_subplot()


def figure_factory(fig: Figure | None) -> FigureFactory:
    """A factory returning ``fig`` when given, else a new interactive figure."""
    if fig is None:
        return pyplot_figure
    return lambda _size: fig


def figure_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes, and close it if pyplot manages it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution, dots per inch.

    Returns
    -------
    bytes
        The PNG file.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None and "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return buf.getvalue()


def check_scan(s: Any, what: str = "scan") -> Scan:
    """``s`` if it is a valid :class:`~ballistics.Scan`, else a :class:`BallisticsError`."""
    if not isinstance(s, Scan):
        raise BallisticsError(f"The {what} must be a ballistics.Scan, got {type(s).__name__}; "
                              "read files with ballistics.read_scan(path).")
    s.require_valid(what=what)
    return s


def title_name(s: Scan) -> str:
    """Short name of a scan for titles: exhibit id and file name, long names shortened."""
    src = s.provenance.source.replace("\\", "/").rsplit("/", 1)[-1] if s.provenance.source else ""
    if len(src) > 36:  # e.g. content-addressed storage names: keep both ends
        src = src[:12] + "..." + src[-16:]
    if s.exhibit_id and src and s.exhibit_id not in src:
        return f"{s.exhibit_id} ({src})"
    return src or s.name


def label_mm(ax: Axes) -> None:
    """Label both axes in millimetres, equal aspect."""
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_aspect("equal")
