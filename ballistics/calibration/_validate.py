"""Validation of an LR system on a lab's own labelled scans (``ballistics validate``).

All pairs of the listed scans are compared (resumably, through
:func:`ballistics.batch.all_pairs`), a score-to-LR system is fitted with whole
firearms left out for every evaluation, its performance characteristics are checked
against validation criteria set in advance, and a self-contained HTML report is
written.

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153 (validation matrix: performance characteristic, metric,
criterion, result, decision).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ParameterError, ScanReadError
from ._errors import CalibrationError
from ._system import LRSystem, _lookup, fit

__all__ = ["validate", "ValidationResult", "DEFAULT_CRITERIA", "evaluate_criteria", "read_table", "run_pairs"]

log = logging.getLogger(__name__)

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


@dataclass
class ValidationResult:
    """Outcome of :func:`validate`.

    Attributes
    ----------
    system : LRSystem
        Fitted on all pairs; its ``cross_validation`` holds the firearm-left-out LLRs.
    pairs : list of dict
        Every pair: ``a``, ``b``, ``a_firearm``, ``b_firearm``, ``same``, ``score``,
        ``llr`` (cross-validated, bounded; None for failed comparisons), ``error``.
    criteria : list of dict
        Validation matrix rows: characteristic, metric, criterion, result, passed.
    passed : bool
        All criteria met.
    output : Path
        Folder with ``pairs/`` (batch run), ``lr_system.json``, ``pairs_llr.csv``
        and ``validation_report.html``.
    report : Path or None
    parameters : dict
        Everything that defines the run (table and its SHA-256, comparison parameters,
        calibrator, criteria, library version).
    """

    system: LRSystem
    pairs: list[dict[str, Any]]
    criteria: list[dict[str, Any]]
    passed: bool
    output: Path
    report: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        m = self.system.cv_metrics
        n_fail = sum(not c["passed"] for c in self.criteria)
        return (f"{len(self.pairs)} pairs ({m.get('n_same')} same-source, {m.get('n_different')} different-source); "
                f"cross-validated Cllr {m.get('cllr', float('nan')):.3f}, "
                f"Cllr_min {m.get('cllr_min', float('nan')):.3f}, "
                f"EER {m.get('eer', float('nan')):.3f}; "
                + ("all validation criteria met" if self.passed else f"{n_fail} criteria not met"))


def read_table(table: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Read a CSV of ``file,firearm`` rows (extra columns ignored) into absolute paths.

    Parameters
    ----------
    table : path
        CSV with a header holding ``file`` and ``firearm`` columns.
    folder : path, optional
        Where relative file names are (default: the CSV's folder).

    Returns
    -------
    list of dict
        ``{"file": absolute path, "firearm": str}`` in table order.
    """
    p = Path(table)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ParameterError(f"table {p} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read table {p}: {exc}") from exc
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise ParameterError(f"table {p} holds no rows (expected a header 'file,firearm' and one row per scan)")
    cols = {c.strip().lower(): c for c in rows[0].keys() if c}
    if "file" not in cols or "firearm" not in cols:
        raise ParameterError(f"table {p} needs columns 'file' and 'firearm', got {list(rows[0].keys())}")
    base = Path(folder) if folder is not None else p.parent
    out = []
    seen = set()
    for k, r in enumerate(rows, start=2):
        f = (r[cols["file"]] or "").strip()
        fa = (r[cols["firearm"]] or "").strip()
        if not f or not fa:
            raise ParameterError(f"{p}, line {k}: empty file or firearm")
        path = Path(f) if Path(f).is_absolute() else base / f
        if not path.exists():
            raise ScanReadError(f"{p}, line {k}: scan file {path} does not exist (relative names are read "
                                f"from {base}; pass folder= / --folder to change that)")
        if str(path.resolve()) in seen:
            raise ParameterError(f"{p}, line {k}: {path} is listed twice")
        seen.add(str(path.resolve()))
        out.append({"file": str(path), "firearm": fa})
    return out


def _check_design(items: Sequence[dict[str, str]]) -> None:
    from collections import Counter

    per = Counter(it["firearm"] for it in items)
    repeated = [f for f, n in per.items() if n >= 2]
    if len(per) < 3 or len(repeated) < 2:
        raise CalibrationError(
            f"a validation needs scans of at least 3 firearms, at least 2 of them with 2 or more scans "
            f"(got {len(per)} firearms, {len(repeated)} with repeats: {dict(per)}); otherwise no firearm can be "
            "left out with both kinds of pairs remaining to fit on")


