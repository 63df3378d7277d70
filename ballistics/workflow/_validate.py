"""Validation of an LR system on a lab's own labelled scans (``ballistics validate``).

All pairs of the listed scans are compared (resumably, through
:func:`ballistics.batch.all_pairs`), a score-to-LR system is fitted with whole firearms
left out for every evaluation, its performance characteristics are checked against
criteria set in advance, and the system is saved with the domain of the study (the
scans' instrument family and pixel sizes, the comparison parameters).  The HTML report
is written by :func:`ballistics.review.validation_report` (the CLI does both).

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..calibration import Domain, LRSystem, evaluate_criteria, fit
from ..calibration._criteria import check_criteria
from ..calibration._model import lookup
from ..comparison import CompareParams
from ..comparison._params import PRESETS
from ..errors import ParameterError
from . import _inputs

__all__ = ["validate", "ValidationResult", "run_pairs", "LR_SYSTEM_FILE"]

log = logging.getLogger(__name__)

#: Name of the fitted system in a study folder: ``lr_system="study/lr_system.json"``.
LR_SYSTEM_FILE = "lr_system.json"


@dataclass
class ValidationResult:
    """Outcome of :func:`validate`.

    Attributes
    ----------
    system : LRSystem
        Fitted on all pairs, with the study's domain; ``cross_validation`` holds the
        firearm-left-out LLRs.
    pairs : list of dict
        Every pair: ``a``, ``b``, ``a_firearm``, ``b_firearm``, ``same``, ``family``
        (instrument family of the pair, ``"mixed"`` across families), ``score``,
        ``llr`` (cross-validated, bounded; None for failed comparisons), ``error``.
    criteria : list of dict
        Validation matrix rows: characteristic, metric, criterion, result, passed.
    passed : bool
        All criteria met.
    output : Path
        Folder with ``pairs/`` (batch run), ``lr_system.json`` and ``pairs_llr.csv``.
    report : Path or None
        The HTML report, once written (:func:`ballistics.review.validation_report`).
    parameters : dict
        Everything that defines the run.
    """

    system: LRSystem
    pairs: list[dict[str, Any]]
    criteria: list[dict[str, Any]]
    passed: bool
    output: Path
    report: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def system_path(self) -> Path:
        """The fitted system's file (pass it as ``lr_system=``)."""
        return self.output / LR_SYSTEM_FILE

    def summary(self) -> str:
        """One line: pairs, cross-validated metrics, criteria."""
        m = self.system.cv_metrics
        n_fail = sum(not c["passed"] for c in self.criteria)
        return (f"{len(self.pairs)} pairs ({m.get('n_same')} same-source, {m.get('n_different')} different-source); "
                f"cross-validated Cllr {m.get('cllr', float('nan')):.3f}, "
                f"Cllr_min {m.get('cllr_min', float('nan')):.3f}, EER {m.get('eer', float('nan')):.3f}; "
                + ("all validation criteria met" if self.passed else f"{n_fail} criteria not met"))


def _overrides(params: CompareParams | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, CompareParams):
        raise ParameterError(f"params must be a CompareParams, got {type(params).__name__}")
    base = PRESETS["default"].to_dict()
    return {k: v for k, v in params.to_dict().items() if base.get(k) != v}


