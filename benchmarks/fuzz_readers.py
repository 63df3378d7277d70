"""Seeded mutational fuzzing of the scan readers: every outcome counted.

    python benchmarks/fuzz_readers.py --n 10000 [--seed S] [--workers 2] [--timeout 20]

Sources: the bundled sample (all processed and raw Fadul files), small files cut from
it for each reader path (x3p, x3p with the revision repair, x3p with the micrometre
repairs, PNG, al3d; see ``benchmarks/fuzz_harness.py``, ``make_small_sources``), and where
``../shared/data`` is present four of its files: a DFSC file that needs the revision
repair (K004dB1), the SR9-J file with the micrometre repairs (K002fJ1), an Alicona
al3d and an NBIDE PNG. Cases go round robin over the sources.

Prints the count of each outcome: ``ok`` (read, validated, values identical to the
unmutated file), ``ok-changed-consistent`` (an edit of main.xml with its MD5 fixed,
read as edited), ``ok-changed-no-checksum`` (al3d/PNG/TIFF values changed; those
formats carry no checksum of the values), each BallisticsError subclass, and the
failures: ``escape:<type>``, ``hang``, ``crash``, ``invalid``, ``silent-change``.
Exit status 1 if there is any failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def sources(tmp: Path) -> list[Path]:
    from fuzz_harness import make_small_sources

    data = ROOT / "ballistics" / "datasets" / "data"
    bundled = sorted(data.glob("*.x3p"))
    small = make_small_sources(data / "Fadul 3-1 processed.x3p", tmp)
    shared = [SHARED / "dfsc" / "K004dB1.x3p", SHARED / "dfsc" / "K002fJ1.x3p",
              SHARED / "alicona" / "Klein_replica_mode.al3d", SHARED / "nbide_2d" / "NBIDE R BF 118.png"]
    present = [p for p in shared if p.exists()]
    if len(present) < len(shared):
        print(f"note: {len(shared) - len(present)} shared files absent (../shared/data), fuzzing the rest",
              file=sys.stderr)
    return bundled + small + present


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of cases")
    ap.add_argument("--seed", type=int, default=0, help="master seed")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    args = ap.parse_args()
    from fuzz_harness import run_fuzz

    with tempfile.TemporaryDirectory() as tmp:
        srcs = sources(Path(tmp))
        print(f"{len(srcs)} sources: " + ", ".join(p.name for p in srcs))
        t0 = time.perf_counter()
        report = run_fuzz(srcs, args.n, seed=args.seed, timeout=args.timeout, workers=args.workers)
        wall = time.perf_counter() - t0
    print(report.format())
    print(f"wall {wall:.1f} s with {args.workers} workers")
    print("by mutation:")
    for (how, outcome), v in sorted(report.by_mutation.items()):
        print(f"  {how:<10} {outcome:<28} {v:>6}")
    print("by source:")
    for (src, outcome), v in sorted(report.by_source.items()):
        print(f"  {src:<40} {outcome:<28} {v:>6}")
    for case in report.failures[:20]:
        print("FAILURE", case)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
