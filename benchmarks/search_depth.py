"""How deep must the short list be? Mate recall of stage 1 at depths beyond 1,000, and what stage 2 pays.

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    OMP_NUM_THREADS=1 python benchmarks/search_depth.py --entries 100000 1000000

Same queries, decoys and exclusions as ``search_scale.py``.  For stage 1 as a
``local-sift`` database runs it (the signatures' list of depth ``d`` plus the votes' best
``v``; shipped: 1,000 and 250) it reports, per collection of the queries, the share of
mates within the list and the list's mean length (what stage 2 verifies), for ``d`` =
1,000 ... 10,000 and ``v`` = 250, 500, 1,000.  Stage 2
verifies every candidate of the list, at about 1.4 ms CPU each (``bench_stage2.py``), and
loses no mate it is given that has 5 or more inliers (no decoy reached more than 4 in the
scale runs), so the list's recall is what a deeper stage 2 could find.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parser, setup_logging  # noqa: E402
from search_scale import collections_with_both  # noqa: E402

DEPTHS = [1000, 1500, 2000, 3000, 5000, 10000]
VOTES = [250, 500, 1000]


def cmd_depth(a: argparse.Namespace) -> None:
    from ballistics.retrieval import merge_ranked
    for col, size, loc, glob in collections_with_both(a):
        src = np.array(col.source)
        grid = [(d, v) for d in DEPTHS for v in VOTES]
        rec: dict[tuple[int, int], list[float]] = {k: [] for k in grid}
        size_of: dict[tuple[int, int], list[int]] = {k: [] for k in grid}
        qs = []
        for qi in range(col.n):
            mates = col.mates(qi)
            if not mates:
                continue
            g = glob.search(qi, max(DEPTHS))
            v = loc.search(qi, max(VOTES))
            for d, nv in grid:
                fused = {k for k, _ in merge_ranked(g[:d], v[:nv])}
                rec[d, nv].append(len(fused & mates) / len(mates))
                size_of[d, nv].append(len(fused))
            qs.append(src[qi])
        qa = np.array(qs)
        print(f"\n## {size:,} entries: mates within the signatures' list of depth d + the votes' best v")
        for d, nv in grid:
            r = np.array(rec[d, nv])
            per = ", ".join(f"{s} {r[qa == s].mean():.3f}" for s in sorted(set(qs)))
            print(f"d={d:>6,} v={nv:>5,}: all {r.mean():.3f} ({per}); {np.mean(size_of[d, nv]):.0f} candidates",
                  flush=True)


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "local").parse_args(argv)
    setup_logging()
    cmd_depth(a)


if __name__ == "__main__":
    main()
