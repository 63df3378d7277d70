"""Validation of the arrays every calibration function takes (scores, labels, LLRs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError

__all__ = ["as_scores", "as_labels", "as_llr", "check_both_classes", "as_groups"]


def as_scores(scores: Any, what: str = "scores", allow_2d: bool = False) -> np.ndarray:
    """Finite float array (1-D, or 2-D ``(n, k)`` when ``allow_2d``)."""
    try:
        a = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be numbers, got {type(scores).__name__}: {exc}") from exc
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim == 2 and not allow_2d:
        if a.shape[1] == 1:
            a = a[:, 0]
        else:
            raise ParameterError(f"{what} must be one score per pair (1-D), got shape {a.shape}; "
                                 "only method='logistic' combines several scores")
    if a.ndim not in (1, 2):
        raise ParameterError(f"{what} must be a 1-D array (one score per pair), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ParameterError(f"{what} is empty")
    if not np.all(np.isfinite(a)):
        bad = int(np.sum(~np.isfinite(a)))
        raise ParameterError(f"{what} holds {bad} NaN or infinite value(s); drop failed comparisons first")
    return a


def as_llr(llr: Any, what: str = "llr") -> np.ndarray:
    """1-D float array of log10 likelihood ratios; +-inf allowed, NaN refused."""
    try:
        a = np.atleast_1d(np.asarray(llr, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be numbers, got {type(llr).__name__}: {exc}") from exc
    if a.ndim != 1:
        raise ParameterError(f"{what} must be 1-D (one log10 LR per pair), got shape {a.shape}")
    if a.size == 0:
        raise ParameterError(f"{what} is empty")
    if np.any(np.isnan(a)):
        raise ParameterError(f"{what} holds {int(np.isnan(a).sum())} NaN value(s)")
    return a


def as_labels(same_source: Any, n: int, what: str = "same_source") -> np.ndarray:
    """Boolean ground truth (True = same source, H1/Hp) of length ``n``."""
    a = np.atleast_1d(np.asarray(same_source))
    if a.ndim != 1 or a.shape[0] != n:
        raise ParameterError(f"{what} must hold one label per score ({n}), got shape {a.shape}")
    if a.dtype == bool:
        return a
    try:
        f = a.astype(float)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be booleans or 0/1, got {a.dtype}") from exc
    if not np.all((f == 0) | (f == 1)):
        raise ParameterError(f"{what} must be booleans or 0/1 (1 = same source), got values {np.unique(f)[:5]}")
    return f == 1


def check_both_classes(y: np.ndarray, what: str = "the data") -> None:
    """Refuse label arrays without at least one same-source and one different-source pair."""
    n1 = int(np.sum(y))
    n0 = int(y.size - n1)
    if n1 == 0 or n0 == 0:
        raise ParameterError(f"{what} must hold both same-source and different-source pairs "
                             f"(got {n1} same-source, {n0} different-source)")


def as_groups(groups: Any, n: int) -> list[tuple[str, str]]:
    """Firearm pair of every score: ``(firearm_a, firearm_b)``; a single label is ``(g, g)``."""
    if groups is None:
        raise ParameterError("groups (the two firearms of every pair) are required: evaluation must leave "
                             "whole firearms out")
    if isinstance(groups, np.ndarray) and groups.ndim == 2:
        groups = groups.tolist()
    if not isinstance(groups, Sequence) and not isinstance(groups, np.ndarray):
        groups = list(groups)
    if len(groups) != n:
        raise ParameterError(f"groups must hold one firearm pair per score ({n}), got {len(groups)}")
    out: list[tuple[str, str]] = []
    for g in groups:
        if isinstance(g, (tuple, list, np.ndarray)):
            if len(g) != 2:
                raise ParameterError(f"each group must be (firearm_a, firearm_b), got {g!r}")
            out.append((str(g[0]), str(g[1])))
        else:
            out.append((str(g), str(g)))
    return out
