"""Shared parts of the search benchmarks: data, decoys, caches, the pair-compare cache, the CLI.

One script per question (``search_features.py``, ``search_fadul.py``, ``search_scale.py``,
``search_stage1.py``, ``search_stage2.py``, ``search_seeded.py``, ``search_local.py``);
``bench_search.py WHAT ...`` dispatches to them.  Nothing learned is trained on a queried
firearm: the stage-1 codebooks used here are trained on ``ballistics.synth`` surfaces
only; stage 2 (SIFT + rigid RANSAC) learns nothing.  Times: CPU seconds of the
single-threaded process (the 2-core machine is shared, so wall times are inflated).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT = Path(__file__).resolve().parent / "out"
CACHE = OUT / "search_features.pkl"
CMP_CACHE = OUT / "search_compare_pairs.pkl"
log = logging.getLogger("bench_search")


def cv1() -> None:
    import cv2
    cv2.setNumThreads(1)


def real_scans() -> tuple[list, list[str], list[str], list[str]]:
    from ballistics import read_scan
    scans, names, firearms, source = [], [], [], []
    for sub, gtf in (("fadul", "fadul/ground_truth.csv"), ("dfsc", "dfsc/ground_truth.csv")):
        for r in csv.DictReader(open(SHARED / gtf)):
            f = r["file"]
            if sub == "fadul" and not f.startswith("processed/"):
                continue
            path = SHARED / sub / f
            scans.append(read_scan(path))
            names.append(Path(f).stem)
            firearms.append(f"{sub}:{r['firearm']}")
            source.append(sub)
    return scans, names, firearms, source


def synth_scans(n_firearms: int, shots: int, seed: int) -> list:
    from ballistics import synth
    return synth.make_collection(n_firearms, shots, seed=seed)


def augment(scan, rng: np.random.Generator):
    """Rotated (any angle), sometimes mirrored, noisier, partly masked copy (for training)."""
    import cv2
    z = np.array(scan.data, dtype=np.float64)
    if rng.random() < 0.5:
        z = z[:, ::-1]
    m = np.isfinite(z)
    ang = float(rng.uniform(0, 360))
    h, w = z.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), ang, float(rng.uniform(0.97, 1.03)))
    zr = cv2.warpAffine(np.where(m, z, 0).astype(np.float32), M, (w, h), flags=cv2.INTER_LINEAR)
    mr = cv2.warpAffine(m.astype(np.float32), M, (w, h), flags=cv2.INTER_LINEAR) > 0.99
    sd = np.nanstd(z)
    zr = zr + rng.normal(0, 0.15 * sd, zr.shape)
    # missing-data blob
    cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 10, h // 4)
    yy, xx = np.ogrid[:h, :w]
    mr &= (yy - cy) ** 2 + (xx - cx) ** 2 > r * r
    out = np.where(mr, zr, np.nan)
    return scan.derive(out, step="bench_search.augment", params={"rotation_deg": ang})


_cache_file: Path | None = None   # set by ``--cache`` (each parse of ``parser()``'s arguments)


def cache_path() -> Path:
    """The signature and decoy cache in use: ``--cache PATH``, else ``benchmarks/out/search_features.pkl``."""
    return _cache_file or CACHE


def _load() -> dict:
    with open(cache_path(), "rb") as f:
        return pickle.load(f)


def _mates_recall(order: list[int], mates: set[int], k: int) -> float:
    return len(set(order[:k]) & mates) / len(mates)


class PairCompare:
    """Stage-3 compare() of real pairs, cached on disk (a pair's result does not depend on the database).

    With ``seed`` (the shipped default) the comparison is seeded by the pair's stage-2 pose
    exactly as the cascade does it (:func:`ballistics.retrieval._cascade.stage3_seed`, no LR,
    a full comparison when the seeded one finds no CMC); the cache key holds the
    comparison's keywords, so seeded and full results never mix.  CPU times include
    the query's ``prepare`` work (lazy: paid by its first comparison).
    """

    def __init__(self, scans: list, shard: str = "", compute: bool = True, seed: bool = True,
                 window: float = 18.0, min_inliers: int = 8) -> None:
        self.compute, self.seed, self.window, self.min_inliers = compute, seed, window, min_inliers
        from ballistics.comparison import compare, prepare
        self.compare, self.prepare, self.scans = compare, prepare, scans
        self.cache: dict = {}
        for f in sorted(OUT.glob(CMP_CACHE.stem + "*.pkl")):
            with open(f, "rb") as fh:
                self.cache.update(pickle.load(fh))
        self.file = OUT / f"{CMP_CACHE.stem}{shard}.pkl"
        self.mine: dict = {}
        self.prepared: dict = {}

    def live_wall(self, i: int, js: list, stage2s: list, threads: int) -> float:
        """Wall seconds of stage 3 as a search on ``threads`` runs it: prepare the query, compare each
        pair, one thread per comparison (``compare_candidates``)."""
        import ballistics
        from ballistics.retrieval._cascade import stage3_seed
        w = time.perf_counter()
        with ballistics.threads(threads), ballistics.threads(1):
            q = self.prepare(self.scans[i])
            for j, s2 in zip(js, stage2s):
                kw = stage3_seed(s2, self.window, self.min_inliers)["compare_kw"] if self.seed else {}
                r = self.compare(q, self.scans[j], **kw)
                if kw and r.cmc_count == 0:
                    self.compare(q, self.scans[j])
        return time.perf_counter() - w

    def __call__(self, i: int, j: int, stage2: dict | None = None) -> tuple[int, float, float, float]:
        from ballistics.retrieval._cascade import stage3_seed
        kw: dict = {}
        if self.seed:
            kw = stage3_seed(stage2, self.window, self.min_inliers)["compare_kw"]
        key = (i, j) if not kw else (i, j, tuple(sorted(kw.items())))
        if key not in self.cache:
            if not self.compute:
                raise KeyError(key)
            if i not in self.prepared:
                self.prepared = {i: self.prepare(self.scans[i])}
            w, c = time.perf_counter(), time.process_time()
            r = self.compare(self.prepared[i], self.scans[j], **kw)
            if kw and r.cmc_count == 0:   # the cascade's fallback: the full circle
                r = self.compare(self.prepared[i], self.scans[j])
            self.cache[key] = self.mine[key] = (int(r.cmc_count), float(r.score), time.process_time() - c,
                                                time.perf_counter() - w)
            with open(self.file, "wb") as f:
                pickle.dump(self.mine, f)
        return self.cache[key]


def _decoy_bases(feats: dict, which: str) -> tuple[np.ndarray, list, list]:
    """Base decoys: (signatures, stage-2 blobs, firearm each was derived from or None for synthetic)."""
    sig, blobs, fa = [], [], []
    if which in ("synth", "both"):
        sig.append(feats["decoy"]["sig_synth"])
        blobs += feats["decoy"]["blobs"]
        fa += [None] * len(feats["decoy"]["blobs"])
    if which in ("real", "both") and "decoy_real" in feats:
        sig.append(feats["decoy_real"]["sig_synth"])
        blobs += feats["decoy_real"]["blobs"]
        fa += feats["decoy_real"]["firearm"]
    return np.vstack(sig).astype(np.float32), blobs, fa


def _decoy_pool(feats: dict, n: int, which: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n decoy signatures: the base decoys once, then replicas with small noise (base index kept)."""
    base, _, _ = _decoy_bases(feats, which)
    b = rng.integers(0, len(base), n)
    m = min(n, len(base))
    b[:m] = np.arange(m)
    X = base[b] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
    X[:m] = base[:m]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), b


