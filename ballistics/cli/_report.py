"""``ballistics report A B -o report.html`` and ``ballistics report --db DB --query Q -o search.html``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ParameterError
from ._common import guard_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a comparison (A B) or of a database search (--db --query)",
        description="Write one self-contained HTML file (figures embedded, no network) that an examiner can "
                    "file with the case: scans, congruent cells on both scans, agreement map, where the score "
                    "falls among known same-firearm and different-firearm pairs, parameters, version, inputs "
                    "with SHA-256 checksums and a plain-language summary.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="the two scans to compare (x3p, PNG, TIFF)")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--db", default=None, help="case database to search (with --query)")
    p.add_argument("--query", default=None, help="questioned scan to search for in --db")
    p.add_argument("-k", type=int, default=10, help="number of candidates in a search report (default 10)")
    p.add_argument("--method", default=None,
                   help="comparison method (original, high, convergence; default: compare's default)")
    p.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                   help="search report: the query is already an extracted breech face")
    p.add_argument("--extract", action="store_true",
                   help="the files are raw whole-primer scans: extract the breech faces first")
    p.add_argument("--reference", default="bundled", choices=["bundled", "fadul40", "none"],
                   help="known pairs to place the score among (default: the bundled Fadul sample)")
    p.add_argument("--azimuth", type=float, default=315.0, help="virtual light direction, degrees (default 315)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--notes", default=None, help="examiner's notes to include")
    p.add_argument("--spacing", type=float, default=None, help="pixel size in metres for images without one")
    p.add_argument("--force", action="store_true", help="replace an existing report (never an input)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reading import read_scan
    from ..review.report import report, search_report

    inputs = [*args.files, *(x for x in (args.query,) if x)]
    if args.db:
        inputs += [p for p in Path(args.db).rglob("*") if p.is_file()] if Path(args.db).is_dir() else [args.db]
    guard_output(args.output, inputs, force=args.force, what="report")
    if args.db or args.query:
        if not (args.db and args.query) or args.files:
            raise ParameterError("A search report needs both --db PATH and --query FILE (and no other files).")
        search_report(args.db, read_scan(args.query, spacing=args.spacing), k=args.k, output=args.output,
                      title=args.title, preprocess=args.preprocess)
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    if len(args.files) != 2:
        raise ParameterError(f"A comparison report needs exactly two scan files, got {len(args.files)}; "
                              "or use --db PATH --query FILE for a search report.")
    a, b = (read_scan(f, spacing=args.spacing) for f in args.files)
    from tqdm import tqdm

    with tqdm(total=1, desc="comparing and writing the report", unit="report", disable=None) as bar:
        report(a, b, output=args.output, method=args.method,
               reference=None if args.reference == "none" else args.reference,
               extract=args.extract, title=args.title, notes=args.notes, azimuth_deg=args.azimuth)
        bar.update(1)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