def _prepare_inputs(items: Sequence[dict[str, str]], extract: bool | None) -> list[Any]:
    """Paths of extracted surfaces as they are; raw scans extracted here (passed as Scans)."""
    from ..cli._compare import looks_raw
    from ..reading import read_scan

    out: list[Any] = []
    for it in items:
        scan = read_scan(it["file"])
        do = looks_raw(scan) if extract is None else extract
        if do:
            from ..features import extract_breech_face
            log.info("extracting the breech face of %s", it["file"])
            out.append(extract_breech_face(scan))
        else:
            out.append(it["file"])
    return out


def run_pairs(inputs: Sequence[Any], output: str | os.PathLike, *, method: str = "convergence",
              preset: str = "default", params: dict[str, Any] | None = None,
              n_workers: int | None = 1) -> list[dict[str, Any]]:
    """Compare all pairs ``i < j`` resumably; one dict per pair (``i``, ``j``, score columns, ``result``).

    The swappable back end of :func:`validate`: today :func:`ballistics.batch.all_pairs`
    (Parquet tiles in ``output``, finished tiles skipped on rerun) and
    :func:`ballistics.batch.read_results`.

    Parameters
    ----------
    inputs : sequence of path or Scan
    output : path
        Folder of the batch run.
    method, preset, params :
        As :func:`ballistics.comparison.compare`.
    n_workers : int, optional
        Local worker processes.

    Returns
    -------
    list of dict
        Keys ``i``, ``j``, ``a_sha256``, ``b_sha256``, ``score``, ``cmc_count``,
        ``correlation``, ``error``, ``params`` and ``result`` (the comparison's
        ``to_dict()``, or None).
    """
    from .. import batch

    batch.all_pairs(list(inputs), output, method=method, preset=preset, params=params, n_workers=n_workers)
    table = batch.read_results(output, require_complete=True)
    rows = []
    for r in table.to_pylist():
        res = json.loads(r["result_json"]) if r.get("result_json") else None
        rows.append({"i": int(r["i"]), "j": int(r["j"]), "a_sha256": r["a_sha256"], "b_sha256": r["b_sha256"],
                     "score": r["score"], "cmc_count": r["cmc_count"], "correlation": r["correlation"],
                     "error": r["error"], "params": json.loads(r["params_json"]) if r.get("params_json") else {},
                     "library_version": r.get("library_version"), "result": res})
    return rows


def _score(row: dict[str, Any], column: Any) -> float | None:
    cols = column if isinstance(column, (list, tuple)) else [column]
    vals = []
    for c in cols:
        if c in row and row[c] is not None and not isinstance(row[c], dict):
            vals.append(float(row[c]))
        elif row.get("result"):
            try:
                vals.append(_lookup(row["result"], c))
            except ParameterError:
                return None
        else:
            return None
    return vals[0] if len(vals) == 1 else vals  # type: ignore[return-value]


