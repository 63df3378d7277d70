"""``ballistics validate TABLE.csv -o OUT``: validate a likelihood-ratio system on a lab's labelled scans."""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from . import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate", help="compare all pairs of labelled scans, fit and cross-validate an LR system, write a report",
        description="Validate a score-to-likelihood-ratio system on a lab's own scans (Meuwly et al. 2017): compare "
                    "every pair of the scans listed in a CSV of file,firearm (resumable), fit a calibrator with "
                    "whole firearms left out of every evaluation, check the performance characteristics against "
                    "validation criteria, and write OUT/validation_report.html, OUT/lr_system.json (the lab's "
                    "own system with the study's domain: compare(..., lr_system=\"OUT/lr_system.json\")) and "
                    "OUT/pairs_llr.csv. Exit status 0 when every criterion is met, 1 when "
                    "not, 2 on errors.")
    p.add_argument("table", help="CSV with columns file,firearm (one row per scan; relative names from --folder)")
    p.add_argument("-o", "--output", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--folder", default=None, help="folder of the scan files (default: the CSV's folder)")
    p.add_argument("--method", default="logistic", choices=["logistic", "kde", "isotonic"], help="calibrator")
    p.add_argument("--score-column", default="score",
                   help="comparison field used as score: score (default), cmc_count, correlation, method_counts.high")
    p.add_argument("--compare-method", default="convergence", choices=["convergence", "high", "original"],
                   help="CMC decision rule of the comparisons")
    p.add_argument("--preset", default="default", choices=["default", "cmcr"], help="comparison preset")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="comparison parameter override")
    p.add_argument("--criterion", action="append", default=[], metavar="METRIC=MAX",
                   help="validation criterion, e.g. --criterion cllr=0.2 --criterion rmed=0.01")
    p.add_argument("--workers", type=int, default=1, help="worker processes for the comparisons (default 1)")
    p.add_argument("--bootstrap", type=int, default=200, help="firearm-bootstrap replicates for LR intervals")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--extract", dest="extract", action="store_true", default=None, help="always extract breech faces")
    g.add_argument("--no-extract", dest="extract", action="store_false", help="inputs are already breech faces")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _kv(items: list[str], what: str, numeric: bool) -> dict[str, Any]:
    from ..errors import ParameterError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{what} needs KEY=VALUE, got {item!r}")
        try:
            v = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError):
            v = val.strip()
        if numeric and not isinstance(v, (int, float)):
            raise ParameterError(f"{what} {key} must be a number, got {val!r}")
        out[key.strip()] = v
    return out


def run(args: argparse.Namespace) -> int:
    from ..comparison._params import PRESETS
    from ..review import validation_report
    from ..workflow import validate

    params = PRESETS[args.preset].replace(**_kv(args.param, "--param", False))
    res = validate(args.table, args.output, folder=args.folder, method=args.method, score_column=args.score_column,
                   compare_method=args.compare_method, params=params, n_workers=args.workers, extract=args.extract,
                   criteria=_kv(args.criterion, "--criterion", True) or None, bootstrap=args.bootstrap)
    res.report = validation_report(res, res.output / "validation_report.html")
    m = res.system.cv_metrics
    out = {"passed": res.passed, "pairs": len(res.pairs), "cross_validated": {k: m.get(k) for k in (
        "n_same", "n_different", "cllr", "cllr_min", "cllr_cal", "eer", "rmep", "rmed")},
        "elub_log10": list(res.system.elub),
        "criteria": [{"metric": c["metric"], "max": c["max"], "result": c["result"], "passed": c["passed"]}
                     for c in res.criteria],
        "report": str(res.report) if res.report else None, "system": str(res.system_path),
        "use": f"compare(..., lr_system={str(res.system_path)!r})"}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(res.summary())
        emit({k: v for k, v in out.items() if k != "criteria"}, False)
        for c in res.criteria:
            val = c["result"] if c["result"] is None else round(c["result"], 4)
            print(f"  {'pass' if c['passed'] else 'FAIL'}  {c['label']}: {val} "
                  f"(criterion {c['criterion']})")
    return 0 if res.passed else 1
