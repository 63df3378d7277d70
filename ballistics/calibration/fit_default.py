"""Fit the LR system shipped with the package from the engine's own scores.

Run::

    python -m ballistics.calibration.fit_default --pairs /work/allpairs/pairs_default.jsonl \\
        [--score-column learned_score] [--method logistic] [--name learned-fadul-dfsc-v1] [--version 1]

Input: JSON lines, one per compared pair, with ``set``, ``a_file``, ``b_file``,
``a_firearm``, ``b_firearm``, ``same``, ``error`` and ``result`` (a
:meth:`~ballistics.comparison.Comparison.to_dict`).  Pairs with an error are left out
and counted.  The system is fitted with :func:`ballistics.calibration.fit` (firearm-
level cross-validation over every firearm of every set; metrics per set), and written
to ``ballistics/calibration/data/<name>.json`` together with
``<name>.validation.json`` (cross-validated metrics overall, per set and per firearm,
the other calibrators' cross-validated metrics for comparison, the input checksum) and
small PNG figures ``<name>.<figure>.png`` (Tippett, ECE, PAV, LR curve, score
densities) of the cross-validated LLRs.

Rerun it on another score column (e.g. a learned score stored in ``result``) with
``--score-column`` and a new ``--name``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ._system import DATA_DIR, _lookup, fit

log = logging.getLogger(__name__)

REFERENCE_DESCRIPTION = {
    "fadul": "Fadul et al. (2011): processed breech faces of Ruger P95 pistols with 10 consecutively "
             "manufactured slides (NanoFocus confocal, CSAFE/cmcR processing, 6.25 um), CC-BY 4.0",
    "dfsc": "DFSC/Baldwin study: processed breech faces of Ruger SR9 pistols (Cadre TopMatch, ~7.37 um)",
}


def read_pairs(paths: Sequence[str | Path], score_column: str) -> tuple[list[dict[str, Any]], int, str]:
    """Pairs with a usable score, the number of pairs left out, and the SHA-256 of the inputs.

    A pair listed in several files (by its two file names) is taken once, from the first.
    """
    h = hashlib.sha256()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    dropped = 0
    for p in paths:
        data = Path(p).read_bytes()
        h.update(data)
        for k, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ParameterError(f"{p}, line {k}: not JSON ({exc})") from exc
            key = (str(d["a_file"]), str(d["b_file"]))
            if key in seen or key[::-1] in seen:
                continue  # the same pair from another file: the first one counts
            seen.add(key)
            if d.get("error") or not d.get("result"):
                dropped += 1
                continue
            try:
                s = _lookup(d["result"], score_column)
            except ParameterError:
                dropped += 1
                continue
            rows.append({"set": d.get("set", ""), "a": d["a_file"], "b": d["b_file"], "a_firearm": d["a_firearm"],
                         "b_firearm": d["b_firearm"], "same": bool(d["same"]), "score": s,
                         "params": d["result"].get("params", {}),
                         "library_version": d["result"].get("library_version"),
                         "method": d["result"].get("method")})
    return rows, dropped, h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ballistics.calibration.fit_default",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", nargs="+", required=True, help="JSON-lines file(s) of compared pairs")
    ap.add_argument("--score-column", default="score", help="field of the result used as score (dotted paths ok)")
    ap.add_argument("--method", default="logistic", choices=["logistic", "kde", "isotonic"])
    ap.add_argument("--name", default="learned-fadul-dfsc-v1")
    ap.add_argument("--version", default="1", help="system version")
    ap.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the package's data folder)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--dpi", type=int, default=60, help="resolution of the PNG figures (kept small)")
    ap.add_argument("--note", default="",
                    help="free text stored in the reference description (how the pairs were made)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    rows, dropped, digest = read_pairs(args.pairs, args.score_column)
    sets = Counter(r["set"] for r in rows)
    x = np.array([r["score"] for r in rows])
    y = np.array([r["same"] for r in rows])
    # firearm labels are only unique within a set: prefix them with it
    g = [(f"{r['set']}:{r['a_firearm']}", f"{r['set']}:{r['b_firearm']}") for r in rows]
    strata = [r["set"] for r in rows]
    scans = {s: len({f for r in rows if r["set"] == s for f in (r["a"], r["b"])}) for s in sets}
    firearms = {s: len({f for r in rows if r["set"] == s for f in (r["a_firearm"], r["b_firearm"])}) for s in sets}
    reference = {
        "description": "; ".join(f"{REFERENCE_DESCRIPTION.get(s, s)} -- {scans[s]} scans, {firearms[s]} firearms, "
                                 f"{sets[s]} pairs" for s in sorted(sets))
                       + f". All pairs within each set, compared with ballistics.compare "
                         f"(method {rows[0]['method']!r}, default parameters).",
        "sets": {s: {"scans": scans[s], "firearms": firearms[s], "pairs": sets[s],
                     "same": int(sum(r["same"] for r in rows if r["set"] == s))} for s in sorted(sets)},
        "pairs_files": [str(p) for p in args.pairs], "pairs_sha256": digest, "pairs_left_out": dropped,
        "compare_method": rows[0]["method"], "compare_params": rows[0]["params"],
        "score_library_version": rows[0]["library_version"],
    }
    if args.note:
        reference["note"] = args.note
    system = fit(x, y, g, args.method, name=args.name, score_column=args.score_column, reference=reference,
                 strata=strata, bootstrap=args.bootstrap, system_version=args.version)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    system.save(out / f"{args.name}.json")

    alternatives: dict[str, dict[str, Any]] = {}
    for m in ("logistic", "kde", "isotonic"):
        if m == args.method:
            continue
        alt = fit(x, y, g, m, strata=strata, bootstrap=0, store_training=False)
        alternatives[m] = {"metrics": alt.cv_metrics, "per_set": alt.cross_validation.get("per_stratum"),
                           "elub": list(alt.elub)}
    cv: dict[str, Any] = system.cross_validation
    validation = {
        "system": args.name, "system_version": system.system_version, "library_version": system.library_version,
        "training_checksum": system.training_checksum, "score_column": args.score_column, "method": args.method,
        "scheme": cv["scheme"], "elub": list(system.elub), "cross_validated": cv["metrics"],
        "cross_validated_per_set": cv.get("per_stratum"), "per_firearm": cv["per_firearm"],
        "training_data_metrics_not_a_validation": system.training_metrics,
        "other_calibrators_cross_validated": alternatives, "reference": reference,
    }
    (out / f"{args.name}.validation.json").write_text(json.dumps(validation, indent=1, default=float) + "\n")

    from ..review import _plot_calibration as P

    llr = np.asarray(cv["llr"], float)
    figs = {"tippett": P.tippett(llr, y, elub=system.elub, title=f"{args.name}: Tippett (cross-validated)"),
            "ece": P.ece(llr, y, title=f"{args.name}: ECE (cross-validated)"),
            "pav": P.pav(llr, y, title=f"{args.name}: PAV (cross-validated)"),
            "lr_curve": P.lr_curve(system),
            "densities": P.score_densities(x, y, system, score_label=args.score_column)}
    for k, fig in figs.items():
        (out / f"{args.name}.{k}.png").write_bytes(P.figure_to_png(fig, dpi=args.dpi))
    m = cv["metrics"]
    print(system.summary())
    print(f"cross-validated ({cv['scheme']}): Cllr {m['cllr']:.3f}, Cllr_min {m['cllr_min']:.3f}, "
          f"Cllr_cal {m['cllr_cal']:.3f}, EER {m['eer']:.3f}, RMEP {m['rmep']:.3f}, RMED {m['rmed']:.3f}")
    for s, mm in (cv.get("per_stratum") or {}).items():
        print(f"  {s}: " + ", ".join(f"{k} {mm[k]:.3f}" if isinstance(mm.get(k), float) else f"{k} {mm.get(k)}"
                                    for k in ("n_same", "n_different", "cllr", "cllr_min", "cllr_cal", "eer")
                                    if k in mm))
    for k, a in alternatives.items():
        print(f"  alternative {k}: CV Cllr {a['metrics']['cllr']:.3f}, Cllr_min {a['metrics']['cllr_min']:.3f}")
    if dropped:
        print(f"{dropped} pairs left out (comparison error or no {args.score_column!r})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
