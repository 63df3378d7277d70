"""Fit the LR systems shipped with the package, one per instrument family (developer tool).

One command refits every shipped system from the stored training data::

    python tools/fit_lr_system.py --from-system ballistics/calibration/data/learned-*-v1.json

or from freshly compared pairs (after a change of the comparison score)::

    python tools/fit_lr_system.py --pairs pairs.jsonl [--version 2]

``--pairs`` takes JSON lines, one per compared pair, with ``set`` (``fadul``,
``dfsc``...), ``a_file``, ``b_file``, ``a_firearm``, ``b_firearm``, ``same``, ``error``
and ``result`` (a ``Comparison.to_dict()``; benchmarks/compare_labelled_pairs.py writes
them).  ``--from-system`` reads the training data stored in an existing system file.
Each data set maps to an instrument family (:data:`SETS`); one system per family is
fitted with :func:`ballistics.calibration.fit` (firearm-level cross-validation, ELUB
bounds, firearm-bootstrap refits with their own bounds), given its
:class:`~ballistics.calibration.Domain`, and written to ``ballistics/calibration/data/``
as ``learned-<family>-v1.json`` with ``.validation.json`` (cross-validated metrics,
other calibrators for comparison) and small PNG figures of the cross-validated LLRs.
File names are stored relative to the repository, never as machine paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.calibration import DATA_DIR, Domain, fit
from ballistics.calibration._model import lookup as _lookup
from ballistics.errors import ParameterError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]

#: Data set -> instrument family, pixel-size range (m) and processing of its scans.
SETS: dict[str, dict[str, Any]] = {
    "fadul": {"family": "confocal", "pixel_size_m": (6.25e-6, 6.25e-6),
              "processing": {"bandpass_m": None, "resampled_m": 6.25e-6,
                             "description": "CSAFE/cmcR processed breech faces at 6.25 µm"}},
    "dfsc": {"family": "topmatch", "pixel_size_m": (7.37e-6, 7.39e-6),
             "processing": {"bandpass_m": None, "resampled_m": None,
                            "description": "CSAFE processed breech faces at the scanner's 7.37-7.38 µm"}},
}

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


def _rel(p: str | Path) -> str:
    q = Path(p).resolve()
    try:
        return q.relative_to(ROOT).as_posix()
    except ValueError:
        return q.name


def rows_from_system(path: str | Path) -> tuple[list[dict[str, Any]], int, str]:
    """Pairs stored as training data in a system file (strata name the data sets)."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    tr = d["training"]
    ref = d.get("reference", {})
    rows = []
    for k, (x, y, g) in enumerate(zip(tr["scores"], tr["same"], tr["groups"])):
        st = (tr.get("strata") or [""] * len(tr["scores"]))[k]
        rows.append({"set": st, "a": f"pair {k}", "b": "", "a_firearm": g[0].split(":", 1)[-1],
                     "b_firearm": g[1].split(":", 1)[-1], "same": bool(y), "score": float(x),
                     "params": ref.get("compare_params", {}), "library_version": ref.get("score_library_version"),
                     "method": ref.get("compare_method", "convergence")})
    return rows, int(ref.get("pairs_left_out", 0)), str(ref.get("pairs_sha256", d.get("training_checksum", "")))


def fit_family(rows: list[dict[str, Any]], family: str, args: argparse.Namespace, sources: list[str],
               digest: str, dropped: int) -> Any:
    """Fit, save and describe the system of one instrument family."""
    sets = sorted({r["set"] for r in rows})
    x = np.array([r["score"] for r in rows])
    y = np.array([r["same"] for r in rows])
    g = [(f"{r['set']}:{r['a_firearm']}", f"{r['set']}:{r['b_firearm']}") for r in rows]
    info = [SETS[s] for s in sets]
    lo = min(i["pixel_size_m"][0] for i in info)
    hi = max(i["pixel_size_m"][1] for i in info)
    params = {k: v for k, v in rows[0]["params"].items()}
    params["method"] = rows[0]["method"]
    dom = Domain.make(family, (lo, hi), params, info[0]["processing"],
                      "; ".join(REFERENCE_DESCRIPTION.get(s, s) for s in sets))
    n_scans = {s: len({f for r in rows if r["set"] == s for f in (r["a"], r["b"]) if f}) for s in sets}
    reference = {
        "description": "; ".join(f"{REFERENCE_DESCRIPTION.get(s, s)} -- "
                                 f"{len({f for r in rows if r['set'] == s for f in (r['a_firearm'], r['b_firearm'])})}"
                                 f" firearms, {sum(r['set'] == s for r in rows)} pairs" for s in sets)
                       + f". All pairs within each set, compared with ballistics.compare (method "
                         f"{rows[0]['method']!r}, default parameters).",
        "sets": {s: {"firearms": len({f for r in rows if r["set"] == s for f in (r["a_firearm"], r["b_firearm"])}),
                     "pairs": sum(r["set"] == s for r in rows),
                     "same": int(sum(r["same"] for r in rows if r["set"] == s))} for s in sets},
        "pairs_files": sources, "pairs_sha256": digest, "pairs_left_out": dropped,
        "compare_method": rows[0]["method"], "compare_params": rows[0]["params"],
        "score_library_version": rows[0]["library_version"], "scans_per_set": n_scans,
    }
    name = f"learned-{family}-v1"
    system = fit(x, y, g, args.method, name=name, score_column=args.score_column, reference=reference,
                 strata=[r["set"] for r in rows], bootstrap=args.bootstrap, system_version=args.version,
                 domain=dom)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    system.save(out / f"{name}.json")
    _describe(system, x, y, g, rows, out, args)
    return system