def run_pairs(inputs: Sequence[Any], output: str | os.PathLike, *, method: str = "convergence",
              params: CompareParams | None = None, n_workers: int | None = 1) -> list[dict[str, Any]]:
    """Compare all pairs ``i < j`` resumably; one dict per pair.

    Parameters
    ----------
    inputs : sequence of path or Scan
    output : path
        Folder of the batch run (finished tiles are skipped on rerun).
    method : str
        CMC decision rule.
    params : CompareParams, optional
        Comparison parameters (default: the default preset).
    n_workers : int, optional
        Local worker processes.

    Returns
    -------
    list of dict
        ``i``, ``j``, ``a_sha256``, ``b_sha256``, ``score``, ``cmc_count``,
        ``correlation``, ``error``, ``params``, ``library_version`` and ``result``.
    """
    from .. import batch

    batch.all_pairs(list(inputs), output, params if params is not None else "default", method=method,
                    n_workers=n_workers)
    rows = []
    for r in batch.read_results(output, require_complete=True).to_pylist():
        res = json.loads(r["result_json"]) if r.get("result_json") else None
        rows.append({"i": int(r["i"]), "j": int(r["j"]), "a_sha256": r["a_sha256"], "b_sha256": r["b_sha256"],
                     "score": r["score"], "cmc_count": r["cmc_count"], "correlation": r["correlation"],
                     "error": r["error"], "params": json.loads(r["params_json"]) if r.get("params_json") else {},
                     "library_version": r.get("library_version"), "result": res})
    return rows


def _score(row: dict[str, Any], column: Any) -> Any:
    vals = []
    for c in column if isinstance(column, (list, tuple)) else [column]:
        if c in row and row[c] is not None and not isinstance(row[c], dict):
            vals.append(float(row[c]))
        elif row.get("result"):
            try:
                vals.append(lookup(row["result"], c))
            except ParameterError:
                return None
        else:
            return None
    return vals[0] if len(vals) == 1 else vals


def _domain(domains: Sequence[dict[str, Any]], compare_params: dict[str, Any], method: str) -> Domain:
    fams = Counter(d["family"] for d in domains)
    family = next(iter(fams)) if len(fams) == 1 else "mixed"
    px = [d["pixel_size_m"] for d in domains]
    bps = {tuple(d["bandpass_m"]) for d in domains if d.get("bandpass_m")}
    proc = {"bandpass_m": list(next(iter(bps))) if len(bps) == 1 else None,
            "description": "as extracted by ballistics" if bps else "processed before the study (as given)"}
    return Domain.make(family, (min(px), max(px)), {**compare_params, "method": method}, proc,
                       f"the lab's own study: {sum(fams.values())} {family} scans")


def _pairs(rows: list[dict[str, Any]], items: Sequence[dict[str, str]], domains: Sequence[dict[str, Any]],
           score_column: Any) -> list[dict[str, Any]]:
    pairs = []
    for r in rows:
        a, b = items[r["i"]], items[r["j"]]
        fa, fb = domains[r["i"]]["family"], domains[r["j"]]["family"]
        s = None if r["error"] else _score(r, score_column)
        pairs.append({"a": a["file"], "b": b["file"], "a_firearm": a["firearm"], "b_firearm": b["firearm"],
                      "same": a["firearm"] == b["firearm"], "family": fa if fa == fb else "mixed", "score": s,
                      "cmc_count": r["cmc_count"], "correlation": r["correlation"], "a_sha256": r["a_sha256"],
                      "b_sha256": r["b_sha256"],
                      "error": r["error"] or (None if s is not None else f"no {score_column!r} in the result"),
                      "llr": None})
    return pairs