def _search_excluding(idx, q: np.ndarray, depth: int, banned: np.ndarray):
    """FAISS search leaving out ``banned`` ids (decoys derived from the query's own firearm)."""
    import faiss
    if len(banned) == 0:
        return idx.search(q, depth)
    sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(banned.astype(np.int64)))
    return idx.search(q, depth, params=faiss.SearchParameters(sel=sel))


def _stage1_recall(idx, queries: np.ndarray, fa, decoy_fa: np.ndarray, depths) -> dict[int, list[float]]:
    """Share of each real query's mates within the first ``d`` of ``idx`` (rows: the
    ``len(queries)`` real scans, then decoys labelled ``decoy_fa``), never showing a
    query copies of its own firearm."""
    nreal = len(queries)
    rec: dict[int, list[float]] = {d: [] for d in depths}
    for qi in range(nreal):
        mates = {j for j in range(nreal) if j != qi and fa[j] == fa[qi]}
        if not mates:
            continue
        banned = nreal + np.flatnonzero(decoy_fa == fa[qi])
        _, I = _search_excluding(idx, queries[qi:qi + 1], max(depths) + 1, banned)
        order = [j for j in I[0].tolist() if j != qi]
        for d in depths:
            rec[d].append(_mates_recall(order, mates, d))
    return rec


