"""Figures of curves and score distributions: CMC-rotation curve, reference scores, ROC.

References
----------
Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Fawcett, T. (2006). An introduction to ROC analysis. Pattern Recognition Letters 27(8), 861-874.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BallisticsError, ComparisonError
from ._cells import comparison_dict
from ._figures import axes_or_new
from ._roc import roc_auc, roc_curve
from ._style import DIFFERENT_COLOUR, OKABE_ITO, SAME_COLOUR

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["rotation_curve", "score_reference", "roc"]


def rotation_curve(cmp: Any, ax: Axes | None = None, *, title: str | None = None) -> Axes:
    """Number of congruent cells at each trial rotation, for each direction.

    Parameters
    ----------
    cmp : Comparison
        Result of :func:`ballistics.compare` (its ``rotation_curve``: degrees, count).
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.ticker import MaxNLocator

    d = comparison_dict(cmp)
    curves = d.get("rotation_curve") or {}
    if not curves:
        raise ComparisonError("The comparison holds no rotation curve to draw.")
    ax = axes_or_new(ax, figsize=(6, 3.6))
    colours = [OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"]]
    markers = ["o", "s", "^", "D"]
    for i, (name, pts) in enumerate(curves.items()):
        arr = np.asarray(pts, dtype=float).reshape(-1, 2)
        if arr.size == 0:
            continue
        order = np.argsort(arr[:, 0])
        label = str(name).replace("_", " ")
        if name == "b_to_a":
            label += " (peaks at minus the a-to-b rotation)"
        ax.plot(arr[order, 0], arr[order, 1], marker=markers[i % 4], ms=4, color=colours[i % 4], label=label)
    rot = d.get("rotation_deg")
    if isinstance(rot, (int, float)) and np.isfinite(rot):
        ax.axvline(rot, color="black", ls=":", lw=1, label=f"registration {rot:.1f} deg")
    ax.set_xlabel("rotation of the target (degrees)")
    ax.set_ylabel("congruent cells (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names = f"{d.get('a_name', 'a')} vs {d.get('b_name', 'b')}"
    ax.set_title(title if title is not None else f"{names}: congruent cells across rotation")
    return ax


def score_reference(score: float, same: Iterable[float], different: Iterable[float], ax: Axes | None = None, *,
                    score_name: str = "congruent matching cells (count)",
                    source: str = "reference pairs", title: str | None = None,
                    integer: bool = True, score_label: str = "this comparison") -> Axes:
    """Where a score falls against known same-firearm and different-firearm scores.

    Parameters
    ----------
    score : float
        The score of the case comparison.
    same, different : iterable of float
        Scores of known same-firearm and different-firearm pairs, on the SAME scale as
        ``score`` (same method and parameters); NaN values are left out.
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

    See Also
    --------
    ballistics.review.reference.placement : the counts written in the figure.
    """
    from matplotlib.ticker import MaxNLocator

    from .reference import placement

    same_a = np.asarray(list(same), float)
    diff_a = np.asarray(list(different), float)
    same_a, diff_a = same_a[np.isfinite(same_a)], diff_a[np.isfinite(diff_a)]
    if same_a.size == 0 and diff_a.size == 0:
        raise BallisticsError("No reference scores given; cannot place the score.")
    if not np.isfinite(score):
        raise BallisticsError(f"The score to place must be a finite number, got {score}.")
    place = placement(score, same_a, diff_a)
    ax = axes_or_new(ax, figsize=(7, 3.8))
    allv = np.concatenate([same_a, diff_a, [score]])
    if integer:
        bins = np.arange(np.floor(allv.min()) - 0.5, np.ceil(allv.max()) + 1.5, 1.0)
    else:
        bins = np.histogram_bin_edges(allv, bins=min(30, max(8, allv.size // 3)))
    ax.hist(diff_a, bins=bins.tolist(), color=DIFFERENT_COLOUR, alpha=0.65, hatch="//", edgecolor="white",
            label=f"different firearm (n = {diff_a.size})")
    ax.hist(same_a, bins=bins.tolist(), color=SAME_COLOUR, alpha=0.65, edgecolor="white",
            label=f"same firearm (n = {same_a.size})")
    ax.axvline(score, color="black", lw=2.5, label=f"{score_label}: {score:g}")
    ax.text(0.99, 0.97,
            f"same-firearm pairs scoring >= {score:g}: {place.same_at_or_above} of {place.n_same}\n"
            f"different-firearm pairs scoring >= {score:g}: {place.different_at_or_above} of {place.n_different}",
            transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"fc": "white", "ec": OKABE_ITO["grey"], "alpha": 0.9})
    ax.set_xlabel(score_name)
    ax.set_ylabel("pairs (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="center right", fontsize=8)
    ax.set_title(title if title is not None else f"This score among {source}")
    return ax


def roc(same: Iterable[float], different: Iterable[float], ax: Axes | None = None, *, label: str = "score",
        title: str | None = None) -> Axes:
    """Draw the ROC curve of a score with its area under the curve (AUC) in the legend.

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

    See Also
    --------
    roc_curve, roc_auc : the numbers drawn.
    """
    same_l, diff_l = list(same), list(different)
    fpr, tpr, _ = roc_curve(same_l, diff_l)
    auc = roc_auc(same_l, diff_l)
    ax = axes_or_new(ax, figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, color=OKABE_ITO["blue"], lw=2, label=f"{label} (AUC = {auc:.3f})", marker="o", ms=3)
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
