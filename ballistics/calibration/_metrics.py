"""Performance metrics of likelihood-ratio systems: Cllr, Cllr_min, Cllr_cal, ECE, EER,
rates of misleading evidence.

Every function takes log10 likelihood ratios (``llr``; +-inf allowed) and the ground
truth ``same_source`` (True/1 = same source, H1 / Hp; False/0 = different source, H2 /
Hd).

References
----------
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3), 230-275 (Cllr, Cllr_min by PAV, ROCCH).
Ramos, D., Gonzalez-Rodriguez, J. (2013). Reliable support: measuring calibration of
likelihood ratios. Forensic Science International 230(1-3), 156-169 (ECE).
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153 (performance characteristics and rates of misleading
evidence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError
from ._checks import as_labels, as_llr, check_both_classes
from ._pav import pav

__all__ = ["cllr", "cllr_min", "cllr_cal", "pav_llr", "ece", "eer", "misleading_evidence", "misleading_rates",
           "Metrics",
           "metrics"]

_LN10 = math.log(10.0)
_LN2 = math.log(2.0)


def _prep(llr: Any, same_source: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_llr(llr)
    y = as_labels(same_source, a.size)
    check_both_classes(y)
    return a, y


def _log2_1p_10pow(x: np.ndarray) -> np.ndarray:
    """``log2(1 + 10**x)`` without overflow (``x`` may be +-inf)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.logaddexp(0.0, x * _LN10) / _LN2


def cllr(llr: Any, same_source: Any) -> float:
    """Log-likelihood-ratio cost (bits).

    ``Cllr = 1/2 [ mean_H1 log2(1 + 1/LR) + mean_H2 log2(1 + LR) ]``

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 likelihood ratios (+-inf allowed).
    same_source : array_like of bool, shape (n,)
        Ground truth: True for same-source (H1) pairs.

    Returns
    -------
    float
        0 for a perfect system, 1 for an uninformative one (LR = 1 always), unbounded
        above for misleading systems; ``inf`` if a pair has LR = 0 under H1 or
        LR = inf under H2.

    References
    ----------
    Brümmer & du Preez (2006), eq. (37).
    """
    a, y = _prep(llr, same_source)
    return float(0.5 * (np.mean(_log2_1p_10pow(-a[y])) + np.mean(_log2_1p_10pow(a[~y]))))


def pav_llr(llr: Any, same_source: Any) -> np.ndarray:
    """log10 LRs after the optimal monotone recalibration (PAV) of ``llr`` on its own labels.

    The PAV posterior is turned into a likelihood ratio by dividing by the empirical
    prior odds ``n_H1 / n_H2``.  Blocks holding one class only give +-inf.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs (or any score: only their order matters).
    same_source : array_like of bool, shape (n,)

    Returns
    -------
    ndarray, shape (n,)
        log10 LRs of the PAV-calibrated system, in input order.

    References
    ----------
    Brümmer & du Preez (2006), section 5.3.
    """
    a, y = _prep(llr, same_source)
    # pool ties of +-inf with the rest: map to finite order-preserving values
    finite = a[np.isfinite(a)]
    lo = (finite.min() if finite.size else 0.0) - 1.0
    hi = (finite.max() if finite.size else 0.0) + 1.0
    x = np.where(np.isposinf(a), hi, np.where(np.isneginf(a), lo, a))
    p, _, _ = pav(x, y.astype(float))
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    with np.errstate(divide="ignore"):
        return np.log10(p) - np.log10(1.0 - p) - math.log10(n1 / n0)


def cllr_min(llr: Any, same_source: Any) -> float:
    """Discrimination loss: Cllr after the optimal monotone calibration (PAV), in bits.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs (or any score: only their order matters).
    same_source : array_like of bool, shape (n,)

    Returns
    -------
    float
        0 when the scores separate the classes, 1 when they carry no information.

    References
    ----------
    Brümmer & du Preez (2006), section 5.3.
    """
    a, y = _prep(llr, same_source)
    return cllr(pav_llr(a, y), y)


