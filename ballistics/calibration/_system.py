"""Likelihood-ratio systems: fit a calibrator with firearm-level cross-validation, bound
it with ELUB, bootstrap it over firearms, and save it as JSON.

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153.
Vergeer, P., van Es, A., de Jongh, A., Alberink, I., Stoel, R. (2016). Numerical
likelihood ratios outputted by LR systems are often based on extrapolation: when to
stop extrapolating? Science & Justice 56(6), 482-491.
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3), 230-275.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ParameterError
from ._calibrators import METHODS, Calibrator, make_calibrator
from ._checks import as_groups, as_labels, as_scores, check_both_classes
from ._elub import elub_bounds
from ._errors import CalibrationError
from ._metrics import metrics

__all__ = ["LRSystem", "fit", "get_system", "list_systems", "training_checksum", "DATA_DIR",
           "DEFAULT_SYSTEM", "SYSTEM_FORMAT", "cross_validate"]

log = logging.getLogger(__name__)

#: Folder of the LR systems shipped with the package.
DATA_DIR = Path(__file__).parent / "data"
#: Name of the shipped system that ``get_system("default")`` returns.
DEFAULT_SYSTEM = "learned-fadul-dfsc-v1"
#: Marker and version of the JSON file format.
SYSTEM_FORMAT = "openbreech-lr-system"
FORMAT_VERSION = 1
#: Grid points on which bootstrap replicates of non-parametric calibrators are stored.
GRID_POINTS = 61


def training_checksum(scores: Any, same_source: Any, groups: Any) -> str:
    """SHA-256 of the training data (scores, labels, firearm pairs) in canonical JSON.

    Parameters
    ----------
    scores : array_like
    same_source : array_like of bool
    groups : sequence of (str, str)

    Returns
    -------
    str
        64 hex digits; equal data give equal checksums on every platform.
    """
    x = np.asarray(scores, dtype=float)
    payload = {"scores": x.tolist(), "same": [bool(v) for v in np.asarray(same_source)],
               "groups": [[str(a), str(b)] for a, b in groups]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _clean(o: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.bool_, bool)):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def _round(a: np.ndarray, nd: int = 4) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), nd) for v in np.asarray(a, float)]


@dataclass
class LRSystem:
    """A fitted score-to-likelihood-ratio system with its validation.

    Attributes
    ----------
    name : str
        Short identifier (also the file name of shipped systems).
    method : str
        Calibrator: ``"logistic"``, ``"kde"`` or ``"isotonic"``.
    params : dict
        Calibrator parameters.
    state : dict
        Fitted calibrator state (JSON-able).
    elub : (float, float)
        ELUB bounds (log10 LR) every output is clipped to (Vergeer et al. 2016),
        derived from the cross-validated LLRs.
    score_column : str or list of str
        Field(s) of a :class:`~ballistics.comparison.Comparison` (``to_dict()``; dotted
        paths such as ``"method_counts.high"``) the system takes as its score.
    reference : dict
        The reference population: description, data sets, numbers of scans, firearms and
        pairs, comparison method and parameters.
    training_checksum : str
        SHA-256 of the training data (:func:`training_checksum`).
    system_version : str
        Version of this system (a new fit is a new version).
    library_version : str
        ``ballistics`` version that fitted it.
    created : str
        ISO 8601 UTC time of the fit.
    cross_validation : dict
        Scheme, folds, cross-validated LLRs (bounded and unbounded), metrics overall,
        per stratum and per firearm (Meuwly et al. 2017).  Measured with whole
        firearms left out.
    training_metrics : dict
        Metrics of the final system on its own training data -- *not* a validation.
    bootstrap : dict
        Firearm bootstrap replicates for :meth:`llr_interval`.
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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibrator {self.method!r} (known: {sorted(METHODS)})")
        self.elub = (float(self.elub[0]), float(self.elub[1]))
        self._cal: Calibrator = METHODS[self.method].from_state(self.params, self.state)
        self._boot: list[Calibrator] | None = None

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

    def llr_unbounded(self, scores: Any) -> np.ndarray:
        """log10 LRs of the calibrator before the ELUB bounds (for diagnostics only)."""
        return self._cal.llr(self._x(scores))

    def llr(self, scores: Any) -> Any:
        """log10 likelihood ratios of scores, clipped to the ELUB bounds.

        Parameters
        ----------
        scores : float or array_like
            Score(s) of the kind named by ``score_column`` (e.g. the comparison's
            ``score``); for multi-score systems shape ``(n, k)``.

        Returns
        -------
        float or ndarray
            log10 LR (same shape as a 1-D input; a float for a scalar).  Positive
            supports the same-source proposition.
        """
        scalar = np.ndim(scores) == 0 or (np.ndim(scores) == 1 and self.n_scores > 1)
        out = np.clip(self.llr_unbounded(scores), *self.elub)
        return float(out[0]) if scalar else out

    def lr(self, scores: Any) -> Any:
        """Likelihood ratio(s) ``10 ** llr(scores)`` (bounded)."""
        v = self.llr(scores)
        return 10.0 ** v

    def _replicates(self) -> list[Calibrator]:
        if self._boot is None:
            self._boot = [METHODS[self.method].from_state(self.params, s)
                          for s in self.bootstrap.get("states", [])]
        return self._boot

    def llr_interval(self, score: Any, level: float = 0.95) -> Any:
        """Bootstrap interval of the log10 LR at ``score``, resampling whole firearms.

        Each replicate refits the calibrator on the pairs of a sample of firearms drawn
        with replacement (a pair's weight is the product of its firearms' draw counts).
        The percentile interval of the replicates is clipped to the ELUB bounds and
        widened, where needed, to contain the (bounded) point value :meth:`llr`.

        Parameters
        ----------
        score : float or array_like
            Score(s), as for :meth:`llr`.
        level : float
            Coverage in (0, 1), default 0.95.

        Returns
        -------
        (float, float) or ndarray of shape (n, 2)
            ``(low, high)`` log10 LR.

        References
        ----------
        Efron, B., Tibshirani, R. (1993). An Introduction to the Bootstrap, ch. 13
        (percentile interval); Vergeer et al. (2016) for the bounds.
        """
        if not (isinstance(level, (int, float)) and 0 < level < 1):
            raise ParameterError(f"level must be in (0, 1), got {level!r}")
        scalar = np.ndim(score) == 0 or (np.ndim(score) == 1 and self.n_scores > 1)
        x = self._x(score)
        if self.bootstrap.get("states"):
            reps = np.stack([c.llr(x) for c in self._replicates()])
        elif self.bootstrap.get("grid"):
            grid = np.asarray(self.bootstrap["grid"], float)
            table = np.asarray([[np.nan if v is None else v for v in row] for row in self.bootstrap["llr"]], float)
            reps = np.stack([np.interp(x, grid, row) for row in table])
        else:
            raise CalibrationError(f"LR system {self.name!r} holds no bootstrap replicates; refit with bootstrap > 0")
        a = (1 - level) / 2
        lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0)
        point = np.clip(self.llr_unbounded(x), *self.elub)
        lo = np.minimum(np.clip(lo, *self.elub), point)
        hi = np.maximum(np.clip(hi, *self.elub), point)
        if scalar:
            return float(lo[0]), float(hi[0])
        return np.stack([lo, hi], axis=1)

    def score_of(self, comparison: Any) -> Any:
        """The score this system takes, read from a comparison result.

        Parameters
        ----------
        comparison : Comparison or dict
            A :class:`~ballistics.comparison.Comparison` or its ``to_dict()``.

        Returns
        -------
        float or ndarray
        """
        d = comparison.to_dict() if hasattr(comparison, "to_dict") else comparison
        if not isinstance(d, dict):
            raise ParameterError(f"expected a Comparison or its dict, got {type(comparison).__name__}")
        cols = self.score_column if isinstance(self.score_column, (list, tuple)) else [self.score_column]
        vals = [_lookup(d, c) for c in cols]
        return vals[0] if len(vals) == 1 else np.asarray(vals, float)

    def applicability(self, comparison: Any) -> list[str]:
        """Reasons why this system may not apply to a comparison (empty list: none found).

        Checks that the comparison used the method and parameters of the reference
        population (``reference["compare_params"]``; thread counts and pixel size are
        not compared) and that its score lies within the scores the system was fitted
        on (outside, the LR is an extrapolation held by the ELUB bounds).

        Parameters
        ----------
        comparison : Comparison or dict

        Returns
        -------
        list of str
            Plain-language warnings for a report.
        """
        d = comparison.to_dict() if hasattr(comparison, "to_dict") else comparison
        if not isinstance(d, dict):
            raise ParameterError(f"expected a Comparison or its dict, got {type(comparison).__name__}")
        out: list[str] = []
        ref = self.reference.get("compare_params") or {}
        got = d.get("params") or {}
        ignore = {"workers", "pixel_spacing_m", "translation_threshold_m"}
        diff = sorted(k for k in set(ref) | set(got) if k not in ignore and ref.get(k) != got.get(k))
        if ref and diff:
            out.append("the comparison's parameters differ from those of the reference population in "
                       + ", ".join(f"{k} ({got.get(k)!r} vs {ref.get(k)!r})" for k in diff[:6])
                       + ("" if len(diff) <= 6 else f" and {len(diff) - 6} more"))
        try:
            x = np.atleast_1d(np.asarray(self.score_of(d), float))
        except ParameterError as exc:
            return out + [str(exc)]
        if self.training and self.n_scores == 1:
            tr = np.asarray(self.training["scores"], float)
            if x[0] < tr.min() or x[0] > tr.max():
                out.append(f"the score {x[0]:.3g} lies outside the reference scores ({tr.min():.3g} to "
                           f"{tr.max():.3g}); the LR there is an extrapolation bounded by ELUB")
        return out

    def evaluate(self, comparison: Any, level: float = 0.95) -> dict[str, Any]:
        """Everything a report needs about the LR of one comparison, JSON-able.

        Parameters
        ----------
        comparison : Comparison or dict
            A :class:`~ballistics.comparison.Comparison` or its ``to_dict()``.
        level : float
            Coverage of the interval.

        Returns
        -------
        dict
            ``score``, ``llr`` (bounded log10 LR), ``lr``, ``interval`` (log10, firearm
            bootstrap, or None if the system holds no replicates), ``level``,
            ``verbal`` (ENFSI 2015), ``elub``, ``warnings`` (:meth:`applicability`),
            ``system`` (name, version, method, score column, training checksum,
            reference description, cross-validated Cllr).
        """
        from ._verbal import verbal_scale

        score = self.score_of(comparison)
        llr = self.llr(score)
        try:
            interval: list[float] | None = list(self.llr_interval(score, level))
        except CalibrationError:
            interval = None
        return _clean({
            "score": score, "llr": llr, "lr": 10.0 ** llr, "interval": interval, "level": level,
            "verbal": verbal_scale(llr), "elub": list(self.elub), "warnings": self.applicability(comparison),
            "system": {"name": self.name, "version": self.system_version, "method": self.method,
                       "score_column": self.score_column, "training_checksum": self.training_checksum,
                       "reference": self.reference.get("description", ""),
                       "cv_cllr": self.cv_metrics.get("cllr"), "cv_scheme": self.cross_validation.get("scheme"),
                       "library_version": self.library_version},
        })

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
        m = self.cv_metrics
        ref = self.reference.get("description", "")
        return (f"LR system {self.name} v{self.system_version} ({self.method} on {self.score_column}); "
                f"ELUB [{self.elub[0]:+.2f}, {self.elub[1]:+.2f}] log10; "
                f"cross-validated Cllr {m.get('cllr', float('nan')):.3f}, Cllr_min "
                f"{m.get('cllr_min', float('nan')):.3f} ({self.cross_validation.get('scheme', '')}); {ref}")

    def __repr__(self) -> str:
        return f"<LRSystem {self.name} v{self.system_version} {self.method} elub={self.elub}>"

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of everything (file format :data:`SYSTEM_FORMAT`).

        ``content_sha256`` is the SHA-256 of all other fields in canonical JSON, so
        any later edit of the file (fitted state, bounds, metrics) is detected on load.
        """
        d = _clean({
            "format": SYSTEM_FORMAT, "format_version": FORMAT_VERSION,
            "name": self.name, "system_version": self.system_version, "library_version": self.library_version,
            "created": self.created, "method": self.method, "params": self.params, "state": self.state,
            "elub": list(self.elub), "score_column": self.score_column, "reference": self.reference,
            "training_checksum": self.training_checksum, "cross_validation": self.cross_validation,
            "training_metrics": self.training_metrics, "bootstrap": self.bootstrap, "training": self.training,
        })
        d["content_sha256"] = _content_sha256(d)
        return d

    def save(self, path: str | os.PathLike) -> Path:
        """Write the system as JSON (atomically: a temporary file renamed over ``path``).

        Returns
        -------
        Path
        """
        p = Path(path)
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, p)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CalibrationError(f"cannot write the LR system to {p}: {exc}") from exc
        return p

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "dict") -> LRSystem:
        """Rebuild a system from :meth:`to_dict` output, checking format and training checksum."""
        if not isinstance(d, dict) or d.get("format") != SYSTEM_FORMAT:
            raise CalibrationError(f"{source} is not an openbreech LR-system file (no format marker "
                                   f"{SYSTEM_FORMAT!r})")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise CalibrationError(f"{source} has format version {d.get('format_version')}, this library reads "
                                   f"up to {FORMAT_VERSION}; upgrade openbreech")
        if "content_sha256" in d and _content_sha256(d) != d["content_sha256"]:
            raise CalibrationError(f"{source}: the content does not match its content_sha256; the file was altered "
                                   "after it was written (refit or restore the original)")
        try:
            tr = d.get("training")
            if tr and d.get("training_checksum"):
                got = training_checksum(tr["scores"], tr["same"], tr["groups"])
                if got != d["training_checksum"]:
                    raise CalibrationError(f"{source}: the stored training data do not match the training "
                                           "checksum; the file was altered")
            return cls(name=d["name"], method=d["method"], params=d["params"], state=d["state"],
                       elub=tuple(d["elub"]), score_column=d.get("score_column", "score"),
                       reference=d.get("reference", {}), training_checksum=d.get("training_checksum", ""),
                       system_version=str(d.get("system_version", "1")),
                       library_version=d.get("library_version", ""), created=d.get("created", ""),
                       cross_validation=d.get("cross_validation", {}),
                       training_metrics=d.get("training_metrics", {}), bootstrap=d.get("bootstrap", {}),
                       training=tr)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"{source} is not a valid LR-system file: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> LRSystem:
        """Read a system written by :meth:`save` (JSON; never pickle)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CalibrationError(f"LR-system file {p} does not exist") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"cannot read LR-system file {p}: {exc}") from exc
        return cls.from_dict(d, source=str(p))


