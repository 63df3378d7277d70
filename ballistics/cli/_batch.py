"""``ballistics batch``: all-pairs and one-vs-many comparisons on a Dask cluster.

``ballistics batch all-pairs FILES... -o results/`` compares every pair on a local
cluster (``--workers N`` processes) or on a running one (``--scheduler ADDRESS``),
writing one Parquet file per tile into ``results/``; rerunning the same command resumes
a stopped run.  ``ballistics batch results results/`` prints the best-scoring pairs or
writes them all as CSV.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import ParameterError
from . import emit
from ._common import guard_output, parse_params

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="folder of the run (manifest.json + tile-*.parquet); "
                   "rerunning the same command into it resumes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on this Dask scheduler (tcp://host:8786) instead of a local cluster")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: the cores available)")
    p.add_argument("--method", default="convergence", help="decision rule: convergence (default), high, original")
    p.add_argument("--preset", default="default", metavar="NAME", help="comparison preset: default, cmcr")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a comparison parameter, e.g. --param rotation_range=(-30,30)")
    p.add_argument("--tile-size", type=int, default=None, metavar="N",
                   help="scans per block of the pair matrix (default: n/8, at most 64)")
    p.add_argument("--max-tiles", type=int, default=None, metavar="N",
                   help="compute at most N unfinished tiles, then stop (rerun to continue)")
    p.add_argument("--no-result-json", dest="keep_json", action="store_false",
                   help="store only the flat result columns, not each pair's full result as JSON (huge runs)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ballistics batch`` and its sub-commands."""
    p = subparsers.add_parser("batch", help="many comparisons on a Dask cluster (all pairs, one vs many)",
                              description="Batch comparisons, tile by tile, on a local or remote Dask cluster; "
                                          "results stream to Parquet files and a stopped run resumes.")
    sub = p.add_subparsers(dest="batch_command", metavar="SUBCOMMAND")
    a = sub.add_parser("all-pairs", help="compare every pair of FILES",
                       description="Compare every pair of FILES (extracted surfaces, e.g. 6.25 um breech faces).")
    a.add_argument("files", nargs="+", metavar="FILES")
    _common(a)
    a.set_defaults(func=run_all_pairs)
    o = sub.add_parser("one-vs-many", help="compare QUERY with each of FILES",
                       description="Compare QUERY (as the reference) with each of FILES.")
    o.add_argument("query", metavar="QUERY")
    o.add_argument("files", nargs="+", metavar="FILES")
    _common(o)
    o.set_defaults(func=run_one_vs_many)
    r = sub.add_parser("results", help="show or export the pairs of a run",
                       description="Print the best-scoring pairs of a run, or write every pair as CSV.")
    r.add_argument("output", metavar="FOLDER")
    r.add_argument("--top", type=int, default=20, metavar="K", help="pairs to print, best score first (default 20)")
    r.add_argument("--csv", default=None, metavar="FILE", help="write every pair (without result_json) to FILE")
    r.add_argument("--force", action="store_true", help="replace the CSV file if it exists")
    r.add_argument("--json", action="store_true", help="print as JSON")
    r.set_defaults(func=run_results)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _kw(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from ..batch import BatchOptions
    # the run folder may not lie inside a case database or under a file (a rerun resumes it)
    guard_output(Path(args.output) / "manifest.json", force=True, what="batch run folder")
    from ..comparison._params import resolve
    options = BatchOptions(tile_size=args.tile_size, scheduler=args.scheduler, n_workers=args.workers,
                           max_tiles=args.max_tiles, progress=args.progress, keep_json=args.keep_json)
    params = resolve(args.method, args.preset, parse_params(args.param))
    return {"output": args.output, "method": args.method, "params": params, "options": options}


def _report(summary: Any, as_json: bool) -> int:
    emit(summary.to_dict(), as_json)
    if not summary.complete and not as_json:
        log.warning("the run is not complete: rerun the same command to continue it")
    return 1 if summary.tiles_failed else 0


def run_all_pairs(args: argparse.Namespace) -> int:
    from ..batch import all_pairs
    return _report(all_pairs(args.files, **_kw(args)), args.json)


def run_one_vs_many(args: argparse.Namespace) -> int:
    from ..batch import one_vs_many
    return _report(one_vs_many(args.query, args.files, **_kw(args)), args.json)


def run_results(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from ..batch import read_results
    if args.top < 0:
        raise ParameterError(f"--top must be >= 0, got {args.top}")
    if args.csv:
        from pathlib import Path
        guard_output(args.csv, sorted(Path(args.output).glob("*")), force=args.force, what="CSV file")
    table = read_results(args.output)
    if args.csv:
        import io

        import pyarrow.csv as pcsv

        from .._io import atomic_write_bytes
        buf = io.BytesIO()
        pcsv.write_csv(table.drop_columns(["result_json"]), buf)
        atomic_write_bytes(args.csv, buf.getvalue())
    n_err = table.num_rows - pc.count(table["score"]).as_py() if table.num_rows else 0
    best = table.filter(pc.is_valid(table["score"])).sort_by([("score", "descending")]).slice(0, args.top)
    cols = ["a_name", "b_name", "cmc_count", "score", "rotation_deg", "correlation"]
    meta = table.schema.metadata or {}
    emit({"pairs": table.num_rows, "expected": int(meta.get(b"ballistics.n_pairs_expected", b"0")),
          "errors": n_err, "best": best.select(cols).to_pylist()}, args.json)
    return 0
