"""``ballistics compare A B``: Congruent Matching Cells comparison of two scans."""

from __future__ import annotations

import argparse
import logging

from . import emit
from ._common import parse_params

log = logging.getLogger(__name__)

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare two scans (Congruent Matching Cells): CMC count, score, registration",
        description="Compare two cartridge-case scans with the Congruent Matching Cells method. Raw whole-primer "
                    "scans are first reduced to their breech face (ballistics extract); already extracted "
                    "surfaces are compared directly.")
    p.add_argument("a", help="first scan (x3p, PNG, TIFF): the reference of direction a_to_b")
    p.add_argument("b", help="second scan")
    p.add_argument("--method", default="convergence", choices=["convergence", "high", "original"],
                   help="decision rule: convergence (Chen 2017, default), high (Tong 2015), original (Song 2013)")
    p.add_argument("--preset", default="default", choices=["default", "cmcr"],
                   help="default: full-circle coarse-to-fine search; cmcr: cmcR 0.1.11's settings (-30..30 by 3 deg)")
    p.add_argument("--handedness", default=None, choices=["both", "as_given", "mirrored"],
                   help="both (default): also try b mirrored (rows reversed) and report which matched; "
                        "as_given: compare the files as they are")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter, e.g. --param corr_threshold=0.6 --param rotation_range=(-30,30)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--extract", dest="extract", action="store_true", default=None,
                   help="always extract the breech face first")
    g.add_argument("--no-extract", dest="extract", action="store_false",
                   help="never extract (inputs are already extracted surfaces)")
    p.add_argument("--spacing", type=float, default=None, help="pixel size in metres for images without one")
    p.add_argument("--cells", action="store_true", help="also print the per-cell table")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=run)


def _extract(scan):
    from ..errors import ComparisonError
    try:
        from ..features import extract_breech_face
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise ComparisonError(
            f"{scan.name!r} looks like a raw whole-primer scan but breech-face extraction is not available "
            f"in this build ({exc}); extract it first or pass --no-extract if it is already extracted.") from exc
    log.info("extracting the breech face of %s", scan.name)
    return extract_breech_face(scan)


def run(args: argparse.Namespace) -> int:
    from ..comparison import compare
    from ..features import looks_raw
    from ..reading import read_scan

    scans = []
    for path in (args.a, args.b):
        scan = read_scan(path, spacing=args.spacing)
        do = looks_raw(scan) if args.extract is None else args.extract
        if do:
            scan = _extract(scan)
        scans.append(scan)
    params = parse_params(args.param)
    if args.handedness is not None:
        params["handedness"] = args.handedness
    res = compare(scans[0], scans[1], args.method, preset=args.preset, **params)
    for w in res.warnings:
        log.warning("%s", w)
    if args.json:
        d = res.to_dict()
        if not args.cells:
            d["cells"] = f"{len(res.cells)} cells (add --cells to list them)"
        emit(d, True)
        return 0
    print(res.summary())
    for w in res.warnings:
        print(f"  WARNING: {w}")
    for name, d in res.directions.items():
        passed = "" if d["passed"] is None else ("  passed" if d["passed"] else "  failed")
        print(f"  {name}: {d['cmc_count']} CMCs of {d['n_cells']} cells, rotation {d['rotation_deg']:.1f} deg, "
              f"translation ({d['translation_px'][0]:.1f}, {d['translation_px'][1]:.1f}) px{passed}")
    if args.cells:
        print(f"  {'dir':7} {'row':>3} {'col':>3} {'theta':>7} {'dy':>7} {'dx':>7} {'ncc':>6}  CMC")
        for c in res.cells:
            ncc = "   n/a" if c["ncc"] is None else f"{c['ncc']:6.3f}"
            print(f"  {c['direction']:7} {c['row']:3d} {c['col']:3d} {c['rotation_deg']:7.1f} {c['dy_px']:7.1f} "
                  f"{c['dx_px']:7.1f} {ncc}  {'yes' if c['congruent'] else ''}")
    return 0
