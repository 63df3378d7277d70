"""The signatures' IVF index at the depth of the short list: how many lists must a search probe?

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    OMP_NUM_THREADS=1 python benchmarks/search_ivf_depth.py --entries 100000 1000000

A database indexes its signatures with :class:`SignatureIndex` (``kind="auto"``: IVF from
50,000 entries on), and stage 1 takes 1,000 candidates from it, far deeper than the 10
that an IVF setting is usually checked at.  For the collection of ``search_scale.py``
(the 54 real queries among decoys, exclusions as there) this compares the IVF top 1,000
with the exact top 1,000 at several ``nprobe``: the share of the exact list kept (no
labels needed), the mates kept within 1,000 (per collection), and the CPU time per query
(one thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cv1, parser, setup_logging  # noqa: E402
from search_scale import Collection, GlobalStage1, ProductGlobalStage1  # noqa: E402

DEPTH = 1000


def cmd_ivf(a: argparse.Namespace) -> None:
    import faiss
    faiss.omp_set_num_threads(1)
    cv1()
    col = Collection(a)
    src = np.array(col.source)
    for size in (a.entries or a.sizes):
        exact = GlobalStage1(col, size, a)
        ivf = ProductGlobalStage1(col, size, a)
        assert np.array_equal(exact.base, ivf.base)
        nlist = int(ivf.idx.nlist)
        shipped = int(ivf.idx.nprobe)
        queries = [qi for qi in range(col.n) if col.mates(qi)]
        ex = {qi: exact.search(qi, DEPTH)[:DEPTH] for qi in queries}
        print(f"\n## {size:,} entries: IVF nlist {nlist}, nprobe as shipped {shipped}; exact and IVF top {DEPTH:,}")
        for nprobe in sorted({shipped, nlist // 8, nlist // 4, nlist // 2}):
            ivf.idx.nprobe = nprobe
            keep, rec, ts = [], [], []
            for qi in queries:
                c = time.process_time()
                got = ivf.search(qi, DEPTH)[:DEPTH]
                ts.append(time.process_time() - c)
                keep.append(len(set(got) & set(ex[qi])) / max(1, len(ex[qi])))
                mates = col.mates(qi)
                rec.append(len(set(got) & mates) / len(mates))
            r, qa = np.array(rec), src[queries]
            per = ", ".join(f"{s} {r[qa == s].mean():.3f}" for s in sorted(set(qa)))
            exr = np.array([len(set(ex[qi]) & col.mates(qi)) / len(col.mates(qi)) for qi in queries])
            print(f"nprobe {nprobe:>4} ({nprobe / nlist:.1%} of lists): exact top {DEPTH:,} kept {np.mean(keep):.3f} "
                  f"(min {min(keep):.3f}); mates within {DEPTH:,}: {r.mean():.3f} ({per}; exact {exr.mean():.3f}); "
                  f"{1e3 * statistics.median(ts):.1f} ms CPU median", flush=True)
        ivf.idx.nprobe = shipped


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "local").parse_args(argv)
    setup_logging()
    cmd_ivf(a)


if __name__ == "__main__":
    main()
