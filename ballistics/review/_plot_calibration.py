"""Figures of likelihood-ratio systems: Tippett, ECE, PAV, score densities, LR curve.

Every function returns a :class:`matplotlib.figure.Figure` built directly (no pyplot,
no backend), or draws into a given ``ax`` and returns its figure.  log10 LRs on the
axes; same-source pairs in blue, different-source in vermillion (Okabe & Ito 2008).

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. FSI 276, 142-153
(Tippett and ECE plots as graphical representations of performance).
Ramos, D., Gonzalez-Rodriguez, J. (2013). Reliable support: measuring calibration of
likelihood ratios. FSI 230(1-3), 156-169 (ECE plot).
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3) (PAV).
Zadora, G., Martyna, A., Ramos, D., Aitken, C. (2014). Statistical Analysis in
Forensic Science, Wiley (kernel densities of scores).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..calibration import LRSystem

__all__ = ["tippett", "ece", "pav", "score_densities", "lr_curve"]

_SAME = "#0072B2"       # Okabe-Ito blue
_DIFF = "#D55E00"       # Okabe-Ito vermillion
_GREY = "#999999"
_BLACK = "#000000"
_GREEN = "#009E73"


def _new_ax(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.2)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _fig(ax: Axes) -> Figure:
    return cast("Figure", ax.figure)


def _prep(llr: Any, same_source: Any) -> tuple[np.ndarray, np.ndarray]:
    from ..calibration._checks import as_labels, as_llr, check_both_classes

    a = as_llr(llr)
    y = as_labels(same_source, a.size)
    check_both_classes(y)
    return a, y


def _finite_range(a: np.ndarray, pad: float = 0.5) -> tuple[float, float]:
    f = a[np.isfinite(a)]
    lo = min(float(f.min()) if f.size else -1.0, -1.0)
    hi = max(float(f.max()) if f.size else 1.0, 1.0)
    return lo - pad, hi + pad


def tippett(llr: Any, same_source: Any, *, ax: Axes | None = None, title: str | None = None,
            elub: tuple[float, float] | None = None) -> Figure:
    """Tippett plot: proportion of pairs with log10 LR above each value, per class.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs (cross-validated ones for a validation).
    same_source : array_like of bool, shape (n,)
    ax : Axes, optional
    title : str, optional
    elub : (float, float), optional
        ELUB bounds to mark (dotted lines).

    Returns
    -------
    Figure

    References
    ----------
    Meuwly, Ramos & Haraksim (2017), section 5 (Tippett plot).
    """
    a, y = _prep(llr, same_source)
    ax = _new_ax(ax)
    lo, hi = _finite_range(a)
    grid = np.linspace(lo, hi, 400)
    for sel, colour, label in ((y, _SAME, "same source (H1)"), (~y, _DIFF, "different source (H2)")):
        v = np.sort(a[sel])
        frac = 1.0 - np.searchsorted(v, grid, side="left") / v.size
        ax.plot(grid, frac, color=colour, lw=2, label=f"{label}, n = {v.size}")
    ax.axvline(0, color=_GREY, lw=1)
    if elub is not None:
        for b in elub:
            ax.axvline(b, color=_BLACK, ls=":", lw=1)
        ax.text(elub[1], 0.5, " ELUB", fontsize=8, va="center")
    ax.set_xlabel("log10 likelihood ratio")
    ax.set_ylabel("proportion of pairs with log10 LR > x")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(lo, hi)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    ax.set_title(title if title is not None else "Tippett plot")
    return _fig(ax)


def ece(llr: Any, same_source: Any, *, ax: Axes | None = None, title: str | None = None,
        prior_log10_odds: Any = None) -> Figure:
    """ECE plot: empirical cross-entropy of the LRs, after PAV, and of LR = 1, across priors.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs.
    same_source : array_like of bool, shape (n,)
    ax : Axes, optional
    title : str, optional
    prior_log10_odds : array_like, optional
        Default -2.5 to 2.5.

    Returns
    -------
    Figure

    References
    ----------
    Ramos & Gonzalez-Rodriguez (2013), section 4.
    """
    from ..calibration import _metrics as M

    a, y = _prep(llr, same_source)
    o = np.linspace(-2.5, 2.5, 101) if prior_log10_odds is None else np.asarray(prior_log10_odds, float)
    ax = _new_ax(ax)
    sys_ = M.ece(a, y, o)
    cal = M.ece(M.pav_llr(a, y), y, o)
    ref = M.ece(np.zeros_like(a), y, o)
    ax.plot(o, sys_, color=_SAME, lw=2, label=f"LR values (Cllr = {M.cllr(a, y):.3f})")
    ax.plot(o, cal, color=_BLACK, ls="--", lw=1.5, label=f"after PAV (Cllr_min = {M.cllr_min(a, y):.3f})")
    ax.plot(o, ref, color=_GREY, ls=":", lw=1.5, label="LR = 1 always (neutral)")
    ax.axvline(0, color=_GREY, lw=0.8)
    top = float(np.nanmax(np.r_[ref, np.minimum(sys_, 2 * ref.max())])) * 1.1
    ax.set_ylim(0, top if np.isfinite(top) and top > 0 else 1.1)
    ax.set_xlabel("prior log10 odds of same source")
    ax.set_ylabel("empirical cross-entropy (bits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title if title is not None else "ECE plot")
    return _fig(ax)


def pav(llr: Any, same_source: Any, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """PAV plot: the optimally recalibrated log10 LR against the system's log10 LR.

    A well-calibrated system lies on the diagonal; PAV values of +-inf (blocks of one
    class) are drawn at the edge of the plot.

    Parameters
    ----------
    llr : array_like, shape (n,)
    same_source : array_like of bool, shape (n,)
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Figure

    References
    ----------
    Brümmer & du Preez (2006), section 5.3.
    """
    from ..calibration._metrics import pav_llr

    a, y = _prep(llr, same_source)
    p = pav_llr(a, y)
    ax = _new_ax(ax, (5.0, 4.6))
    lo, hi = _finite_range(np.r_[a, p[np.isfinite(p)]])
    order = np.argsort(a, kind="mergesort")
    pc = np.clip(p, lo, hi)
    ax.plot([lo, hi], [lo, hi], color=_GREY, ls=":", label="perfect calibration")
    ax.step(np.clip(a[order], lo, hi), pc[order], where="post", color=_BLACK, lw=1.5, label="PAV transform")
    ax.plot(np.clip(a[y], lo, hi), np.clip(p[y], lo, hi), "|", color=_SAME, ms=10, label="same source")
    ax.plot(np.clip(a[~y], lo, hi), np.clip(p[~y], lo, hi), "|", color=_DIFF, ms=10, label="different source")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("system log10 LR")
    ax.set_ylabel("PAV-calibrated log10 LR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title if title is not None else "PAV (calibration) plot")
    return _fig(ax)


def score_densities(scores: Any, same_source: Any, system: LRSystem | None = None, *,
                    ax: Axes | None = None, title: str | None = None, bins: int = 30,
                    score_label: str = "score") -> Figure:
    """Histograms of the scores of both classes with fitted kernel densities.

    Parameters
    ----------
    scores : array_like, shape (n,)
    same_source : array_like of bool, shape (n,)
    system : LRSystem, optional
        A KDE system draws its own densities; otherwise per-class Gaussian KDEs
        (Silverman bandwidth) are fitted for display.
    ax : Axes, optional
    title : str, optional
    bins : int
        Histogram bins (2..500).
    score_label : str

    Returns
    -------
    Figure

    References
    ----------
    Zadora et al. (2014), ch. 4; Aitken & Lucy (2004).
    """
    from ..calibration._calibrators import KDECalibrator
    from ..calibration._checks import as_scores
    from ..errors import ParameterError

    x = as_scores(scores)
    _, y = _prep(np.zeros(x.size), same_source)
    if not isinstance(bins, int) or not 2 <= bins <= 500:
        raise ParameterError(f"bins must be an integer in [2, 500], got {bins!r}")
    kde = system._cal if system is not None and system.method == "kde" else KDECalibrator().fit(x, y)
    assert isinstance(kde, KDECalibrator)
    ax = _new_ax(ax)
    edges = np.histogram_bin_edges(x, bins=bins)
    grid = np.linspace(edges[0] - 0.05 * np.ptp(x), edges[-1] + 0.05 * np.ptp(x), 400)
    for key, sel, colour, label in (("same", y, _SAME, "same source"), ("different", ~y, _DIFF, "different source")):
        ax.hist(x[sel], bins=list(edges), density=True, color=colour, alpha=0.35,
                label=f"{label}, n = {int(sel.sum())}")
        ax.plot(grid, 10.0 ** kde.log10_density(grid, key), color=colour, lw=2)
    ax.set_yscale("symlog", linthresh=1e-3 * max(1e-12, ax.get_ylim()[1]))
    ax.set_xlabel(score_label)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title if title is not None else "Scores with kernel densities")
    return _fig(ax)


def lr_curve(system: LRSystem, *, ax: Axes | None = None, title: str | None = None, level: float = 0.95,
             scores: Any = None, same_source: Any = None) -> Figure:
    """The system's log10 LR as a function of the score, with ELUB bounds and bootstrap band.

    Parameters
    ----------
    system : LRSystem
        A one-score system.
    ax : Axes, optional
    title : str, optional
    level : float
        Coverage of the firearm-bootstrap band (if the system holds replicates).
    scores, same_source : array_like, optional
        Pairs to mark along the score axis (default: the system's training data).

    Returns
    -------
    Figure

    References
    ----------
    Vergeer et al. (2016) (ELUB); Efron & Tibshirani (1993) (bootstrap percentile band).
    """
    from ..errors import ParameterError

    if system.n_scores > 1:
        raise ParameterError("lr_curve draws one-score systems only")
    if scores is None and system.training:
        scores, same_source = system.training["scores"], system.training["same"]
    ax = _new_ax(ax)
    if scores is not None:
        x = np.asarray(scores, float)
        y = np.asarray(same_source, bool)
        lo_s, hi_s = float(x.min()), float(x.max())
    else:
        lo_s, hi_s = 0.0, 1.0
    pad = 0.1 * (hi_s - lo_s or 1.0)
    grid = np.linspace(lo_s - pad, hi_s + pad, 300)
    if system.bootstrap.get("n"):
        band = system.llr_interval(grid, level)
        ax.fill_between(grid, band[:, 0], band[:, 1], color=_GREEN, alpha=0.25,
                        label=f"{int(level * 100)} % firearm bootstrap")
    ax.plot(grid, system.llr_unbounded(grid), color=_GREY, ls="--", lw=1, label="before ELUB bounds")
    ax.plot(grid, system.llr(grid), color=_BLACK, lw=2, label=f"{system.method} LR system")
    for b in system.elub:
        ax.axhline(b, color=_BLACK, ls=":", lw=0.8)
    ax.axhline(0, color=_GREY, lw=0.8)
    if scores is not None:
        ylo = system.elub[0] - 0.4
        ax.plot(x[y], np.full(int(y.sum()), ylo), "|", color=_SAME, ms=12, label="same-source scores")
        ax.plot(x[~y], np.full(int((~y).sum()), ylo - 0.2), "|", color=_DIFF, ms=12, label="different-source scores")
    ax.set_ylim(system.elub[0] - 0.8, system.elub[1] + 0.8)
    ax.set_xlabel(str(system.score_column))
    ax.set_ylabel("log10 likelihood ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title if title is not None else f"LR system {system.name}")
    return _fig(ax)


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (no pyplot involved)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
