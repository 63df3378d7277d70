"""Stage 1 alone, designs side by side: mate recall at depth, memory, build time, time per query.

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    python benchmarks/search_local.py --entries 10000 100000 1000000 --design local global fused

Each index is built once per size (list ``local`` first at 10^6: its build has the
highest peak memory) and the fused designs reuse the ones already built; their build
time and memory are the sums of their parts.

Same queries, decoys and exclusions as ``search_scale.py`` (its docstring says how the
replicas of each design are made); no stage 2 or 3, so it runs at 10^6 entries where the
whole cascade would take too long on the shared machine.  Times are CPU time of this
single-threaded process (FAISS and NumPy limited to one thread).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cv1, parser, setup_logging  # noqa: E402
from search_scale import DEPTHS, Collection, build  # noqa: E402


def cmd_local(a: argparse.Namespace) -> None:
    import faiss
    faiss.omp_set_num_threads(1)
    cv1()
    col = Collection(a)
    for size in (a.entries or a.sizes):
        built: dict = {}  # each index is built once per size; the fused designs reuse them
        for design in a.design:
            st = build(col, max(size, col.n), design, a, built)
            rec = {d: [] for d in DEPTHS}
            ts = []
            for qi in range(col.n):
                mates = col.mates(qi)
                if not mates:
                    continue
                if hasattr(st, "qkp") and qi not in st.qkp:  # the query's key points belong to the query step
                    st.qkp[qi] = st._qk(col.scans[qi])
                c = time.process_time()
                order = st.search(qi, max(DEPTHS))
                ts.append(time.process_time() - c)
                for d in DEPTHS:  # a fused list of depth d is not a prefix of a deeper one
                    od = st.search(qi, d) if design.startswith("fused") else order[:d]
                    rec[d].append(len(set(od) & mates) / len(mates))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            print(f"{size:>9,} {st.name:<30} " + " ".join(f"d={d}: {np.mean(rec[d]):.3f}" for d in DEPTHS)
                  + f"  {st.bytes_per_entry:7.0f} B/entry  build {st.build_s:6.1f} s  "
                  f"stage 1 median {1e3 * statistics.median(ts):7.1f} ms CPU  ({len(ts)} queries, "
                  f"peak RSS {rss:.1f} GB)", flush=True)


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "local").parse_args(argv)
    setup_logging()
    cmd_local(a)


if __name__ == "__main__":
    main()