def cllr_cal(llr: Any, same_source: Any) -> float:
    """Calibration loss ``Cllr - Cllr_min`` (bits), >= 0.

    References
    ----------
    Brümmer & du Preez (2006), section 5.3.
    """
    a, y = _prep(llr, same_source)
    return cllr(a, y) - cllr_min(a, y)


def ece(llr: Any, same_source: Any, prior_log10_odds: Any = None) -> np.ndarray:
    """Empirical cross-entropy (bits) at given prior log10 odds.

    ``ECE(O) = P(H1)/N1 sum_H1 log2(1 + 1/(LR O)) + P(H2)/N2 sum_H2 log2(1 + LR O)``
    with ``P(H1) = O / (1 + O)``.  At prior odds 1 (log10 odds 0) it equals ``Cllr``.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs.
    same_source : array_like of bool, shape (n,)
    prior_log10_odds : array_like, optional
        log10 prior odds of H1 (default -2.5 to 2.5 in 101 steps).

    Returns
    -------
    ndarray
        ECE at every prior, bits.

    References
    ----------
    Ramos & Gonzalez-Rodriguez (2013), eq. (6).
    """
    a, y = _prep(llr, same_source)
    o = np.linspace(-2.5, 2.5, 101) if prior_log10_odds is None else np.atleast_1d(
        np.asarray(prior_log10_odds, dtype=float))
    if not np.all(np.isfinite(o)):
        raise ParameterError("prior_log10_odds must be finite")
    p1 = 1.0 / (1.0 + 10.0 ** (-o))
    h1 = np.array([np.mean(_log2_1p_10pow(-(a[y] + oi))) for oi in o])
    h0 = np.array([np.mean(_log2_1p_10pow(a[~y] + oi)) for oi in o])
    return p1 * h1 + (1.0 - p1) * h0


def eer(scores: Any, same_source: Any) -> float:
    """Equal error rate from the ROC convex hull (ROCCH-EER), in [0, 0.5].

    The ROC points ``(P_fa, P_miss)`` of every threshold (``P_miss = P(s < t | H1)``,
    ``P_fa = P(s >= t | H2)``) are reduced to their lower convex hull, and the EER is
    where the hull crosses ``P_miss = P_fa``.  On the hull every point is reachable by a
    (randomised) threshold, so this is the EER of the PAV-calibrated system.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Scores or log10 LRs (only their order matters; +-inf allowed).
    same_source : array_like of bool, shape (n,)

    Returns
    -------
    float

    References
    ----------
    Brümmer & du Preez (2006), section 5.2 (ROCCH); BOSARIS toolkit ``rocch2eer``.
    """
    a, y = _prep(scores, same_source)
    s1 = np.sort(a[y])
    s0 = np.sort(a[~y])
    t = np.concatenate([np.unique(a), [np.inf]])
    pmiss = np.searchsorted(s1, t, side="left") / s1.size
    pfa = 1.0 - np.searchsorted(s0, t, side="left") / s0.size
    pmiss[-1], pfa[-1] = 1.0, 0.0
    pts = sorted(set(zip(pfa.tolist(), pmiss.tolist())) | {(1.0, 0.0), (0.0, 1.0)})
    hull: list[tuple[float, float]] = []
    for p in pts:  # lower hull, monotone chain
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    for (x1, y1), (x2, y2) in zip(hull[:-1], hull[1:]):
        f1, f2 = y1 - x1, y2 - x2
        if f1 >= 0 >= f2:
            if f1 == f2:
                return float(x1)
            u = f1 / (f1 - f2)
            return float(x1 + u * (x2 - x1))
    return 0.5  # pragma: no cover - the hull always crosses the diagonal


def misleading_evidence(llr: Any, same_source: Any, threshold: float = 0.0) -> tuple[float, float]:
    """Rates of misleading evidence.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs.
    same_source : array_like of bool, shape (n,)
    threshold : float
        log10 LR beyond which evidence counts as misleading (0: any support for the
        wrong proposition; 2: "strong" misleading evidence, LR beyond 100 or 1/100).

    Returns
    -------
    (float, float)
        ``(RMEP, RMED)``: fraction of same-source pairs with ``llr < -threshold`` and of
        different-source pairs with ``llr > threshold``.

    References
    ----------
    Meuwly, Ramos & Haraksim (2017), section 4.
    """
    a, y = _prep(llr, same_source)
    if not math.isfinite(threshold) or threshold < 0:
        raise ParameterError(f"threshold must be a finite log10 LR >= 0, got {threshold}")
    return float(np.mean(a[y] < -threshold)), float(np.mean(a[~y] > threshold))


