"""``ballistics demo``: the whole pipeline on the bundled sample of real Fadul scans.

1. read the bundled scans;
2. extract the breech face from the three raw scans;
3. compare same-firearm and different-firearm pairs (raw, extracted by this engine);
4. compare all 15 pairs of the six processed breech faces and show the separation;
5. build a case database from them and search it with one exhibit;
6. write an HTML report of one comparison.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from ._common import guard_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the bundled sample of real scans")
    p.add_argument("-o", "--out", default="ballistics-demo",
                   help="folder for the demo's outputs (report, database); default ./ballistics-demo")
    p.add_argument("--method", default=None, help="comparison method (default: the engine's default)")
    p.set_defaults(func=run)


def _section(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def run(args: argparse.Namespace) -> int:
    from .. import __version__, datasets
    from ..comparison import compare, prepare
    from ..features import extract_breech_face

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = {"method": args.method} if args.method else {}
    print(f"ballistics {__version__} demo on the bundled Fadul sample (see ballistics/datasets/data/ATTRIBUTION.md)")

    _section("1. Bundled scans")
    raw = datasets.fadul("raw")
    processed = datasets.fadul("processed")
    print(f"{'scan':<22}{'kind':<11}{'pixels':>12}{'spacing um':>12}{'missing %':>11}")
    for i, s in enumerate(raw + processed):
        kind = "raw" if i < len(raw) else "processed"
        print(f"{s.exhibit_id:<22}{kind:<11}{f'{s.shape[0]}x{s.shape[1]}':>12}{s.spacing[1] * 1e6:>12.3f}"
              f"{100 * s.missing_fraction:>11.1f}")

    _section("2. Breech faces found in the raw scans")
    extracted = []
    for s in tqdm(raw, desc="extracting", unit="scan", leave=False):
        t0 = time.perf_counter()
        bf = extract_breech_face(s)
        dt = time.perf_counter() - t0
        r = bf.region or {}
        extracted.append(bf)
        tqdm.write(f"{s.exhibit_id:<12} primer radius {1e3 * r.get('primer_radius_m', float('nan')):.3f} mm, "
              f"firing-pin radius {1e3 * r.get('firing_pin_radius_m', float('nan')):.3f} mm, "
              f"{bf.shape[0]}x{bf.shape[1]} px at {bf.spacing[1] * 1e6:.2f} um, {dt:.2f} s")

    def table(pairs, scans, title):
        print(f"{title:<28}{'truth':<11}{'CMCs':>6}{'score':>9}{'log10 LR':>9}{'corr':>7}{'rot deg':>9}{'s':>7}")
        rows = []
        prepared = {s.exhibit_id: prepare(s) for s in scans}
        for a, b in tqdm(pairs, desc="comparing", unit="pair", leave=False):
            res = compare(prepared[a.exhibit_id], b, **kw)
            same = a.metadata["firearm"] == b.metadata["firearm"]
            rows.append((same, res))
            corr = "-" if res.correlation is None else f"{res.correlation:.2f}"
            llr = "-" if res.llr is None else f"{res.llr:+.2f}"
            tqdm.write(f"{a.exhibit_id + ' vs ' + b.exhibit_id:<28}{'same' if same else 'different':<11}"
                       f"{res.cmc_count:>6}{res.score:>9.3f}{llr:>9}{corr:>7}{res.rotation_deg:>9.1f}"
                       f"{res.elapsed_s:>7.2f}")
        return rows

    _section("3. Comparisons of the breech faces this engine extracted from raw scans")
    table(list(itertools.combinations(extracted, 2)), extracted, "pair")

    _section("4. All pairs of the six processed breech faces")
    rows = table(list(itertools.combinations(processed, 2)), processed, "pair")
    same = [r.score for s, r in rows if s]
    diff = [r.score for s, r in rows if not s]
    gap = min(same) - max(diff)
    print(f"same-firearm scores {min(same):.3f}..{max(same):.3f}; different-firearm {min(diff):.3f}..{max(diff):.3f}; "
          f"gap {gap:+.3f} ({'separated' if gap > 0 else 'NOT separated'})")

    _section("5. Case database: search with Fadul 1-1 against the other processed scans")
    _search_demo(processed, out)

    _section("6. Report")
    from ..review.report import report
    path = guard_output(out / "report Fadul 1-1 vs 1-2.html", force=True, what="demo report")
    report(processed[0], processed[1], output=path, **({"method": args.method} if args.method else {}))
    print(f"HTML report written to {path}")
    return 0


def _search_demo(processed: list, out: Path) -> None:
    """Section 5: a temporary case database of the processed scans, searched with the first."""
    from ..database import CaseDatabase
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        db = CaseDatabase(Path(tmp) / "demo.db")
        for s in processed[1:]:
            db.add(s, scan_id=s.exhibit_id, case_id="demo", firearm_id=s.metadata["firearm"], preprocess=False)
        t0 = time.perf_counter()
        hits = db.search(processed[0], k=5, preprocess=False)
        dt = time.perf_counter() - t0
        print(f"{'rank':<6}{'scan':<14}{'firearm':<10}{'inliers':>8}{'CMCs':>6}{'score':>9}{'log10 LR':>10}")
        for h in hits:
            llr = (h.comparison or {}).get("llr")
            print(f"{h.rank:<6}{h.scan_id:<14}{str(h.firearm_id):<10}"
                  f"{'-' if h.inliers is None else h.inliers:>8}{'-' if h.cmc_count is None else h.cmc_count:>6}"
                  f"{'-' if h.score is None else f'{h.score:.3f}':>9}{'-' if llr is None else f'{llr:+.2f}':>10}")
        print(f"query answered in {dt:.2f} s (retrieval, key-point verification, full comparison of the best); "
              "true mate is slide-1")
        print(hits.format_timings())
        db.close()