_cv1 = cv1

WHATS = ["features", "decoys-real", "fadul", "scale", "stage1", "stage2", "vlad", "index", "seeded", "twostep",
         "local"]


class _Parser(argparse.ArgumentParser):
    """Parsing the arguments also selects the cache file (``--cache``, or the default)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        global _cache_file
        ns, rest = super().parse_known_args(args, namespace)
        _cache_file = ns.cache
        return ns, rest


def parser(doc: str | None = None, what: str | None = None) -> argparse.ArgumentParser:
    """The arguments of every search benchmark (``what`` fixed by a script, chosen by ``bench_search.py``)."""
    ap = _Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs=None if what is None else "?", default=what, choices=WHATS)
    ap.add_argument("--cache", type=Path, default=None,
                    help="signature and decoy cache to build (features, decoys-real) or read "
                    "(default benchmarks/out/search_features.pkl)")
    ap.add_argument("--decoy-firearms", type=int, default=150, help="features: synthetic decoy firearms (2 shots each)")
    ap.add_argument("--train-firearms", type=int, default=20,
                    help="features: synthetic firearms (3 shots each, plus an augmented copy) the codebook learns from")
    ap.add_argument("--copies", type=int, default=6, help="decoys-real: augmented copies of each real scan")
    ap.add_argument("--n-features", type=int, default=500, help="stage2: SIFT key points kept")
    ap.add_argument("--time-every", type=int, default=4, help="scale: time every n-th query")
    ap.add_argument("--cached-only", action="store_true", help="stage 3 only where the comparisons are cached")
    ap.add_argument("--shard", default="", help="i/n: run stage 3 of every n-th query only (parallel shards share "
                    "the compare cache; a last run without --shard reports all)")
    ap.add_argument("--decoys", choices=["synth", "real", "both"], default="both")
    ap.add_argument("--shortlist", type=int, default=1000)
    ap.add_argument("--rerank", type=int, default=10)
    ap.add_argument("--min-inliers", type=int, default=6)
    ap.add_argument("--no-seed", dest="seed", action="store_false",
                    help="fadul/scale: stage 3 = full 360-degree compare (the version before seeding)")
    ap.add_argument("--seed-window", type=float, default=18.0, help="stage-3 seeded window half-width, degrees")
    ap.add_argument("--seed-min-inliers", type=int, default=8, help="fewer stage-2 inliers: full compare")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--kinds", nargs="+", default=["flat", "ivf", "ivfsq"])
    ap.add_argument("--windows", type=float, nargs="+", default=[12.0, 18.0, 24.0],
                    help="seeded: stage-3 window half-widths, degrees")
    ap.add_argument("--report-window", type=float, default=18.0, help="seeded: list the differing pairs at this window")
    ap.add_argument("--nonmates", action="store_true", help="seeded: force seeding on each query's best non-mate")
    ap.add_argument("--subset", type=int, nargs="+", default=[150, 200], help="twostep: key points of the first step")
    ap.add_argument("--queries", default=None, help="scale: labelled CSV (file,firearm) of the queries and mates")
    ap.add_argument("--entries", type=int, nargs="+", default=None, help="scale: collection sizes (as --sizes)")
    ap.add_argument("--design", nargs="+", default=["global"],
                    choices=["global", "local", "fused", "vlad4096", "fused4096", "globaldb", "fuseddb"],
                    help="scale/local: stage-1 designs to run")
    ap.add_argument("--votes-per-depth", type=float, default=0.25,
                    help="fused: key-point votes added per place of the signatures' list (the product: 250 for 1,000)")
    ap.add_argument("--local-keypoints", type=int, default=0, help="local: key points indexed per entry (0: model)")
    ap.add_argument("--threads", type=int, default=None,
                    help="scale: time the timed queries' stages in wall seconds on N threads, as `db search "
                         "--threads N` runs them (stage 2 verify_many, stage 3 live compare; default: CPU of one)")
    ap.add_argument("--dump", default=None, help="scale: write per-query lists to DUMP-SIZE-DESIGN.pkl")
    ap.add_argument("--vote-keypoints", type=int, default=0,
                    help="local: strongest query key points that vote, per handedness (0: all)")
    ap.add_argument("--multi-assign", type=int, default=0, help="local: query words per half-descriptor (0: model)")
    ap.add_argument("--caps", type=float, nargs="*", default=None,
                    help="votes: stop lists to try, as multiples of the mean word list (0: none)")
    return ap


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