def validate(table: str | os.PathLike, output: str | os.PathLike, *, folder: str | os.PathLike | None = None,
             method: str = "logistic", score_column: Any = "score", compare_method: str = "convergence",
             params: CompareParams | None = None, n_workers: int | None = 1, extract: bool | None = None,
             criteria: dict[str, float] | None = None, name: str | None = None, bootstrap: int = 200,
             **calibrator_params: Any) -> ValidationResult:
    """Validate a score-to-LR system on a lab's labelled scans and save it with its domain.

    Parameters
    ----------
    table : path
        CSV with ``file`` and ``firearm`` columns (one row per scan).
    output : path
        Folder for the run (created; rerunning resumes the comparisons).
    folder : path, optional
        Where the table's relative file names are (default: the table's folder).
    method : {"logistic", "kde", "isotonic"}
        Calibrator.
    score_column : str
        Comparison field used as score (``"score"``, ``"cmc_count"``, ...).
    compare_method : str
        CMC decision rule of the comparisons.
    params : CompareParams, optional
        Comparison parameters (default: the default preset); recorded in the domain.
    n_workers : int, optional
        Worker processes for the comparisons.
    extract : bool, optional
        Extract breech faces first (default: only scans that look raw).
    criteria : dict, optional
        ``{metric: maximum}`` overrides of the default criteria; set them before
        looking at the results.  Also the bar stored with the system.
    name : str, optional
        Name of the fitted system.
    bootstrap : int
        Firearm-bootstrap refits for LR intervals.
    **calibrator_params
        Passed to the calibrator (e.g. ``C=1.0``).

    Returns
    -------
    ValidationResult
        ``result.system_path`` is the system file to pass as ``lr_system=``.

    References
    ----------
    Meuwly, Ramos & Haraksim (2017); Vergeer et al. (2016) (ELUB).
    """
    out = Path(output)
    items = _inputs.read_table(table, folder)
    _inputs.check_design(items)
    check_criteria(criteria)
    _overrides(params)
    out.mkdir(parents=True, exist_ok=True)
    inputs, domains = _inputs.prepare_inputs(items, extract)
    rows = run_pairs(inputs, out / "pairs", method=compare_method, params=params, n_workers=n_workers)
    pairs = _pairs(rows, items, domains, score_column)
    ok = [p for p in pairs if p["error"] is None]
    if len(ok) < len(pairs):
        log.warning("%d of %d pairs could not be compared; they are listed in the report", len(pairs) - len(ok),
                    len(pairs))
    tsha = hashlib.sha256(Path(table).read_bytes()).hexdigest()
    # the parameters as the comparisons themselves recorded them (what compare() checks)
    recorded = next((r["result"].get("params") for r in rows if r.get("result")), None)
    compare_params = recorded or (rows[0]["params"] if rows else {})
    reference = {
        "description": f"validation set {Path(table).name}: {len(items)} scans of "
                       f"{len({i['firearm'] for i in items})} firearms",
        "table": Path(table).name, "table_sha256": tsha,
        "scans": [{"file": Path(i["file"]).name, "firearm": i["firearm"], "family": d["family"]}
                  for i, d in zip(items, domains)],
        "compare_method": compare_method, "compare_params": compare_params,
        "score_library_version": rows[0].get("library_version") if rows else None,
    }
    bar = {k: v for k, v in (criteria or {}).items() if k.startswith("rme")} or None
    system = fit([p["score"] for p in ok], [p["same"] for p in ok], [(p["a_firearm"], p["b_firearm"]) for p in ok],
                 method, name=name or f"validation-{method}-{tsha[:8]}", score_column=score_column,
                 reference=reference, strata=[p["family"] for p in ok], bootstrap=bootstrap,
                 domain=_domain(domains, compare_params, compare_method), bar=bar, **calibrator_params)
    for p, v in zip(ok, system.cross_validation["llr"]):
        p["llr"] = v
    crit = evaluate_criteria(system, criteria)
    system.save(out / LR_SYSTEM_FILE)
    with open(out / "pairs_llr.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["a", "b", "a_firearm", "b_firearm", "same", "family", "score", "llr",
                                           "error", "a_sha256", "b_sha256"], extrasaction="ignore")
        w.writeheader()
        w.writerows(pairs)
    parameters = {"table": str(table), "table_sha256": tsha, "folder": str(folder) if folder else None,
                  "method": method, "calibrator_params": system.params, "score_column": score_column,
                  "compare": compare_params, "criteria": {c["metric"]: c["max"] for c in crit},
                  "bootstrap": bootstrap, "library_version": __version__}
    res = ValidationResult(system=system, pairs=pairs, criteria=crit, passed=all(c["passed"] for c in crit),
                           output=out, parameters=parameters)
    log.info("%s", res.summary())
    return res
