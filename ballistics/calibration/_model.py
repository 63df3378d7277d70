"""The :class:`LRSystem`: a fitted score-to-likelihood-ratio system, its domain and intervals.

Fitting lives in :mod:`._fitting`, storage in :mod:`._storage`, the shipped systems in
:mod:`._registry`; this module applies a system to scores and comparisons.

References
----------
Vergeer, P., van Es, A., de Jongh, A., Alberink, I., Stoel, R. (2016). Numerical
likelihood ratios outputted by LR systems are often based on extrapolation: when to
stop extrapolating? Science & Justice 56(6), 482-491.
Efron, B., Tibshirani, R. (1993). An Introduction to the Bootstrap, ch. 13.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._json import jsonable
from .._version import __version__
from ..errors import CalibrationError, ParameterError
from ._calibrators import METHODS, Calibrator
from ._checks import as_scores
from ._domain import Domain
from ._interval import Replicates, bootstrap_interval

__all__ = ["LRSystem", "lookup"]


def lookup(d: dict[str, Any], path: str) -> float:
    """The number at a dotted ``path`` of a comparison dict (``"method_counts.high"``)."""
    cur: Any = d
    for part in str(path).split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ParameterError(f"the comparison has no field {path!r} (needed as this system's score)")
        cur = cur[part]
    if cur is None:
        raise ParameterError(f"the comparison's {path!r} is missing (None); no LR can be given")
    return float(cur)


def _as_dict(comparison: Any) -> dict[str, Any]:
    d = comparison.to_dict() if hasattr(comparison, "to_dict") else comparison
    if not isinstance(d, dict):
        raise ParameterError(f"expected a Comparison or its dict, got {type(comparison).__name__}")
    return d


@dataclass
class LRSystem:
    """A fitted score-to-likelihood-ratio system with its validation and domain.

    Attributes
    ----------
    name : str
        Short identifier (also the file name of shipped systems).
    method : str
        Calibrator: ``"logistic"``, ``"kde"`` or ``"isotonic"``.
    params, state : dict
        Calibrator parameters and fitted state (JSON-able).
    elub : (float, float)
        ELUB bounds (log10 LR) every output is clipped to (Vergeer et al. 2016), from
        the cross-validated LLRs.
    score_column : str or list of str
        Field(s) of a comparison's ``to_dict()`` (dotted paths allowed) used as score.
    reference : dict
        The reference population: description, data sets, counts, comparison parameters.
    domain : Domain or None
        The comparisons the validation covers; outside it no LR is given by default.
    validation_bar : dict
        The criteria the system was held to (``{metric: maximum}``) and whether its
        cross-validated results met them.
    training_checksum, system_version, library_version, created : str
    cross_validation : dict
        Scheme, folds, cross-validated LLRs, metrics overall, per stratum, per firearm.
    training_metrics : dict
        Metrics on the training data itself -- *not* a validation.
    bootstrap : dict
        Firearm-bootstrap refits (calibrator state and ELUB bounds of each) for intervals.
    training : dict or None
        The training data (scores, same, groups, strata), if stored.
    """

    name: str
    method: str
    params: dict[str, Any]
    state: dict[str, Any]
    elub: tuple[float, float]
    score_column: Any = "score"
    reference: dict[str, Any] = field(default_factory=dict)
    training_checksum: str = ""
    system_version: str = "1"
    library_version: str = __version__
    created: str = ""
    cross_validation: dict[str, Any] = field(default_factory=dict)
    training_metrics: dict[str, Any] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    domain: Domain | None = None
    validation_bar: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibrator {self.method!r} (known: {sorted(METHODS)})")
        self.elub = (float(self.elub[0]), float(self.elub[1]))
        self._cal: Calibrator = METHODS[self.method].from_state(self.params, self.state)
        self._reps: Replicates | None = None

    # ------------------------------------------------------------------ evaluation
    @property
    def n_scores(self) -> int:
        """Scores per pair the system combines (only logistic systems take more than one)."""
        return len(self.state.get("coef", [0])) if self.method == "logistic" else 1

    def _x(self, scores: Any) -> np.ndarray:
        multi = self.n_scores > 1
        x = as_scores(scores, allow_2d=multi)
        if multi and x.ndim == 1:
            x = x.reshape(-1, self.n_scores)
        return x

    def _scalar(self, scores: Any) -> bool:
        return bool(np.ndim(scores) == 0 or (np.ndim(scores) == 1 and self.n_scores > 1))

    def llr_unbounded(self, scores: Any) -> np.ndarray:
        """log10 LRs of the calibrator before the ELUB bounds (for diagnostics only)."""
        return self._cal.llr(self._x(scores))

    def llr(self, scores: Any) -> Any:
        """log10 likelihood ratios of scores, clipped to the ELUB bounds.

        Parameters
        ----------
        scores : float or array_like
            Score(s) of the kind named by ``score_column``; shape ``(n, k)`` for
            multi-score systems.

        Returns
        -------
        float or ndarray
            log10 LR; positive supports the same-source proposition.
        """
        out = np.clip(self.llr_unbounded(scores), *self.elub)
        return float(out[0]) if self._scalar(scores) else out

    def lr(self, scores: Any) -> Any:
        """Likelihood ratio(s) ``10 ** llr(scores)`` (bounded)."""
        return 10.0 ** self.llr(scores)

    def replicates(self) -> Replicates:
        """The stored firearm-bootstrap refits (built once)."""
        if self._reps is None:
            self._reps = Replicates.from_stored(self.method, self.params, self.bootstrap, self.elub)
        return self._reps

    def interval(self, score: Any, level: float = 0.95) -> dict[str, Any]:
        """The firearm-bootstrap interval of the log10 LR at one score, with its bound flag.

        Each stored refit was fitted on the pairs of firearms drawn with replacement and
        bounded by its own ELUB bounds; the interval is the percentile interval of the
        refits' bounded log10 LR at ``score``.

        Parameters
        ----------
        score : float
        level : float
            Coverage in (0, 1).

        Returns
        -------
        dict
            ``interval`` ``[low, high]`` (log10), ``level``, ``n_refits``, ``at_bound``
            (None, ``"lower"`` or ``"upper"``: the LR is held by an ELUB bound in the
            system or in at least ``(1 - level) / 2`` of the refits) and ``note``
            (plain language).
        """
        x = self._x(score)
        point = float(np.clip(self.llr_unbounded(x), *self.elub)[0])
        return bootstrap_interval(self.replicates(), x, point, self.elub, level)

    def llr_interval(self, score: Any, level: float = 0.95) -> Any:
        """Firearm-bootstrap percentile interval(s) of the log10 LR (see :meth:`interval`).

        Returns
        -------
        (float, float) or ndarray of shape (n, 2)
        """
        if self._scalar(score):
            lo, hi = self.interval(score, level)["interval"]
            return float(lo), float(hi)
        x = self._x(score)
        return np.array([self.interval(row if x.ndim == 2 else float(row), level)["interval"] for row in x])

    def score_of(self, comparison: Any) -> Any:
        """The score this system takes, read from a comparison (or its ``to_dict()``)."""
        d = _as_dict(comparison)
        cols = self.score_column if isinstance(self.score_column, (list, tuple)) else [self.score_column]
        vals = [lookup(d, c) for c in cols]
        return vals[0] if len(vals) == 1 else np.asarray(vals, float)

    def outside_domain(self, comparison: Any, scans: Sequence[dict[str, Any]] | None = None) -> list[str]:
        """Reasons a comparison lies outside the system's domain (empty: inside).

        Parameters
        ----------
        comparison : Comparison or dict
        scans : sequence of dict, optional
            :func:`ballistics.calibration.scan_domain` of both scans.

        Returns
        -------
        list of str
        """
        d = _as_dict(comparison)
        if self.domain is None:
            return self._legacy_param_check(d)
        return self.domain.check(scans, d.get("params")) + self.domain.check_processing(scans or [])

    def _legacy_param_check(self, d: dict[str, Any]) -> list[str]:
        ref = self.reference.get("compare_params") or {}
        if not ref:
            return []
        return Domain.make("any", (0.0, float("inf")), ref)._check_params(
            {k: v for k, v in (d.get("params") or {}).items() if k != "pixel_spacing_m"})

    def extrapolation(self, score: Any) -> list[str]:
        """A warning when the score lies outside the scores the system was fitted on."""
        if not self.training or self.n_scores != 1:
            return []
        tr = np.asarray(self.training["scores"], float)
        x = float(np.atleast_1d(np.asarray(score, float))[0])
        if x < tr.min() or x > tr.max():
            return [f"the score {x:.3g} lies outside the reference scores ({tr.min():.3g} to {tr.max():.3g}); "
                    "the LR there is an extrapolation held by the ELUB bounds"]
        return []

    def evaluate(self, comparison: Any, level: float = 0.95, *, scans: Sequence[dict[str, Any]] | None = None,
                 outside_domain: bool = False) -> dict[str, Any]:
        """Everything a report needs about the LR of one comparison, JSON-able.

        Parameters
        ----------
        comparison : Comparison or dict
        level : float
            Coverage of the interval.
        scans : sequence of dict, optional
            :func:`ballistics.calibration.scan_domain` of both scans, for the domain check.
        outside_domain : bool
            Give an LR even outside the domain (marked ``outside_validation``).

        Returns
        -------
        dict
            ``score``; ``llr`` (bounded log10 LR, None outside the domain unless
            asked for); ``lr``; ``interval``, ``interval_at_bound``, ``interval_note``;
            ``level``; ``verbal``; ``elub``; ``in_domain``; ``outside_validation``;
            ``domain`` (the system's); ``warnings``; ``system`` (name, version, method,
            reference, cross-validated Cllr).
        """
        from ._verbal import verbal_scale

        score = self.score_of(comparison)
        reasons = self.outside_domain(comparison, scans)
        out: dict[str, Any] = {
            "score": score, "level": level, "elub": list(self.elub), "in_domain": not reasons,
            "outside_validation": False, "domain": self.domain.to_dict() if self.domain else None,
            "domain_summary": self.domain.summary() if self.domain else "no domain declared",
            "warnings": [], "system": self.describe(), "llr": None, "lr": None, "interval": None,
            "interval_at_bound": None, "interval_note": "", "verbal": None}
        if reasons and not outside_domain:
            out["warnings"] = [f"no LR: outside the domain of LR system {self.name!r} ({r})" for r in reasons]
            return jsonable(out)
        if reasons:
            out["outside_validation"] = True
            out["warnings"] = [f"LR given outside the validation of system {self.name!r} ({r})" for r in reasons]
        if self.domain is None:
            out["warnings"].append(f"LR system {self.name!r} declares no domain: nothing says the comparison "
                                   "is of the kind it was validated on")
        llr = self.llr(score)
        out.update(llr=llr, lr=10.0 ** llr, verbal=verbal_scale(llr))
        try:
            iv = self.interval(score, level)
            out.update(interval=iv["interval"], interval_at_bound=iv["at_bound"], interval_note=iv["note"],
                       n_refits=iv["n_refits"])
        except CalibrationError as exc:
            out["interval_note"] = str(exc)
        out["warnings"] += self.extrapolation(score)
        if self.validation_bar and not self.validation_bar.get("all_met", True):
            failed = [k for k, ok in (self.validation_bar.get("met") or {}).items() if not ok]
            out["warnings"].append(f"LR system {self.name!r} did not meet the bar it was held to in its own "
                                   f"cross-validation ({', '.join(failed)}): treat its LRs with caution")
        return jsonable(out)

    def describe(self) -> dict[str, Any]:
        """Name, version, method, score column, checksum, reference and CV Cllr, for reports."""
        return {"name": self.name, "version": self.system_version, "method": self.method,
                "score_column": self.score_column, "training_checksum": self.training_checksum,
                "reference": self.reference.get("description", ""), "cv_cllr": self.cv_metrics.get("cllr"),
                "cv_scheme": self.cross_validation.get("scheme"), "library_version": self.library_version,
                "instrument_family": self.domain.instrument_family if self.domain else None}

    def verbal(self, score: Any) -> str:
        """ENFSI (2015) verbal equivalent of the bounded LR at ``score``."""
        from ._verbal import verbal_scale
        return verbal_scale(self.llr(score))

    # ------------------------------------------------------------------ description
    @property
    def cv_metrics(self) -> dict[str, Any]:
        """Cross-validated metrics (whole firearms left out)."""
        return self.cross_validation.get("metrics", {})

    def summary(self) -> str:
        """One line: name, method, bounds, cross-validated Cllr, domain."""
        m = self.cv_metrics
        dom = self.domain.summary() if self.domain else "no declared domain"
        return (f"LR system {self.name} v{self.system_version} ({self.method} on {self.score_column}); "
                f"ELUB [{self.elub[0]:+.2f}, {self.elub[1]:+.2f}] log10; "
                f"cross-validated Cllr {m.get('cllr', float('nan')):.3f}, Cllr_min "
                f"{m.get('cllr_min', float('nan')):.3f} ({self.cross_validation.get('scheme', '')}); domain: {dom}")

    def __repr__(self) -> str:
        fam = self.domain.instrument_family if self.domain else "any"
        return f"<LRSystem {self.name} v{self.system_version} {self.method} {fam} elub={self.elub}>"

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with ``content_sha256`` over everything else (see :mod:`._storage`)."""
        from ._storage import system_to_dict
        return system_to_dict(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the system as JSON, atomically."""
        from ._storage import save_system
        return save_system(self, path)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "dict") -> LRSystem:
        """Rebuild a system from :meth:`to_dict` output, verifying its checksums."""
        from ._storage import system_from_dict
        return system_from_dict(d, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LRSystem:
        """Read a system written by :meth:`save` (JSON, size- and depth-capped; never pickle)."""
        from ._storage import load_system
        return load_system(path)