def misleading_rates(llr: Any, same_source: Any, thresholds: tuple[float, ...] = (0.0, 1.0, 2.0)
                     ) -> dict[str, Any]:
    """Counts and rates of misleading evidence at several strengths.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs (pairs without an LR left out beforehand).
    same_source : array_like of bool, shape (n,)
    thresholds : tuple of float
        log10 LR strengths: 0 (LR < 1 / LR > 1), 1 (beyond 10), 2 (beyond 100).

    Returns
    -------
    dict
        ``n_same``, ``n_different`` and, per threshold ``t``, ``same_below_<10^t>`` /
        ``different_above_<10^t>`` as ``{"count", "rate"}`` (rate None without pairs of
        that class): same-source pairs with LR < 10^-t, different-source pairs with
        LR > 10^t.

    References
    ----------
    Meuwly, Ramos & Haraksim (2017), section 4 (rates of misleading evidence).
    """
    a = np.asarray(llr, dtype=float).ravel()
    y = np.asarray(same_source, dtype=bool).ravel()
    if a.shape != y.shape:
        raise ParameterError(f"llr and same_source differ in length ({a.size} vs {y.size})")
    n1, n0 = int(y.sum()), int((~y).sum())
    out: dict[str, Any] = {"n_same": n1, "n_different": n0}
    for t in thresholds:
        if not math.isfinite(t) or t < 0:
            raise ParameterError(f"thresholds must be finite log10 LRs >= 0, got {t}")
        lab = f"{10 ** t:g}"
        c1 = int(np.sum(a[y] < -t))
        c0 = int(np.sum(a[~y] > t))
        out[f"same_below_1/{lab}" if t else "same_below_1"] = {"count": c1, "rate": c1 / n1 if n1 else None}
        out[f"different_above_{lab}"] = {"count": c0, "rate": c0 / n0 if n0 else None}
    return out


@dataclass(frozen=True)
class Metrics:
    """Performance characteristics of a set of LLRs with their ground truth.

    Attributes
    ----------
    n_same, n_different : int
        Same-source (H1) and different-source (H2) pairs.
    cllr, cllr_min, cllr_cal : float
        Bits (Brümmer & du Preez 2006).
    eer : float
        ROCCH equal error rate.
    rmep, rmed : float
        Rates of misleading evidence (LR < 1 under H1, LR > 1 under H2).
    rmep_strong, rmed_strong : float
        Same beyond LR 1/100 and 100.
    llr_min, llr_max : float
        Range of the LLRs.
    """

    n_same: int
    n_different: int
    cllr: float
    cllr_min: float
    cllr_cal: float
    eer: float
    rmep: float
    rmed: float
    rmep_strong: float
    rmed_strong: float
    llr_min: float
    llr_max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metrics(llr: Any, same_source: Any) -> Metrics:
    """All performance metrics of :class:`Metrics` at once.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs.
    same_source : array_like of bool, shape (n,)

    Returns
    -------
    Metrics

    References
    ----------
    Brümmer & du Preez (2006); Meuwly, Ramos & Haraksim (2017).
    """
    a, y = _prep(llr, same_source)
    c = cllr(a, y)
    cm = cllr_min(a, y)
    rp, rd = misleading_evidence(a, y, 0.0)
    sp, sd = misleading_evidence(a, y, 2.0)
    return Metrics(n_same=int(y.sum()), n_different=int((~y).sum()), cllr=c, cllr_min=cm, cllr_cal=c - cm,
                   eer=eer(a, y), rmep=rp, rmed=rd, rmep_strong=sp, rmed_strong=sd,
                   llr_min=float(a.min()), llr_max=float(a.max()))