def _describe(system: Any, x: np.ndarray, y: np.ndarray, g: list[tuple[str, str]], rows: list[dict[str, Any]],
              out: Path, args: argparse.Namespace) -> None:
    alternatives: dict[str, dict[str, Any]] = {}
    strata = [r["set"] for r in rows]
    for m in ("logistic", "kde", "isotonic"):
        if m != args.method:
            alt = fit(x, y, g, m, strata=strata, bootstrap=0, store_training=False)
            alternatives[m] = {"metrics": alt.cv_metrics, "elub": list(alt.elub)}
    cv: dict[str, Any] = system.cross_validation
    validation = {
        "system": system.name, "system_version": system.system_version, "library_version": system.library_version,
        "training_checksum": system.training_checksum, "score_column": args.score_column, "method": args.method,
        "domain": system.domain.to_dict(), "held_to": system.validation_bar,
        "scheme": cv["scheme"], "elub": list(system.elub), "cross_validated": cv["metrics"],
        "cross_validated_per_set": cv.get("per_stratum"), "per_firearm": cv["per_firearm"],
        "training_data_metrics_not_a_validation": system.training_metrics,
        "other_calibrators_cross_validated": alternatives, "reference": system.reference,
    }
    (out / f"{system.name}.validation.json").write_text(json.dumps(validation, indent=1, default=float) + "\n")
    from ballistics.review import _plot_calibration as P

    llr = np.asarray(cv["llr"], float)
    figs = {"tippett": P.tippett(llr, y, elub=system.elub, title=f"{system.name}: Tippett (cross-validated)"),
            "ece": P.ece(llr, y, title=f"{system.name}: ECE (cross-validated)"),
            "pav": P.pav(llr, y, title=f"{system.name}: PAV (cross-validated)"),
            "lr_curve": P.lr_curve(system),
            "densities": P.score_densities(x, y, system, score_label=args.score_column)}
    for k, fig in figs.items():
        (out / f"{system.name}.{k}.png").write_bytes(P.figure_to_png(fig, dpi=args.dpi))
    m = cv["metrics"]
    print(system.summary())
    print(f"  cross-validated ({cv['scheme']}): Cllr {m['cllr']:.3f}, Cllr_min {m['cllr_min']:.3f}, "
          f"EER {m['eer']:.3f}, RMEP {m['rmep']:.3f}, RMED {m['rmed']:.3f}; bar met: "
          f"{system.validation_bar.get('all_met')}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/fit_lr_system.py", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", nargs="+", help="JSON-lines file(s) of compared pairs")
    src.add_argument("--from-system", nargs="+", help="LR-system file(s) whose stored training data are refitted")
    ap.add_argument("--score-column", default="learned_score",
                    help="field of the result used as score (dotted paths ok; default learned_score)")
    ap.add_argument("--method", default="logistic", choices=["logistic", "kde", "isotonic"])
    ap.add_argument("--version", default="1", help="system version")
    ap.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the package's data folder)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--dpi", type=int, default=60, help="resolution of the PNG figures (kept small)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.pairs:
        rows, dropped, digest = read_pairs(args.pairs, args.score_column)
        sources = [_rel(p) for p in args.pairs]
    else:
        rows, dropped, digests = [], 0, []
        for f in args.from_system:
            r, d, h = rows_from_system(f)
            rows, dropped, digests = rows + r, dropped + d, digests + [h]
        digest = hashlib.sha256("".join(digests).encode()).hexdigest()
        sources = [_rel(f) for f in args.from_system]
    unknown = sorted({r["set"] for r in rows} - set(SETS))
    if unknown:
        raise ParameterError(f"data sets {unknown} have no instrument family in SETS; add them")
    for family in sorted({SETS[r["set"]]["family"] for r in rows}):
        fit_family([r for r in rows if SETS[r["set"]]["family"] == family], family, args, sources, digest, dropped)
    if dropped:
        print(f"{dropped} pairs left out (comparison error or no {args.score_column!r})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