def evaluate_criteria(system: LRSystem, criteria: dict[str, float] | Sequence[dict[str, Any]] | None = None
                      ) -> list[dict[str, Any]]:
    """Validation matrix rows of a system's cross-validated metrics (Meuwly et al. 2017, table 1).

    Parameters
    ----------
    system : LRSystem
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
    m: dict[str, Any] = dict(system.cv_metrics)
    if system.training_metrics:
        m["cv_minus_training_cllr"] = m.get("cllr", math.nan) - system.training_metrics.get("cllr", math.nan)
    out = []
    for r in rows:
        got = m.get(r["metric"])
        ok = got is not None and math.isfinite(got) and got <= r["max"]
        out.append({**r, "criterion": f"<= {r['max']:g}", "result": got, "passed": bool(ok)})
    return out


def validate(table: str | os.PathLike, output: str | os.PathLike, *, folder: str | os.PathLike | None = None,
             method: str = "logistic", score_column: Any = "score", compare_method: str = "convergence",
             preset: str = "default", params: dict[str, Any] | None = None, n_workers: int | None = 1,
             extract: bool | None = None, criteria: dict[str, float] | None = None, name: str | None = None,
             bootstrap: int = 200, report: bool = True, **calibrator_params: Any) -> ValidationResult:
    """Validate a score-to-LR system on a lab's labelled scans.

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
        Comparison field used as score (``"score"``, ``"cmc_count"``,
        ``"method_counts.high"``, ...).
    compare_method, preset, params :
        Passed to :func:`ballistics.comparison.compare`.
    n_workers : int, optional
        Worker processes for the comparisons.
    extract : bool, optional
        Extract breech faces first (default: only scans that look raw).
    criteria : dict, optional
        ``{metric: maximum}`` overrides of :data:`DEFAULT_CRITERIA`; set them before
        looking at the results.
    name : str, optional
        Name of the fitted system.
    bootstrap : int
        Firearm-bootstrap replicates for LR intervals.
    report : bool
        Write ``validation_report.html``.
    **calibrator_params
        Passed to the calibrator (e.g. ``C=1.0``).

    Returns
    -------
    ValidationResult

    References
    ----------
    Meuwly, Ramos & Haraksim (2017); Brümmer & du Preez (2006) (Cllr); Vergeer et al.
    (2016) (ELUB); Ramos & Gonzalez-Rodriguez (2013) (ECE).
    """
    out = Path(output)
    items = read_table(table, folder)
    _check_design(items)
    if criteria is not None:
        evaluate_criteria(LRSystem("check", "logistic", {"C": 1.0}, {"coef": [0.0], "intercept": 0.0}, (0, 0)),
                          criteria)
    out.mkdir(parents=True, exist_ok=True)
    inputs = _prepare_inputs(items, extract)
    rows = run_pairs(inputs, out / "pairs", method=compare_method, preset=preset, params=params, n_workers=n_workers)
    pairs: list[dict[str, Any]] = []
    for r in rows:
        a, b = items[r["i"]], items[r["j"]]
        s = None if r["error"] else _score(r, score_column)
        pairs.append({"a": a["file"], "b": b["file"], "a_firearm": a["firearm"], "b_firearm": b["firearm"],
                      "same": a["firearm"] == b["firearm"], "score": s, "cmc_count": r["cmc_count"],
                      "correlation": r["correlation"], "a_sha256": r["a_sha256"], "b_sha256": r["b_sha256"],
                      "error": r["error"] or (None if s is not None else f"no {score_column!r} in the result"),
                      "llr": None})
    ok = [p for p in pairs if p["error"] is None]
    if len(ok) < len(pairs):
        log.warning("%d of %d pairs could not be compared; they are listed in the report", len(pairs) - len(ok),
                    len(pairs))
    tsha = hashlib.sha256(Path(table).read_bytes()).hexdigest()
    compare_params = rows[0]["params"] if rows else {}
    reference = {
        "description": f"validation set {Path(table).name}: {len(items)} scans of "
                       f"{len({i['firearm'] for i in items})} firearms",
        "table": str(table), "table_sha256": tsha,
        "scans": [{"file": i["file"], "firearm": i["firearm"]} for i in items],
        "compare_method": compare_method, "compare_params": compare_params,
        "score_library_version": rows[0].get("library_version") if rows else None,
    }
    system = fit([p["score"] for p in ok], [p["same"] for p in ok], [(p["a_firearm"], p["b_firearm"]) for p in ok],
                 method, name=name or f"validation-{method}-{tsha[:8]}", score_column=score_column,
                 reference=reference, bootstrap=bootstrap, **calibrator_params)
    for p, v in zip(ok, system.cross_validation["llr"]):
        p["llr"] = v
    crit = evaluate_criteria(system, criteria)
    system.save(out / "lr_system.json")
    with open(out / "pairs_llr.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["a", "b", "a_firearm", "b_firearm", "same", "score", "llr", "error",
                                           "a_sha256", "b_sha256"], extrasaction="ignore")
        w.writeheader()
        w.writerows(pairs)
    parameters = {"table": str(table), "table_sha256": tsha, "folder": str(folder) if folder else None,
                  "method": method, "calibrator_params": system.params, "score_column": score_column,
                  "compare": compare_params, "criteria": {c["metric"]: c["max"] for c in crit},
                  "bootstrap": bootstrap, "library_version": __version__}
    res = ValidationResult(system=system, pairs=pairs, criteria=crit, passed=all(c["passed"] for c in crit),
                           output=out, parameters=parameters)
    if report:
        from ..review.validation_report import validation_report
        res.report = validation_report(res, out / "validation_report.html")
    log.info("%s", res.summary())
    return res
