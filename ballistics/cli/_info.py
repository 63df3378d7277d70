"""``ballistics info FILE``: what a scan file holds and which repairs were applied.

A file that cannot be read raises a :class:`~ballistics.errors.BallisticsError` from
:func:`ballistics.read_scan` (damaged archives, checksums, limits included), which the
CLI's entry point prints as one line with exit status 2 -- never a traceback.
"""

from __future__ import annotations

import argparse

from . import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a scan file (shape, spacing, missing data, metadata, fixes)")
    p.add_argument("file", help="x3p, al3d, PNG or TIFF file")
    p.add_argument("--spacing", type=float, default=None, help="pixel size in metres for images without one")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reading import read_scan

    scan = read_scan(args.file, spacing=args.spacing, allow_empty=True)
    info = scan.summary()
    info["file"] = args.file
    if not args.json:
        dy, dx = scan.spacing
        print(f"file:              {args.file}")
        print(f"kind:              {scan.kind}")
        print(f"shape:             {scan.shape[0]} x {scan.shape[1]} pixels")
        print(f"spacing:           dy = {dy:.4e} m, dx = {dx:.4e} m  ({dx * 1e6:.4g} um)")
        print(f"extent:            {scan.extent[0] * 1e3:.3f} x {scan.extent[1] * 1e3:.3f} mm")
        print(f"missing:           {100 * scan.missing_fraction:.1f} %")
        if "value_std" in info:
            unit, k = ("um", 1e6) if scan.kind == "height" else ("", 1.0)
            lo, hi = info["value_range"]
            print(f"values:            {lo * k:.4g} .. {hi * k:.4g} {unit}, std {info['value_std'] * k:.4g} {unit}")
        for key, val in scan.metadata.items():
            if val:
                print(f"{key + ':':<18} {val}")
        print(f"sha256:            {scan.provenance.sha256}")
        print(f"reader:            {scan.provenance.reader}")
        w = scan.provenance.writer
        if w:
            who = ", ".join(f"{k} {w[k]}" for k in ("creator", "date", "software", "instrument") if w.get(k))
            print(f"writer:            {w.get('format')}: {who or 'not recorded in the file'}")
            if w.get("converted_from"):
                print(f"converted from:    {w['converted_from']}")
        if scan.provenance.handedness_hint:
            print(f"handedness:        {scan.provenance.handedness_hint}")
        if scan.provenance.fixes:
            print("fixes applied:")
            for fix in scan.provenance.fixes:
                print(f"  - {fix}")
        else:
            print("fixes applied:     none (the file follows the standard)")
        return 0
    emit(info, True)
    return 0
