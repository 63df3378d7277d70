"""Leave-one-out over the 40 processed Fadul scans, every stage of the cascade.

Run: ``python benchmarks/search_fadul.py {fadul} [options]``
(or ``python benchmarks/bench_search.py WHAT``);
see ``benchmarks/results_index.md`` for the commands and results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PairCompare,
    _cv1,
    _load,
    _mates_recall,
    log,
    parser,
    real_scans,
    setup_logging,
)


def cmd_fadul(a: argparse.Namespace) -> None:
    """Leave-one-out over the 40 processed Fadul scans, every stage."""
    import faiss

    from ballistics.retrieval._cascade import CascadeHit
    from ballistics.retrieval._verify_sift import Keypoints, query_keypoints, verify
    _cv1()
    feats = _load()
    fad = [i for i, s in enumerate(feats["source"]) if s == "fadul"]
    fa = [feats["firearms"][i] for i in fad]
    scans, *_ = real_scans()
    scans = [scans[i] for i in fad]
    kps = [Keypoints.from_bytes(feats["real"]["blobs"][i]) for i in fad]
    pc = PairCompare(scans, f"-{a.shard.replace('/', 'of')}" if a.shard else "", compute=not a.cached_only,
                     seed=a.seed, window=a.seed_window, min_inliers=a.seed_min_inliers)
    n = len(fad)
    sh, nsh = (int(x) for x in a.shard.split("/")) if a.shard else (0, 1)
    depths = [10, 50, 200, 1000]
    rows = []
    for sigkey in ("sig_synth", "sig_shipped"):
        X = feats["real"][sigkey][fad].astype(np.float32)
        idx = faiss.IndexFlatIP(X.shape[1])
        idx.add(X)
        D, I = idx.search(X, n)
        res = {"s1": {d: [] for d in depths}, "s12": {d: [] for d in depths}, "h1_s1": [], "h1_s12": []}
        full = {"recall10": [], "hit1": [], "t": [], "t_s3": [], "n3": [], "t12": []}
        for qi in range(n):
            mates = {j for j in range(n) if j != qi and fa[j] == fa[qi]}
            order1 = [j for j in I[qi].tolist() if j != qi]
            for d in depths:
                res["s1"][d].append(_mates_recall(order1, mates, 10 if d >= 10 else d) if d == 10 else
                                    len(set(order1[:d]) & mates) / len(mates))
            res["h1_s1"].append(order1[0] in mates)
            if sigkey != "sig_synth" or qi % nsh != sh:
                continue
            c0 = time.process_time()
            qkp = query_keypoints(scans[qi])
            vers = {j: verify(qkp, kps[j]) for j in order1}
            t12 = time.process_time() - c0
            scores = {j: v.inliers for j, v in vers.items()}
            for d in depths:
                head = order1[:d]
                o2 = sorted(head, key=lambda j: (-scores[j], order1.index(j)))
                res["s12"][d].append(_mates_recall(o2, mates, 10))
            o2 = sorted(order1[:a.shortlist], key=lambda j: (-scores[j], order1.index(j)))
            res["h1_s12"].append(o2[0] in mates)
            hits = [CascadeHit(key=j, stage1_score=float(D[qi][list(I[qi]).index(j)]), stage2_inliers=scores[j])
                    for j in o2]
            t3 = 0.0
            n3 = 0
            try:
                for h in hits[: a.rerank]:
                    if h.stage2_inliers >= a.min_inliers:
                        cmc, sc, cpu, _ = pc(qi, h.key, vers[h.key].to_dict())
                        h.cmc_count, h.compare_score = cmc, sc
                        t3 += cpu
                        n3 += 1
            except KeyError:
                log.info("query %d: stage-3 comparisons not in the cache (--cached-only): stage 3 skipped", qi)
                continue
            hits.sort(key=lambda h: h.sort_key())
            final = [h.key for h in hits]
            full["recall10"].append(_mates_recall(final, mates, 10))
            full["hit1"].append(final[0] in mates)
            full["t12"].append(t12)
            full["t_s3"].append(t3)
            full["n3"].append(n3)
            full["t"].append(t12 + t3)
            log.info("query %d/%d %s: stage2 top %s, %d compares %.1f s CPU", qi + 1, n, feats["names"][fad[qi]],
                     [scores[j] for j in o2[:5]], n3, t3)
        rows.append((sigkey, res, full))
    print(f"\n## Fadul leave-one-out, {n} queries (each against the other {n - 1}); "
          f"stage-3: rerank={a.rerank}, min inliers={a.min_inliers}, "
          + (f"seeded (window +-{a.seed_window:g} deg, >= {a.seed_min_inliers} inliers)" if a.seed
             else "full 360-degree compare"))
    print("stage-1 codebook: sig_synth = trained on ballistics.synth only (not circular); "
          "sig_shipped = trained on 6 bundled Fadul scans (CIRCULAR for slides 1-3)")
    print("mate recall@10 when the stage keeps the top `depth` of stage 1 "
          "(at 40 scans every depth >= 39 holds everything):")
    print(f"{'signature':<12}{'stage':<10}" + "".join(f"{'d=' + str(d):>9}" for d in depths) + f"{'hit@1':>8}")
    for sigkey, res, full in rows:
        print(f"{sigkey:<12}{'1':<10}" + "".join(f"{np.mean(res['s1'][d]):9.3f}" for d in depths)
              + f"{np.mean(res['h1_s1']):8.3f}")
        if res["s12"][10]:
            print(f"{sigkey:<12}{'1+2':<10}" + "".join(f"{np.mean(res['s12'][d]):9.3f}" for d in depths)
                  + f"{np.mean(res['h1_s12']):8.3f}")
            print(f"{sigkey:<12}{'1+2+3':<10} ({len(full['hit1'])} queries) "
                  f"mate recall@10 {np.mean(full['recall10']):.3f}, "
                  f"hit@1 {np.mean(full['hit1']):.3f}")
            print(f"  query time (CPU s, extracted query): stages 1+2 median {statistics.median(full['t12']):.3f} "
                  f"(max {max(full['t12']):.3f}); stage 3 median {statistics.median(full['t_s3']):.2f} "
                  f"({statistics.median(full['n3'])} compares median, {sum(full['n3'])} in all); "
                  f"end to end median {statistics.median(full['t']):.2f} s, max {max(full['t']):.2f} s")


COMMANDS = {"fadul": cmd_fadul}


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "fadul").parse_args(argv)
    setup_logging()
    COMMANDS[a.what](a)


if __name__ == "__main__":
    main()
