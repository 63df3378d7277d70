"""What the key points' votes cost and keep, by how much of the query votes.

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    OMP_NUM_THREADS=1 python benchmarks/search_vote_cost.py --entries 100000 1000000

The time of the votes grows with the postings they scan: every query descriptor scans
its ``multi_assign ** 2`` nearest words' lists, as given and mirrored.  This benchmark
builds the ``local`` and ``global`` designs of ``search_scale.py`` once per size (same
queries, decoys and exclusions) and searches them with the query side cut down: the
``K`` strongest query key points per handedness (``K`` = 500, all of them, to 200) and
``M`` = 2 or 1 words per half-descriptor.  The index is the same for every setting
(both are query-side choices).  For each it reports, per collection of the queries
(Fadul, DFSC), the votes' mate recall within 250 (what a ``local-sift`` database adds to
the short list), the fused short list's recall (the signatures' 1,000 plus the votes'
250), the votes' CPU time per query (median, one thread) and the postings they scan.
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
from _common import parser, setup_logging  # noqa: E402
from search_scale import collections_with_both  # noqa: E402

SETTINGS = [(500, 2, 0), (300, 2, 0), (500, 1, 0), (300, 1, 0), (200, 1, 0)]


def postings_scanned(loc, qi: int) -> int:
    """Postings in the word lists the query's descriptors look up (as given and mirrored)."""
    from ballistics.retrieval._local_index import encode
    m = int(loc.idx.params["multi_assign"])
    k = loc.vote_keypoints or None
    off = loc.idx.offsets
    lens = np.concatenate([off[w + 1] - off[w] for w in (encode(q, k, m)[0].ravel() for q in loc.qkp[qi])])
    return int(lens[lens <= loc.max_list].sum() if loc.max_list is not None else lens.sum())


def cmd_votes(a: argparse.Namespace) -> None:
    from ballistics.retrieval import merge_ranked
    for col, size, loc, glob in collections_with_both(a):
        src = np.array(col.source)
        gl = {qi: glob.search(qi, a.shortlist)[: a.shortlist] for qi in range(col.n) if col.mates(qi)}
        print(f"\n## {size:,} entries: votes' index build {loc.build_s:.1f} s, "
              f"{loc.bytes_per_entry:.0f} B/entry", flush=True)
        for k, m, cap in (SETTINGS if not a.caps else [(0, 2, c) for c in a.caps]):
            loc.vote_keypoints = k
            mean_list = len(loc.idx.ids) / (len(loc.idx.offsets) - 1)
            loc.max_list = int(cap * mean_list) if cap else None
            loc.idx.params["multi_assign"] = m
            rv, rf, ts, qs, ps = [], [], [], [], []
            for qi, g in gl.items():
                mates = col.mates(qi)
                if qi not in loc.qkp:
                    loc.qkp[qi] = loc._qk(col.scans[qi])
                c = time.process_time()
                v = loc.search(qi, 250)
                ts.append(time.process_time() - c)
                fused = [key for key, _ in merge_ranked(g, v)]
                ps.append(postings_scanned(loc, qi))
                rv.append(len(set(v) & mates) / len(mates))
                rf.append(len(set(fused) & mates) / len(mates))
                qs.append(src[qi])
            rv_, rf_, qs_ = np.array(rv), np.array(rf), np.array(qs)
            per = "  ".join(f"{s}: votes@250 {rv_[qs_ == s].mean():.3f}, fused {rf_[qs_ == s].mean():.3f}"
                            for s in sorted(set(qs)))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            print(f"K={k:3d} M={m} stop list {cap:g} x mean ({loc.max_list}): "
                  f"votes@250 {rv_.mean():.3f}, fused short list {rf_.mean():.3f}  [{per}]  "
                  f"votes {1e3 * statistics.median(ts):.1f} ms CPU median, {statistics.median(ps) / 1e6:.2f} M "
                  f"postings scanned ({len(ts)} queries, "
                  f"peak RSS {rss:.1f} GB)", flush=True)


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "local").parse_args(argv)
    setup_logging()
    cmd_votes(a)


if __name__ == "__main__":
    main()
