"""Stage 2 on its own: all ordered Fadul pairs; a two-step stage 2 (measured, not shipped).

Run: ``python benchmarks/search_stage2.py {stage2|twostep} [options]``
(or ``python benchmarks/bench_search.py WHAT``);
see ``benchmarks/results_index.md`` for the commands and results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    _cv1,
    _decoy_bases,
    _load,
    parser,
    real_scans,
    setup_logging,
)


def cmd_stage2(a: argparse.Namespace) -> None:
    """Stage 2 alone on all ordered pairs of the 40 processed Fadul scans."""
    from ballistics.retrieval._verify_sift import query_keypoints, verify
    _cv1()
    scans, names, firearms, source = real_scans()
    fad = [i for i, s in enumerate(source) if s == "fadul"]
    params = {"n_features": a.n_features}
    K = [query_keypoints(scans[i], params) for i in fad]
    fa = np.array([firearms[i] for i in fad])
    n = len(fad)
    S = np.zeros((n, n))
    c = time.process_time()
    for i in range(n):
        for j in range(n):
            if i != j:
                S[i, j] = verify(K[i], K[j][0], params).inliers
    ms = 1e3 * (time.process_time() - c) / (n * (n - 1))
    h1, rec = 0, []
    for i in range(n):
        o = [j for j in np.argsort(-S[i], kind="stable") if j != i]
        m = fa[o] == fa[i]
        h1 += bool(m[0])
        rec.append(m[:10].sum() / m.sum())
    same = (fa[:, None] == fa[None, :]) & ~np.eye(n, dtype=bool)
    diff = fa[:, None] != fa[None, :]
    print(f"n_features {a.n_features}: {ms:.1f} ms CPU/pair, hit@1 {h1 / n:.3f}, mate recall@10 {np.mean(rec):.3f}, "
          f"fewest mate inliers {S[same].min():.0f}, most non-mate inliers {S[diff].max():.0f}")


def cmd_twostep(a: argparse.Namespace) -> None:
    """A two-step stage 2, measured, not shipped: verify every candidate first against its
    ``--subset`` strongest key points only (the blob stores them strongest first), and in
    full only above a threshold.  Real queries against every other real scan and every
    3rd base decoy (not of the query's firearm)."""
    from ballistics.retrieval._verify_sift import Keypoints, query_keypoints, verify
    _cv1()
    feats = _load()
    fa = feats["firearms"]
    kps = [Keypoints.from_bytes(b) for b in feats["real"]["blobs"]]
    _, dblobs, dfa = _decoy_bases(feats, "both")
    dk = [Keypoints.from_bytes(b) for b in dblobs]
    scans, *_ = real_scans()
    for K in a.subset:
        mate_a, non_a, t, n = [], [], 0.0, 0
        for i in range(len(scans)):
            q = query_keypoints(scans[i])
            cands = [(kps[j], fa[j] == fa[i]) for j in range(len(scans)) if j != i] \
                + [(d, False) for d, f in list(zip(dk, dfa))[::3] if f != fa[i]]
            for c, mate in cands:
                cs = Keypoints(c.points[:K], c.angles[:K], c.descriptors[:K], c.shape, c.spacing_m)
                c0 = time.process_time()
                v = verify(q, cs).inliers
                t += time.process_time() - c0
                n += 1
                (mate_a if mate else non_a).append(v)
        m, o = np.array(mate_a), np.array(non_a)
        print(f"subset {K}: {1e3 * t / n:.2f} ms CPU/pair; mates ({len(m)}) fewest inliers {m.min()}; "
              f"non-mates ({len(o)}) most {o.max()}, share >= 3: {np.mean(o >= 3):.3f}, >= 4: {np.mean(o >= 4):.4f}")


COMMANDS = {"stage2": cmd_stage2, "twostep": cmd_twostep}


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "stage2").parse_args(argv)
    setup_logging()
    COMMANDS[a.what](a)


if __name__ == "__main__":
    main()
