"""Fitting an LR system: firearm-level cross-validation, ELUB bounds, firearm bootstrap.

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
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import CalibrationError, ParameterError
from ._calibrators import METHODS, make_calibrator
from ._checks import as_groups, as_labels, as_scores, check_both_classes
from ._domain import Domain
from ._elub import elub_bounds
from ._interval import fit_replicates
from ._metrics import metrics
from ._model import LRSystem
from ._storage import training_checksum

__all__ = ["fit", "cross_validate", "held_to", "DEFAULT_BAR"]

log = logging.getLogger(__name__)


def _round(a: np.ndarray, nd: int = 4) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), nd) for v in np.asarray(a, float)]


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


#: The misleading-evidence bar a system is held to unless told otherwise (maximum rates).
DEFAULT_BAR: dict[str, float] = {"rmep": 0.05, "rmed": 0.02, "rmep_strong": 0.01, "rmed_strong": 0.01}


def _cv_report(cv: dict[str, Any], y: np.ndarray, g: list[tuple[str, str]],
               strata: Sequence[str] | None) -> dict[str, Any]:
    cv_llr = cv["llr"]
    out: dict[str, Any] = {
        "scheme": cv["scheme"], "folds": cv["folds"],
        "note": "cross-validated: each pair's LLR comes from calibrators fitted without its firearm(s); "
                "per-fold ELUB bounds",
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
        out["per_stratum"] = per
    return out


def held_to(bar: dict[str, float] | None, cv_metrics: dict[str, Any]) -> dict[str, Any]:
    """The bar a system is held to and whether its cross-validated metrics meet it.

    Parameters
    ----------
    bar : dict, optional
        ``{metric: maximum}`` (default :data:`DEFAULT_BAR`: rates of misleading evidence).
    cv_metrics : dict
        Cross-validated metrics (``Metrics.to_dict()``).

    Returns
    -------
    dict
        ``criteria`` (metric -> maximum), ``results`` (metric -> cross-validated value),
        ``met`` (metric -> bool), ``all_met``, ``note``.
    """
    crit = dict(DEFAULT_BAR if bar is None else bar)
    res = {k: cv_metrics.get(k) for k in crit}
    met = {k: bool(r is not None and float(r) <= float(crit[k])) for k, r in res.items()}
    return {"criteria": crit, "results": res, "met": met, "all_met": all(met.values()),
            "note": "cross-validated results (whole firearms left out) against maxima set before fitting"}


def fit(scores: Any, same_source: Any, groups: Any, method: str = "logistic", *, name: str | None = None,
        score_column: Any = "score", reference: dict[str, Any] | None = None, strata: Sequence[str] | None = None,
        n_folds: int | None = None, bootstrap: int = 200, add_misleading: int = 1, random_state: int = 0,
        system_version: str = "1", store_training: bool = True, domain: Domain | None = None,
        bar: dict[str, float] | None = None, **params: Any) -> LRSystem:
    """Fit a score-to-LR system, cross-validated and bounded, ready to save.

    1. firearm-level cross-validation (:func:`cross_validate`) gives out-of-sample LLRs
       and their metrics, overall, per stratum and per firearm;
    2. the calibrator is fitted on all pairs;
    3. ELUB bounds (Vergeer et al. 2016) are set from the cross-validated LLRs;
    4. ``bootstrap`` firearm-bootstrap refits, each with its own ELUB bounds, are stored
       for :meth:`LRSystem.interval`.

    Parameters
    ----------
    scores : array_like, shape (n,) or (n, k)
        Comparison scores (higher = more similar); several columns only for logistic.
    same_source : array_like of bool, shape (n,)
        Ground truth (True = same firearm).
    groups : sequence of (firearm_a, firearm_b), length n
        The firearms of every pair; evaluation leaves whole firearms out.
    method : {"logistic", "kde", "isotonic"}
        Calibrator (Brümmer & du Preez 2006; Aitken & Lucy 2004; Zadrozny & Elkan 2002).
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
        Firearm-bootstrap refits for intervals (0 to skip), 0..5000.
    add_misleading : int
        For ELUB (Vergeer et al. 2016: 1).
    random_state : int
    system_version : str
    store_training : bool
        Keep the training data in the system (needed to re-check its checksum).
    domain : Domain, optional
        The comparisons the system is validated for (no LR outside it by default).
    bar : dict, optional
        Maximum cross-validated rates the system is held to (:data:`DEFAULT_BAR`).
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
    cv_out = _cv_report(cv, y, g, strata)
    tm = metrics(np.clip(cal.llr(x), *elub), y).to_dict()
    tm["note"] = "measured on the system's own training data: not a validation"
    csum = training_checksum(x, y, g)
    ref = dict(reference or {})
    ref.setdefault("n_pairs", int(x.shape[0]))
    ref.setdefault("n_same", int(y.sum()))
    ref.setdefault("n_different", int((~y).sum()))
    ref.setdefault("n_firearms", len({f for p in g for f in p}))
    boot = fit_replicates(x, y, g, method, cal.params, int(bootstrap), rng, add_misleading) if bootstrap else {}
    training = None
    if store_training:
        training = {"scores": x.tolist(), "same": [bool(v) for v in y], "groups": [list(p) for p in g]}
        if strata is not None:
            training["strata"] = [str(s) for s in strata]
    sysname = name or f"{method}-{csum[:8]}"
    log.info("fitted LR system %s: cross-validated Cllr %.3f", sysname, cv_out["metrics"]["cllr"])
    return LRSystem(name=sysname, method=method, params=cal.params, state=cal.state(), elub=elub,
                    score_column=score_column, reference=ref, training_checksum=csum,
                    system_version=str(system_version), library_version=__version__,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    cross_validation=cv_out, training_metrics=tm, bootstrap=boot, training=training,
                    domain=domain, validation_bar=held_to(bar, cv_out["metrics"]))
