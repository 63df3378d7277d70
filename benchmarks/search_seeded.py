"""Seeded stage 3 against the full comparison on every mate pair, and on forced non-mates.

Run: ``python benchmarks/search_seeded.py {seeded} [options]``
(or ``python benchmarks/bench_search.py WHAT``);
see ``benchmarks/results_index.md`` for the commands and results.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    OUT,
    _cv1,
    _load,
    log,
    parser,
    real_scans,
    setup_logging,
)

SEED_CACHE = OUT / "search_seeded_pairs"


def cmd_seeded(a: argparse.Namespace) -> None:
    """Seeded stage 3 vs full compare on every ordered Fadul and DFSC mate pair.

    For each ordered mate pair (query i, candidate j): stage 2's pose (query key points
    vs j's stored ones), the full 360-degree ``compare`` (both handedness: the truth),
    and ``compare`` seeded by the pose (:func:`ballistics.retrieval._cascade.stage3_seed`) at
    each window; then the same with j mirrored (rows reversed, a file of the opposite
    handedness): the seeded comparison must find the mirrored mate with the count of
    the as-given full comparison.  CPU times are of this single-threaded process.
    """
    from ballistics.comparison import compare, prepare
    from ballistics.retrieval._cascade import stage3_seed
    from ballistics.retrieval._verify_sift import Keypoints, keypoints, query_keypoints, verify
    _cv1()
    feats = _load()
    scans, names, fa, src = real_scans()
    kps = [Keypoints.from_bytes(b) for b in feats["real"]["blobs"]]
    n = len(scans)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j and fa[i] == fa[j]]
    sh, nsh = (int(x) for x in a.shard.split("/")) if a.shard else (0, 1)
    if a.nonmates:
        _seeded_nonmates(a, scans, names, fa, src, kps, sh, nsh)
        return
    cache: dict = {}
    for f in sorted(OUT.glob(SEED_CACHE.name + "*.pkl")):
        with open(f, "rb") as fh:
            cache.update(pickle.load(fh))
    mine: dict = {}
    myfile = OUT / f"{SEED_CACHE.name}{('-' + a.shard.replace('/', 'of')) if a.shard else ''}.pkl"
    windows = a.windows
    qkp: dict = {}
    prep: dict = {}

    def run(key, fn):
        if key not in cache:
            if a.cached_only:
                raise KeyError(key)
            c0 = time.process_time()
            r = fn()
            cache[key] = mine[key] = {"cmc": int(r.cmc_count), "score": float(r.score), "rot": float(r.rotation_deg),
                                      "mirrored": bool(r.mirrored), "cpu": time.process_time() - c0}
            with open(myfile, "wb") as fh:
                pickle.dump(mine, fh)
        return cache[key]

    rows = []
    for pi, (i, j) in enumerate(pairs):
        if pi % nsh != sh and not a.cached_only:
            continue
        if i not in qkp:
            qkp[i] = query_keypoints(scans[i])
        if i not in prep:
            prep.clear()
            prep[i] = prepare(scans[i])
        bm = scans[j].derive(np.ascontiguousarray(scans[j].data[::-1]), "bench.mirror_rows", {})
        try:
            full = run((i, j, "full"), lambda: compare(prep[i], scans[j]))
            for mirror_b in (False, True):
                cand = bm if mirror_b else scans[j]
                v = verify(qkp[i], keypoints(bm) if mirror_b else kps[j]).to_dict()
                for w in windows:
                    plan = stage3_seed(v, w, 0)
                    kw = plan["compare_kw"]
                    r = run((i, j, mirror_b, w), lambda: compare(prep[i], cand, **kw))
                    rows.append({"i": i, "j": j, "src": src[i], "mirror_b": mirror_b, "w": w, "inliers": v["inliers"],
                                 "s2_rot": v["rotation_deg"], "s2_mir": v["mirrored"], "centre": plan["centre_deg"],
                                 "hand": plan["handedness"], "full": full, "seeded": r})
        except KeyError:
            continue
        log.info("%d/%d %s -> %s: full %d CMC rot %.0f %s; %s", pi + 1, len(pairs), names[i], names[j], full["cmc"],
                 full["rot"], "mirrored" if full["mirrored"] else "", [(r_["w"], r_["mirror_b"], r_["seeded"]["cmc"])
                                                                       for r_ in rows[-2 * len(windows):]])
    if not a.cached_only and nsh > 1:
        return
    nf = sum(1 for i, j in pairs if src[i] == "fadul")
    print(f"\n## Seeded stage 3 vs full compare: {len({(r['i'], r['j']) for r in rows})} ordered mate pairs "
          f"(Fadul {nf}, DFSC {len(pairs) - nf})")
    fulls = {(r["i"], r["j"]): r["full"] for r in rows}
    fc = [f["cpu"] for f in fulls.values()]
    print(f"full compare (360 deg, both handedness): median CPU {statistics.median(fc):.3f} s; "
          f"as-given mates reported mirrored: {sum(f['mirrored'] for f in fulls.values())}")
    err = [abs((r["centre"] - r["full"]["rot"] + 180) % 360 - 180) for r in rows
           if r["w"] == windows[0] and not r["mirror_b"]]
    print(f"|seed centre - full compare rotation| (as given): median {statistics.median(err):.1f}, "
          f"max {max(err):.1f} deg; fewest mate inliers {min(r['inliers'] for r in rows)}")
    print(f"{'window':>7} {'b':<9} {'src':<6} {'pairs':>6} {'same count':>11} {'lower':>6} {'higher':>7} "
          f"{'max |diff|':>10} {'zero':>5} {'median CPU s':>13}")
    for w in windows:
        for mb in (False, True):
            for sname in ("fadul", "dfsc"):
                rs = [r for r in rows if r["w"] == w and r["mirror_b"] == mb and r["src"] == sname]
                if not rs:
                    continue
                d = [r["seeded"]["cmc"] - r["full"]["cmc"] for r in rs]
                print(f"{w:>7.0f} {'mirrored' if mb else 'as given':<9} {sname:<6} {len(rs):>6} "
                      f"{sum(x == 0 for x in d):>11} {sum(x < 0 for x in d):>6} {sum(x > 0 for x in d):>7} "
                      f"{max(abs(x) for x in d):>10} {sum(r['seeded']['cmc'] == 0 for r in rs):>5} "
                      f"{statistics.median(r['seeded']['cpu'] for r in rs):>13.3f}")
    for r in rows:
        if r["seeded"]["cmc"] != r["full"]["cmc"] and r["w"] == a.report_window:
            bm_txt = " (b mirrored)" if r["mirror_b"] else ""
            print(f"  differs (w={r['w']:.0f}): {names[r['i']]} -> {names[r['j']]}{bm_txt}: "
                  f"full {r['full']['cmc']} at {r['full']['rot']:.0f}{' mirrored' if r['full']['mirrored'] else ''}, "
                  f"seeded {r['seeded']['cmc']} at {r['seeded']['rot']:.0f} (window centre {r['centre']:.0f}, "
                  f"{r['inliers']} inliers)")


def _seeded_nonmates(a: argparse.Namespace, scans: list, names: list, fa: list, src: list, kps: list,
                     sh: int, nsh: int) -> None:
    """Seeding forced on non-mates: for each real query, the different-firearm scan with the
    most stage-2 inliers is compared seeded by its (meaningless) pose, whatever its inlier
    count, and over the full circle; does a seeded window raise a non-mate's count?"""
    from ballistics.comparison import compare, prepare
    from ballistics.retrieval._cascade import stage3_seed
    from ballistics.retrieval._verify_sift import query_keypoints, verify
    f = OUT / f"search_seeded_nonmates{('-' + a.shard.replace('/', 'of')) if a.shard else ''}.pkl"
    cache: dict = {}
    for g in sorted(OUT.glob("search_seeded_nonmates*.pkl")):
        with open(g, "rb") as fh:
            cache.update(pickle.load(fh))
    mine: dict = {}
    w = a.report_window
    for i in range(len(scans)):
        if i % nsh != sh and not a.cached_only:
            continue
        if i not in cache and not a.cached_only:
            q = query_keypoints(scans[i])
            vs = {j: verify(q, kps[j]) for j in range(len(scans)) if fa[j] != fa[i] and src[j] == src[i]}
            j = max(vs, key=lambda x: vs[x].inliers)
            plan = stage3_seed(vs[j].to_dict(), w, 0)
            pq = prepare(scans[i])
            full = compare(pq, scans[j])
            c0 = time.process_time()
            seeded = compare(pq, scans[j], **plan["compare_kw"])
            cpu = time.process_time() - c0
            cache[i] = mine[i] = (j, vs[j].inliers, int(full.cmc_count), int(seeded.cmc_count), cpu,
                                  plan["handedness"])
            with open(f, "wb") as fh:
                pickle.dump(mine, fh)
            log.info("%s -> %s: %d inliers, full %d, seeded %d", names[i], names[j], vs[j].inliers,
                     full.cmc_count, seeded.cmc_count)
    if nsh > 1 and not a.cached_only:
        return
    rows = [cache[i] for i in sorted(cache)]
    print(f"\n## Seeding forced on the most-inlier non-mate of each of {len(rows)} queries (window +-{w:g} deg)")
    print(f"stage-2 inliers: max {max(r[1] for r in rows)}; full compare CMC: max {max(r[2] for r in rows)}; "
          f"seeded CMC: max {max(r[3] for r in rows)}; seeded > full on {sum(r[3] > r[2] for r in rows)}, "
          f"seeded 0 (would fall back to full) on {sum(r[3] == 0 for r in rows)}; "
          f"seeded median CPU {statistics.median(r[4] for r in rows):.3f} s")
    for i in sorted(cache):
        j, inl, fc, sc, _, hand = cache[i]
        if sc != fc:
            print(f"  {names[i]} -> {names[j]}: {inl} inliers, full {fc}, seeded {sc} ({hand})")


COMMANDS = {"seeded": cmd_seeded}


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "seeded").parse_args(argv)
    setup_logging()
    COMMANDS[a.what](a)


if __name__ == "__main__":
    main()
