"""Receiver operating characteristic of a similarity score (no plotting here).

References
----------
Fawcett, T. (2006). An introduction to ROC analysis. Pattern Recognition Letters 27(8),
861-874.
Hanley, J. A., McNeil, B. J. (1982). The meaning and use of the area under a receiver
operating characteristic (ROC) curve. Radiology 143(1), 29-36.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ParameterError

__all__ = ["roc_curve", "roc_auc"]


def _scores(values: Iterable[float], what: str) -> np.ndarray:
    v = np.asarray(list(values), float).ravel()
    if v.size and not np.all(np.isfinite(v)):
        raise ParameterError(f"The {what} scores hold NaN or infinite values; drop them first.")
    return v


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
        from the strictest (``inf``: nothing called) to the loosest (everything called).

    Examples
    --------
    >>> fpr, tpr, thr = roc_curve([3, 5], [1, 3])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    s = _scores(same, "same-firearm")
    d = _scores(different, "different-firearm")
    if s.size == 0 or d.size == 0:
        raise ParameterError("An ROC curve needs at least one same-firearm and one different-firearm score.")
    thr = np.concatenate([[np.inf], np.unique(np.concatenate([s, d]))[::-1]])
    # counts at or above each threshold, by binary search in the sorted scores
    tpr = (s.size - np.searchsorted(np.sort(s), thr, side="left")) / s.size
    fpr = (d.size - np.searchsorted(np.sort(d), thr, side="left")) / d.size
    return fpr.astype(float), tpr.astype(float), thr


def roc_auc(same: Iterable[float], different: Iterable[float]) -> float:
    """Area under the ROC curve: the probability that a same-firearm pair outscores a
    different-firearm pair, ties counting one half (Mann-Whitney statistic).

    Parameters
    ----------
    same, different : iterable of float
        Scores of same-firearm and different-firearm pairs.

    Returns
    -------
    float
        0..1 (0.5 = chance, 1 = perfect separation).

    Examples
    --------
    >>> roc_auc([3, 5], [1, 3])
    0.875
    """
    fpr, tpr, _ = roc_curve(same, different)
    # trapezoids between successive points of the step curve (exact for ties)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
