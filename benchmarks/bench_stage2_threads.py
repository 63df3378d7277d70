"""Stage 2 of a search over a whole short list: one BLAS thread per call, and several threads.

Run (repository root, venv active, **without** ``OMP_NUM_THREADS``: BLAS at its own
setting, as in a lab's process; ``search_features.py features`` and ``decoys-real``
first)::

    python benchmarks/bench_stage2_threads.py --queries 14 --threads 1 2 --baseline 3b1dc2c

Queries: every 4th of the 54 real breech faces (as given and mirrored, as a search
computes them); candidates: the stored key points of all 54 real scans and the 624 base
decoys (678 per query).  Per query, interleaved so that load affects all alike, the wall
time of:

* ``before``: the loop the engine ran at commit ``--baseline``,
  ``[verify(q, c) for c in candidates]`` with that commit's ``verify`` (read with
  ``git show`` and run in this process) and BLAS at its own thread count;
* ``verify_many(threads=N)`` for each ``--threads`` N (BLAS held to one thread per call).

It prints wall milliseconds per candidate, the ratios to ``before`` and whether every
verification equals ``before``'s (inliers, matches, rotation, translation, handedness).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_logging  # noqa: E402
from bench_stage2 import baseline_module, queries_and_candidates  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=14, help="queries (every 4th real scan)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts of verify_many")
    ap.add_argument("--baseline", default="3b1dc2c", help="commit whose stage-2 loop is 'before'")
    a = ap.parse_args(argv)
    setup_logging()
    from threadpoolctl import threadpool_info

    from ballistics.retrieval import query_keypoints, verify_many
    verify = baseline_module(a.baseline).verify
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"BLAS at its own setting: {blas}")
    scans, cands = queries_and_candidates()
    qis = list(range(0, len(scans), 4))[: a.queries]
    per: dict[str, list[float]] = {"before": [], **{f"threads={t}": [] for t in a.threads}}
    n = same = 0
    for qi in qis:
        qs = query_keypoints(scans[qi])
        verify(qs, cands[0]), verify_many(qs, cands[:64], threads=max(a.threads))   # compiled, pools warm
        w0 = time.perf_counter()
        ref = [verify(qs, c) for c in cands]
        per["before"].append((time.perf_counter() - w0) / len(cands))
        for t in a.threads:
            w0 = time.perf_counter()
            got = verify_many(qs, cands, threads=t)
            per[f"threads={t}"].append((time.perf_counter() - w0) / len(cands))
            n += len(got)
            same += sum(x.to_dict() == y.to_dict() for x, y in zip(got, ref))
        print(f"query {qi}: " + ", ".join(f"{k} {1e3 * v[-1]:.3f} ms" for k, v in per.items()), flush=True)
    base = statistics.median(per["before"])
    print(f"{len(qis)} queries x {len(cands)} candidates; wall ms per candidate, median over queries:")
    for k, v in per.items():
        m = statistics.median(v)
        print(f"  {k:<12} {1e3 * m:.3f} ms  ({base / m:.2f}x before)")
    print(f"verifications equal to before's: {same}/{n}")


if __name__ == "__main__":
    main()