def _content_sha256(d: dict[str, Any]) -> str:
    body = {k: v for k, v in d.items() if k != "content_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _lookup(d: dict[str, Any], path: str) -> float:
    cur: Any = d
    for part in str(path).split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ParameterError(f"the comparison has no field {path!r} (needed as this system's score)")
        cur = cur[part]
    if cur is None:
        raise ParameterError(f"the comparison's {path!r} is missing (None); no LR can be given")
    return float(cur)


# ---------------------------------------------------------------------------- fitting
def _folds(firearms: list[str], n_folds: int | None, rng: np.random.Generator) -> list[list[str]]:
    if n_folds is None:
        n_folds = len(firearms) if len(firearms) <= 40 else 10
    if not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= len(firearms):
        raise ParameterError(f"n_folds must be between 2 and the number of firearms ({len(firearms)}), "
                             f"got {n_folds!r}")
    perm = list(rng.permutation(len(firearms)))
    return [sorted(firearms[i] for i in perm[k::n_folds]) for k in range(n_folds)]


def cross_validate(scores: Any, same_source: Any, groups: Any, method: str = "logistic", *,
                   n_folds: int | None = None, add_misleading: int = 1, random_state: int = 0,
                   **params: Any) -> dict[str, Any]:
    """Firearm-level cross-validated log10 LRs.

    The firearms are split into folds (leave-one-firearm-out up to 40 firearms, else
    ``n_folds``).  For each fold the calibrator is fitted on the pairs of which
    *neither* firearm is in the fold, ELUB-bounded with bounds from its own training
    LLRs, and applied to every pair with at least one firearm in the fold.  A pair of
    two firearms in different folds is predicted twice; its LLR is the mean.

    Parameters
    ----------
    scores : array_like, shape (n,) or (n, k)
    same_source : array_like of bool, shape (n,)
    groups : sequence of (firearm_a, firearm_b)
    method : {"logistic", "kde", "isotonic"}
    n_folds : int, optional
    add_misleading : int
        For the per-fold ELUB bounds.
    random_state : int
    **params
        Calibrator parameters.

    Returns
    -------
    dict
        ``llr`` (bounded), ``llr_unbounded``, ``folds``, ``scheme``.

    References
    ----------
    Meuwly, Ramos & Haraksim (2017), section 3 (validation on data not used to fit).
    """
    x = as_scores(scores, allow_2d=method == "logistic")
    y = as_labels(same_source, x.shape[0])
    check_both_classes(y)
    g = as_groups(groups, x.shape[0])
    firearms = sorted({f for p in g for f in p})
    if len(firearms) < 2:
        raise CalibrationError("cross-validation by firearm needs at least 2 firearms")
    folds = _folds(firearms, n_folds, np.random.default_rng(random_state))
    ga = np.array([p[0] for p in g])
    gb = np.array([p[1] for p in g])
    tot = np.zeros(x.shape[0])
    tot_u = np.zeros(x.shape[0])
    cnt = np.zeros(x.shape[0])
    for fold in folds:
        inside = np.isin(ga, fold) | np.isin(gb, fold)
        train = ~(np.isin(ga, fold) | np.isin(gb, fold))
        if not inside.any():
            continue
        if y[train].sum() == 0 or (~y[train]).sum() == 0:
            raise CalibrationError(
                f"cannot leave firearm(s) {', '.join(fold)} out: the remaining pairs hold "
                f"{int(y[train].sum())} same-source and {int((~y[train]).sum())} different-source pairs. "
                "Cross-validation by firearm needs at least two firearms with two or more scans each.")
        cal = make_calibrator(method, **params).fit(x[train], y[train])
        lo, hi = elub_bounds(cal.llr(x[train]), y[train], add_misleading)
        u = cal.llr(x[inside])
        tot_u[inside] += u
        tot[inside] += np.clip(u, lo, hi)
        cnt[inside] += 1
    with np.errstate(invalid="ignore"):
        return {"llr": tot / cnt, "llr_unbounded": tot_u / cnt, "folds": folds,
                "scheme": ("leave-one-firearm-out" if all(len(f) == 1 for f in folds)
                           else f"{len(folds)}-fold by firearm")}


def _bootstrap(x: np.ndarray, y: np.ndarray, g: list[tuple[str, str]], method: str, params: dict[str, Any],
               n: int, rng: np.random.Generator) -> dict[str, Any]:
    firearms = sorted({f for p in g for f in p})
    index = {f: i for i, f in enumerate(firearms)}
    ia = np.array([index[p[0]] for p in g])
    ib = np.array([index[p[1]] for p in g])
    out: dict[str, Any] = {"n": 0, "unit": "firearm", "method": "percentile"}
    states: list[dict[str, Any]] = []
    rows: list[np.ndarray] = []
    grid = None
    if method != "logistic":
        grid = np.linspace(x.min(), x.max(), GRID_POINTS)
    tries = 0
    while len(states) + len(rows) < n and tries < 5 * n:
        tries += 1
        m = np.bincount(rng.integers(0, len(firearms), len(firearms)), minlength=len(firearms)).astype(float)
        w = np.where(ia == ib, m[ia], m[ia] * m[ib])
        if w[y].sum() == 0 or w[~y].sum() == 0:
            continue
        cal = make_calibrator(method, **params).fit(x, y, w)
        if grid is None:
            states.append(cal.state())
        else:
            rows.append(cal.llr(grid))
    if states:
        out["states"] = states
    if rows and grid is not None:
        out["grid"] = [round(float(v), 6) for v in grid]
        out["llr"] = [_round(np.clip(r, -50, 50), 3) for r in rows]
    out["n"] = len(states) + len(rows)
    return out


def _per_firearm(llr: np.ndarray, y: np.ndarray, g: list[tuple[str, str]]) -> list[dict[str, Any]]:
    firearms = sorted({f for p in g for f in p})
    ga = np.array([p[0] for p in g])
    gb = np.array([p[1] for p in g])
    rows = []
    for f in firearms:
        sel = (ga == f) | (gb == f)
        s1 = llr[sel & y]
        s0 = llr[sel & ~y]
        row = {"firearm": f, "n_same": int(s1.size), "n_different": int(s0.size),
               "misleading_same": int(np.sum(s1 < 0)), "misleading_different": int(np.sum(s0 > 0)),
               "min_llr_same": float(s1.min()) if s1.size else None,
               "max_llr_different": float(s0.max()) if s0.size else None}
        if s1.size and s0.size:
            row["cllr"] = metrics(llr[sel], y[sel]).cllr
        rows.append(row)
    return rows


def fit(scores: Any, same_source: Any, groups: Any, method: str = "logistic", *, name: str | None = None,
        score_column: Any = "score", reference: dict[str, Any] | None = None, strata: Sequence[str] | None = None,
        n_folds: int | None = None, bootstrap: int = 200, add_misleading: int = 1, random_state: int = 0,
        system_version: str = "1", store_training: bool = True, **params: Any) -> LRSystem:
    """Fit a score-to-LR system, cross-validated and bounded, ready to save.

    1. firearm-level cross-validation (:func:`cross_validate`) gives out-of-sample LLRs
       and the metrics of :class:`~ballistics.calibration.Metrics`, overall, per
       stratum and per firearm;
    2. the calibrator is fitted on all pairs;
    3. ELUB bounds (Vergeer et al. 2016) are set from the cross-validated LLRs;
    4. ``bootstrap`` firearm-bootstrap replicates are stored for :meth:`LRSystem.llr_interval`.

    Parameters
    ----------
    scores : array_like, shape (n,) or (n, k)
        Comparison scores (higher = more similar); several columns only for logistic.
    same_source : array_like of bool, shape (n,)
        Ground truth (True = same firearm).
    groups : sequence of (firearm_a, firearm_b), length n
        The firearms of every pair; evaluation leaves whole firearms out.
    method : {"logistic", "kde", "isotonic"}
        Calibrator (Brümmer & du Preez 2006 / Morrison 2013; Aitken & Lucy 2004 and
        Zadora et al. 2014; Zadrozny & Elkan 2002).
    name : str, optional
        System name (default ``"<method>-<first 8 of checksum>"``).
    score_column : str or list of str
        Which comparison field(s) the scores are (see :meth:`LRSystem.score_of`).
    reference : dict, optional
        Description of the reference population (stored as given, plus counts).
    strata : sequence of str, optional
        A label per pair (e.g. data set) for cross-validated metrics per stratum.
    n_folds : int, optional
        Firearm folds (default leave-one-firearm-out up to 40 firearms, else 10).
    bootstrap : int
        Firearm-bootstrap replicates for intervals (0 to skip), 0..5000.
    add_misleading : int
        For ELUB (Vergeer et al. 2016: 1).
    random_state : int
    system_version : str
    store_training : bool
        Keep the training data in the system (needed to re-check its checksum).
    **params
        Calibrator parameters (``C`` for logistic; ``bandwidth``, ``min_bandwidth`` for
        kde; ``add_misleading`` for isotonic).

    Returns
    -------
    LRSystem

    References
    ----------
    Meuwly, Ramos & Haraksim (2017); Vergeer et al. (2016); Brümmer & du Preez (2006).
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if not isinstance(bootstrap, (int, np.integer)) or not 0 <= bootstrap <= 5000:
        raise ParameterError(f"bootstrap must be an integer in [0, 5000], got {bootstrap!r}")
    x = as_scores(scores, allow_2d=method == "logistic")
    y = as_labels(same_source, x.shape[0])
    check_both_classes(y)
    g = as_groups(groups, x.shape[0])
    if strata is not None and len(strata) != x.shape[0]:
        raise ParameterError(f"strata must hold one label per score ({x.shape[0]}), got {len(strata)}")
    make_calibrator(method, **params)  # validate parameters before any work
    rng = np.random.default_rng(random_state)

    cv = cross_validate(x, y, g, method, n_folds=n_folds, add_misleading=add_misleading,
                        random_state=random_state, **params)
    cal = make_calibrator(method, **params).fit(x, y)
    elub = elub_bounds(cv["llr_unbounded"], y, add_misleading)
    cv_llr = cv["llr"]
    cv_out: dict[str, Any] = {
        "scheme": cv["scheme"], "folds": cv["folds"],
        "note": "each pair's LLR comes from calibrators fitted without its firearm(s); per-fold ELUB bounds",
        "metrics": metrics(cv_llr, y).to_dict(),
        "metrics_unbounded": metrics(cv["llr_unbounded"], y).to_dict(),
        "llr": _round(cv_llr), "llr_unbounded": _round(cv["llr_unbounded"]),
        "per_firearm": _per_firearm(cv_llr, y, g),
    }
    if strata is not None:
        st = np.asarray([str(s) for s in strata])
        per = {}
        for s in sorted(set(st.tolist())):
            sel = st == s
            if y[sel].any() and (~y[sel]).any():
                per[s] = metrics(cv_llr[sel], y[sel]).to_dict()
            else:
                per[s] = {"n_same": int(y[sel].sum()), "n_different": int((~y[sel]).sum()),
                          "note": "one class only: no Cllr"}
        cv_out["per_stratum"] = per
    train_llr = np.clip(cal.llr(x), *elub)
    tm = metrics(train_llr, y).to_dict()
    tm["note"] = "measured on the system's own training data: not a validation"
    csum = training_checksum(x, y, g)
    ref = dict(reference or {})
    ref.setdefault("n_pairs", int(x.shape[0]))
    ref.setdefault("n_same", int(y.sum()))
    ref.setdefault("n_different", int((~y).sum()))
    ref.setdefault("n_firearms", len({f for p in g for f in p}))
    boot = _bootstrap(x, y, g, method, cal.params, int(bootstrap), rng) if bootstrap else {}
    training = None
    if store_training:
        training = {"scores": x.tolist(), "same": [bool(v) for v in y], "groups": [list(p) for p in g]}
        if strata is not None:
            training["strata"] = [str(s) for s in strata]
    sysname = name or f"{method}-{csum[:8]}"
    log.info("fitted LR system %s: CV Cllr %.3f", sysname, cv_out["metrics"]["cllr"])
    return LRSystem(name=sysname, method=method, params=cal.params, state=cal.state(), elub=elub,
                    score_column=score_column, reference=ref, training_checksum=csum,
                    system_version=str(system_version), library_version=__version__,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    cross_validation=cv_out, training_metrics=tm, bootstrap=boot, training=training)


# ---------------------------------------------------------------------------- lookup
def list_systems() -> list[str]:
    """Names of the LR systems shipped with the package (``get_system(name)``)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.json") if "." not in p.stem)


def get_system(name_or_path: str | os.PathLike = "default") -> LRSystem:
    """A shipped LR system by name, or a lab's own system file by path.

    Parameters
    ----------
    name_or_path : str or path
        ``"default"`` (the shipped default, :data:`DEFAULT_SYSTEM`), the name of a
        shipped system (:func:`list_systems`), or the path of a JSON file written by
        :meth:`LRSystem.save`.

    Returns
    -------
    LRSystem
    """
    if isinstance(name_or_path, os.PathLike) or (isinstance(name_or_path, str) and (
            name_or_path.endswith(".json") or os.sep in name_or_path or "/" in name_or_path)):
        return LRSystem.load(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ParameterError(f"name_or_path must be a system name or a file path, got {name_or_path!r}")
    name = DEFAULT_SYSTEM if name_or_path == "default" else name_or_path
    p = DATA_DIR / f"{name}.json"
    if not p.exists():
        raise CalibrationError(f"no shipped LR system named {name!r} (shipped: {', '.join(list_systems()) or 'none'}); "
                               "pass the path of a system file to use a lab's own")
    return LRSystem.load(p)
