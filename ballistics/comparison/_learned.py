"""A learned score: logistic regression on everything a comparison computes.

The Congruent Matching Cells count is one number out of many that a comparison
produces.  This module turns a :class:`~ballistics.comparison.Comparison` (or its
``to_dict()``) into thirteen interpretable features -- CMC counts in both directions and
whether the two directions agree, the High-CMC outcome, the distribution of the cells'
correlations, the areal correlation after alignment, how tightly the cells'
registrations cluster and agree with the pair's registration in both directions, how
sharp the peak of the CMC-versus-rotation curve is, and the share of cells with enough
data (overlap) -- and scores them with a logistic regression on standardised features.
A model names the features it uses; the shipped one uses only evidence that both
directions of the comparison must agree on (consistency-checked counts,
``pose_agreement``, the registration cluster, the rotation peak, the overlap): a surface
texture shared by different firearms (seen on TopMatch scans of one conversion group)
raises one-direction counts and cell or areal correlations, not agreement between the
directions.

The model is frozen as data (``data/learned_score.json``: feature names, scaler means
and scales, coefficients, intercept, threshold; no pickle) and described in
``data/learned_score_card.md`` (training set with checksums, cross-validated metrics
with whole firearms left out, limits).  It is trained by
``benchmarks/train_learned_score.py``.

The score is the model's logit.  It was fitted with balanced class weights, so a logit
of 0 is the point where the model finds same-firearm and different-firearm equally
likely *with equal priors*; it is not a calibrated likelihood ratio.

References
----------
Song, J. (2013). Proposed "Congruent Matching Cells (CMC)" method for ballistic
identification and error rate estimation. *AFTE Journal* 45(2), 184-189.
Tong, M. et al. (2015). An improved algorithm of congruent matching cells (CMC) method
for firearm evidence identifications. *J. Res. NIST* 120, 102-112.
Chen, Z. et al. (2017). Convergence of the CMC method. *Forensic Sci. Int.* 278.
Hosmer, D. W. & Lemeshow, S. (2000). *Applied Logistic Regression*, 2nd ed., Wiley.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ..errors import ParameterError

__all__ = [
    "FEATURES",
    "LearnedModel",
    "contributions",
    "learned_score",
    "load_model",
    "score_features",
]

#: The features, in the model's order, with what each measures.
FEATURES: dict[str, str] = {
    "cmc_log": "log(1 + CMC count of the comparison)",
    "cmc_fraction_min": "smaller of the two directions' CMC counts / cells compared",
    "cmc_fraction_max": "larger of the two directions' CMC counts / cells compared",
    "directions_agree": "1 if both directions pass and their rotations agree (within the rotation threshold)",
    "high_passed": "share of directions passing the High-CMC rule (0, 0.5, 1)",
    "ncc_mean": "mean of the cells' best correlations (both directions)",
    "ncc_q90": "90th percentile of the cells' best correlations",
    "ncc_frac_above": "share of cells whose correlation exceeds the correlation threshold",
    "translation_cluster": "share of cells registered within the translation and rotation thresholds "
                           "of the median registration (mean of both directions)",
    "rotation_peak_sharpness": "(peak - mean of the rest) / (sd of the rest + 1) of the CMC-vs-rotation curve, "
                               "the rest being angles > 2 rotation thresholds from the peak",
    "correlation": "areal correlation of the aligned surfaces (0 when not computed)",
    "overlap": "cells with enough data / cells in the grid (mean of both directions)",
    "pose_agreement": "share of the cells of both directions whose registration agrees, within the rotation and "
                      "translation thresholds, with the pair's registration (a->b; b->a cells against its inverse)",
}

MODEL_FILE = "learned_score.json"


def _as_dict(result: Any) -> Mapping[str, Any]:
    if isinstance(result, Mapping):
        return result
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        d = to_dict()
        if isinstance(d, Mapping):
            return d
    raise ParameterError(
        f"learned_score needs a ballistics Comparison or its to_dict(), got {type(result).__name__}.")


def _num(v: Any, default: float = 0.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def score_features(result: Any) -> dict[str, float]:
    """The learned score's features of one comparison.

    Parameters
    ----------
    result : Comparison or dict
        A :class:`~ballistics.comparison.Comparison` or its ``to_dict()`` (needs
        ``cmc_count``, ``directions``; uses ``cells``, ``rotation_curve``,
        ``correlation``, ``params`` where present).

    Returns
    -------
    dict of str to float
        One value per name in :data:`FEATURES` (dimensionless; counts as fractions of
        the cells compared so that grids of other sizes stay comparable).

    Raises
    ------
    ParameterError
        Not a comparison, or one without a CMC count and per-direction results.
    """
    d = _as_dict(result)
    dirs = d.get("directions")
    if not isinstance(dirs, Mapping) or not dirs or "cmc_count" not in d:
        raise ParameterError("the comparison has no CMC count or per-direction results "
                             "(directions); compute it with ballistics.compare().")
    ds = [v for v in dirs.values() if isinstance(v, Mapping)]
    params = d.get("params") or {}
    grid = params.get("cell_grid") or (8, 8)
    n_grid = max(1, int(grid[0]) * int(grid[1]))
    rot_thr = _num(params.get("rotation_threshold_deg"), 6.0)
    tr_thr = _num(params.get("translation_threshold_px"), 20.0)
    corr_thr = _num(params.get("corr_threshold"), 0.5)

    n_cells = [max(0.0, _num(x.get("n_cells"))) for x in ds]
    frac = [_num(x.get("cmc_count")) / n if n > 0 else 0.0 for x, n in zip(ds, n_cells)]
    f: dict[str, float] = {}
    f["cmc_log"] = math.log1p(max(0.0, _num(d.get("cmc_count"))))
    f["cmc_fraction_min"] = min(frac) if frac else 0.0
    f["cmc_fraction_max"] = max(frac) if frac else 0.0
    agree = 0.0
    if len(ds) == 2 and all(bool(x.get("passed")) for x in ds):
        r1, r2 = _num(ds[0].get("rotation_deg")), _num(ds[1].get("rotation_deg"))
        diff = abs((r1 + r2 + 180.0) % 360.0 - 180.0)  # b->a rotation is minus a->b
        agree = 1.0 if diff <= rot_thr else 0.0
    f["directions_agree"] = agree
    f["high_passed"] = float(np.mean([bool(x.get("high_passed")) for x in ds])) if ds else 0.0

    cells = [c for c in (d.get("cells") or []) if isinstance(c, Mapping)]
    ncc = np.array([_num(c.get("ncc"), np.nan) for c in cells], dtype=float)
    ncc = ncc[np.isfinite(ncc)]
    f["ncc_mean"] = float(ncc.mean()) if ncc.size else 0.0
    f["ncc_q90"] = float(np.percentile(ncc, 90)) if ncc.size else 0.0
    f["ncc_frac_above"] = float((ncc > corr_thr).mean()) if ncc.size else 0.0

    clus = []
    for name in dirs:
        cs = [c for c in cells if c.get("direction") == name]
        if not cs:
            continue
        reg = np.array([[_num(c.get("rotation_deg")), _num(c.get("dy_px")), _num(c.get("dx_px"))] for c in cs])
        med = np.median(reg, axis=0)
        drot = np.abs((reg[:, 0] - med[0] + 180.0) % 360.0 - 180.0)
        near = (drot <= rot_thr) & (np.hypot(reg[:, 1] - med[1], reg[:, 2] - med[2]) <= tr_thr)
        clus.append(float(near.mean()))
    f["translation_cluster"] = float(np.mean(clus)) if clus else 0.0

    sharp = []
    for curve in (d.get("rotation_curve") or {}).values():
        arr = np.array([(_num(t), _num(c)) for t, c in curve], dtype=float) if curve else np.empty((0, 2))
        if len(arr) < 3:
            continue
        k = int(np.argmax(arr[:, 1]))
        dist = np.abs((arr[:, 0] - arr[k, 0] + 180.0) % 360.0 - 180.0)
        rest = arr[dist > 2 * rot_thr, 1]
        if rest.size:
            sharp.append(float((arr[k, 1] - rest.mean()) / (rest.std() + 1.0)))
    f["rotation_peak_sharpness"] = float(np.mean(sharp)) if sharp else 0.0
    f["correlation"] = _num(d.get("correlation"))
    f["overlap"] = float(np.mean(n_cells)) / n_grid if n_cells else 0.0
    f["pose_agreement"] = _pose_agreement(dirs, cells, rot_thr, tr_thr)
    return f


def _pose_agreement(dirs: Mapping[str, Any], cells: list[Mapping[str, Any]], rot_thr: float, tr_thr: float) -> float:
    """Share of the cells (both directions) registered at the pair's registration: a->b
    cells near ``(theta, t)`` of direction a->b, b->a cells near its inverse
    ``(-theta, -M(theta) t)`` (the convention of :class:`Comparison`)."""
    ab = dirs.get("a_to_b")
    if not isinstance(ab, Mapping) or not cells:
        return 0.0
    th = _num(ab.get("rotation_deg"), np.nan)
    t = np.array([_num(v, np.nan) for v in (ab.get("translation_px") or (np.nan, np.nan))], float)
    if not (math.isfinite(th) and t.size == 2 and np.all(np.isfinite(t))):
        return 0.0
    r = math.radians(th)
    inv = -(np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]) @ t)
    expect = {"a_to_b": (th, t), "b_to_a": (-th, inv)}
    hit = 0
    for c in cells:
        e = expect.get(str(c.get("direction")))
        if e is None or _num(c.get("ncc"), np.nan) != _num(c.get("ncc"), np.nan):
            continue
        drot = abs((_num(c.get("rotation_deg")) - e[0] + 180.0) % 360.0 - 180.0)
        if drot <= rot_thr and math.hypot(_num(c.get("dy_px")) - e[1][0], _num(c.get("dx_px")) - e[1][1]) <= tr_thr:
            hit += 1
    return hit / len(cells)


@dataclass(frozen=True)
class LearnedModel:
    """A frozen logistic regression on standardised features.

    Attributes
    ----------
    features : tuple of str
        Feature names, in order.
    mean, scale : numpy.ndarray
        Standardisation: ``z = (x - mean) / scale``.
    coef : numpy.ndarray
        Logistic-regression coefficients of the standardised features.
    intercept : float
        Intercept of the logit.
    threshold : float
        Logit at or above which a pair is called same-firearm.
    meta : dict
        Training set, checksums, cross-validated metrics, versions (see the model card).
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LearnedModel:
        """Build from the JSON structure written by ``benchmarks/train_learned_score.py``."""
        try:
            feats = tuple(str(n) for n in d["features"])
            mean = np.asarray(d["scaler"]["mean"], dtype=float)
            scale = np.asarray(d["scaler"]["scale"], dtype=float)
            coef = np.asarray(d["coef"], dtype=float)
            model = cls(feats, mean, scale, coef, float(d["intercept"]), float(d.get("threshold", 0.0)),
                        {k: v for k, v in d.items() if k not in ("scaler", "coef", "intercept")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"not a learned-score model: {exc}") from exc
        if not (len(feats) == mean.size == scale.size == coef.size) or np.any(scale <= 0):
            raise ParameterError("learned-score model: feature, scaler and coefficient sizes differ "
                                 "or a scale is not positive")
        unknown = set(feats) - set(FEATURES)
        if unknown:
            raise ParameterError(f"learned-score model uses unknown features {sorted(unknown)}")
        return model

    def contributions(self, features: Mapping[str, float]) -> dict[str, float]:
        """Each feature's additive contribution to the logit, plus ``"intercept"``."""
        x = np.array([float(features[n]) for n in self.features])
        parts = self.coef * (x - self.mean) / self.scale
        out = {n: float(p) for n, p in zip(self.features, parts)}
        out["intercept"] = self.intercept
        return out

    def logit(self, features: Mapping[str, float]) -> float:
        """The model's logit for one feature vector."""
        return float(sum(self.contributions(features).values()))


@lru_cache(maxsize=1)
def load_model() -> LearnedModel:
    """The frozen model shipped with the package (``ballistics/comparison/data``)."""
    try:
        text = resources.files("ballistics.comparison").joinpath("data", MODEL_FILE).read_text("utf-8")
    except (FileNotFoundError, OSError) as exc:  # pragma: no cover - packaging error
        raise ParameterError(f"the learned-score model {MODEL_FILE} is missing from the package") from exc
    return LearnedModel.from_dict(json.loads(text))


def learned_score(result: Any, model: LearnedModel | None = None) -> float:
    """Learned same-firearm score of a comparison: the logistic-regression logit.

    Parameters
    ----------
    result : Comparison or dict
        A comparison (or its ``to_dict()``).
    model : LearnedModel, optional
        Another frozen model (default: the one shipped, see ``learned_score_card.md``).

    Returns
    -------
    float
        Logit (dimensionless); at or above ``model.threshold`` (0 for the shipped model)
        the model calls the pair same-firearm.  Fitted with balanced class weights on
        Fadul (Ruger P95) and DFSC (Ruger SR9) pairs only; see the model card for its
        cross-validated error rates and limits.

    References
    ----------
    Hosmer & Lemeshow (2000), Applied Logistic Regression.
    """
    m = model if model is not None else load_model()
    return m.logit(score_features(result))


def contributions(result: Any, model: LearnedModel | None = None) -> dict[str, float]:
    """Each feature's contribution to the learned score's logit (for the report).

    Parameters
    ----------
    result : Comparison or dict
        A comparison (or its ``to_dict()``).
    model : LearnedModel, optional
        Default: the shipped model.

    Returns
    -------
    dict of str to float
        ``coef * (x - mean) / scale`` per feature and ``"intercept"``; they sum to
        :func:`learned_score`.
    """
    m = model if model is not None else load_model()
    return m.contributions(score_features(result))
