"""Validation criteria: the validation matrix of an LR system's cross-validated metrics.

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153 (validation matrix: performance characteristic, metric,
criterion, result, decision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ParameterError
from ._model import LRSystem

__all__ = ["DEFAULT_CRITERIA", "evaluate_criteria", "check_criteria"]

#: Validation criteria: (performance characteristic, metric key, description, limit).
#: A lab should set its own before it sees the results (``criteria={"cllr": 0.2}``).
DEFAULT_CRITERIA: list[dict[str, Any]] = [
    {"characteristic": "accuracy", "metric": "cllr", "label": "Cllr (bits)", "max": 0.30},
    {"characteristic": "discriminating power", "metric": "cllr_min", "label": "Cllr_min (bits)", "max": 0.20},
    {"characteristic": "discriminating power", "metric": "eer", "label": "EER", "max": 0.05},
    {"characteristic": "calibration", "metric": "cllr_cal", "label": "Cllr_cal (bits)", "max": 0.10},
    {"characteristic": "misleading evidence (same source)", "metric": "rmep", "label": "RMEP: LR < 1 under H1",
     "max": 0.05},
    {"characteristic": "misleading evidence (different source)", "metric": "rmed",
     "label": "RMED: LR > 1 under H2", "max": 0.02},
    {"characteristic": "strong misleading evidence", "metric": "rmep_strong", "label": "LR < 1/100 under H1",
     "max": 0.01},
    {"characteristic": "strong misleading evidence", "metric": "rmed_strong", "label": "LR > 100 under H2",
     "max": 0.01},
    {"characteristic": "generalisation", "metric": "cv_minus_training_cllr",
     "label": "cross-validated minus training Cllr (bits)", "max": 0.10},
]


def evaluate_criteria(system: LRSystem | dict[str, Any],
                      criteria: dict[str, float] | Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Validation matrix rows of a system's cross-validated metrics (Meuwly et al. 2017, table 1).

    Parameters
    ----------
    system : LRSystem or dict
        A system, or a dict of metrics (e.g. ``Metrics.to_dict()``).
    criteria : dict or list of dict, optional
        ``{metric: maximum}`` overriding :data:`DEFAULT_CRITERIA` limits, or a full list
        of rows like :data:`DEFAULT_CRITERIA`.

    Returns
    -------
    list of dict
        ``characteristic``, ``metric``, ``label``, ``criterion`` (text), ``max``,
        ``result``, ``passed``.
    """
    rows = [dict(r) for r in DEFAULT_CRITERIA]
    if isinstance(criteria, dict):
        known = {r["metric"] for r in rows}
        for k, v in criteria.items():
            if k not in known:
                raise ParameterError(f"unknown criterion {k!r} (known: {sorted(known)})")
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ParameterError(f"criterion {k} must be a finite number >= 0, got {v!r}")
            for r in rows:
                if r["metric"] == k:
                    r["max"] = float(v)
    elif criteria is not None:
        rows = [dict(r) for r in criteria]
    if isinstance(system, LRSystem):
        m: dict[str, Any] = dict(system.cv_metrics)
        if system.training_metrics:
            m["cv_minus_training_cllr"] = m.get("cllr", math.nan) - system.training_metrics.get("cllr", math.nan)
    else:
        m = dict(system)
    out = []
    for r in rows:
        got = m.get(r["metric"])
        ok = got is not None and math.isfinite(got) and got <= r["max"]
        out.append({**r, "criterion": f"<= {r['max']:g}", "result": got, "passed": bool(ok)})
    return out


def check_criteria(criteria: dict[str, float] | Sequence[dict[str, Any]] | None) -> None:
    """Raise :class:`~ballistics.errors.ParameterError` for unknown or invalid criteria."""
    evaluate_criteria({}, criteria)
