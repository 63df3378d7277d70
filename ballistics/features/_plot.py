"""Figure of a scan with the regions found in it (for examiners to check by eye)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..scan import Scan
from ._regions import Regions

__all__ = ["plot_regions"]


def plot_regions(scan: Scan, regions: Regions, path: str | os.PathLike[str] | None = None,
                 title: str | None = None) -> Any:
    """Draw the primer edge, breech-face annulus, firing-pin rim and hole on the scan.

    Parameters
    ----------
    scan : Scan
        The scan the regions were found in.
    regions : Regions
        Output of :func:`ballistics.features.find_regions`.
    path : path-like, optional
        Save the figure as PNG there (and close it).
    title : str, optional
        Figure title (default: the scan's name and the confidence).

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure (None when saved to ``path``).
    """
    import matplotlib
    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    dy, dx = scan.spacing
    h, w = scan.shape
    step = max(1, int(max(h, w) // 1200))
    d = scan.data[::step, ::step]
    ext = (-dx / 2 * 1e3, (w - 0.5) * dx * 1e3, (h - 0.5) * dy * 1e3, -dy / 2 * 1e3)
    fig, ax = plt.subplots(figsize=(7, 7 * h / max(w, 1) + 0.4))
    v = d[np.isfinite(d)]
    lo, hi = (np.percentile(v, [1, 99]) if v.size else (0, 1))
    ax.imshow(d, cmap="gray", vmin=lo, vmax=hi, extent=ext, interpolation="nearest")
    items = [
        (regions.centre_m, regions.primer_radius_m, "red", "-", "primer edge"),
        (regions.centre_m, regions.breech_face_outer_radius_m, "gold", "--", "breech face (outer)"),
        (regions.firing_pin_centre_m, regions.firing_pin_radius_m, "lime", "-", "firing-pin rim"),
        (regions.firing_pin_centre_m, regions.breech_face_inner_radius_m, "cyan", "--", "breech face (inner)"),
        (regions.hole_centre_m, regions.hole_radius_m, "dodgerblue", ":", "firing-pin hole"),
    ]
    for c, r, col, ls, lab in items:
        if c is None or r is None:
            continue
        ax.add_patch(Circle((c[1] * 1e3, c[0] * 1e3), r * 1e3, fill=False, color=col, ls=ls, lw=1.5, label=lab))
        ax.plot(c[1] * 1e3, c[0] * 1e3, "+", color=col)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_title(title or f"{scan.name} ({scan.kind}) - confidence {regions.confidence:.2f}", fontsize=9)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return None
    return fig
