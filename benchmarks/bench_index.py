"""Benchmarks of cross-case search (``ballistics.retrieval`` and ``ballistics.database``).

Two parts (run both with no argument, or one by name)::

    python benchmarks/bench_index.py fadul [--rerank 10]   # needs ../shared/data
    python benchmarks/bench_index.py scale [--sizes 1000 10000 100000 1000000]

``fadul``: the 40 processed Fadul breech faces go into a fresh ``CaseDatabase``
(``preprocess=False``); each one is then the query against the other 39.  Reported:
recall of its same-firearm mates at 1, 5, 10 -- both the *hit rate* (at least one mate
in the top k) and the *mate recall* (fraction of all its mates in the top k) -- for
retrieval alone and after re-ranking the top candidates with
``ballistics.comparison.compare``, plus query times.  The signature design is justified
by an ablation over its two blocks in the same run.

``scale``: synthetic signatures made from the real ones (no scans are simulated):
a firearm is a real signature's pattern plus a random firearm-specific direction; each
scan of it adds isotropic noise, calibrated so that mates have cosine ~0.40 and
non-mates ~0.20 (real Fadul signatures: 0.30 +- 0.10 and 0.20 +- 0.10; isotropic noise
in 640 dimensions spreads far less than real surfaces do, so a gap of 0.2 keeps the
planted mates findable at a million entries while leaving the exact top 10 full of
distractors).  Each database holds two scans per firearm; 200
queries are third scans of random firearms.  For each size: build time, index memory,
single-query latency, and recall of the planted mates, for the exact index (baseline,
same run) and the approximate ones, plus recall of the exact top 10 by the approximate
index (the ANN's own loss).
"""

from __future__ import annotations

import argparse
import csv
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def _recall(order_labels: list[list[str]], labels: list[str], n_mates: list[int], ks=(1, 5, 10)) -> dict:
    out = {}
    for k in ks:
        hit = np.mean([any(l == lab for l in o[:k]) for o, lab in zip(order_labels, labels)])
        rec = np.mean([sum(l == lab for l in o[:k]) / m for o, lab, m in zip(order_labels, labels, n_mates)])
        out[k] = (float(hit), float(rec))
    return out


def _fmt(r: dict) -> str:
    return "  ".join(f"@{k}: hit {h:.3f} recall {m:.3f}" for k, (h, m) in r.items())


# ------------------------------------------------------------------------------ fadul
def fadul(rerank: int = 10) -> None:
    from ballistics import read_scan
    from ballistics.database import CaseDatabase
    from ballistics.retrieval import _signature as sg

    gt = SHARED / "fadul" / "ground_truth.csv"
    if not gt.exists():
        print(f"fadul: {gt} not found; skipped")
        return
    rows = [r for r in csv.DictReader(open(gt)) if r["file"].startswith("processed/")]
    scans = []
    for r in rows:
        s = read_scan(SHARED / "fadul" / r["file"])
        s.metadata["firearm"] = r["firearm"]
        scans.append(s)
    labels = [s.metadata["firearm"] for s in scans]
    n_mates = [labels.count(l) - 1 for l in labels]
    print(f"fadul: {len(scans)} processed scans, {sum(n_mates) // 2} same-firearm pairs")

    # ablation of the signature blocks (same run)
    t = time.perf_counter()
    blocks = {"polar": [], "vlad": []}
    for s in scans:
        z, m, scale = sg._standardise(s, sg.PARAMS["spacing_m"])
        cb = sg._codebook()
        v1 = sg.vlad(sg.sift_descriptors(z, m)[1], cb["mean"], cb["basis"], cb["centroids"])
        v2 = sg.polar_spectrum(z, m, sg._centre_px(s, m, scale))
        blocks["vlad"].append(v1 / np.linalg.norm(v1))
        blocks["polar"].append(v2 / np.linalg.norm(v2))
    t_sig = (time.perf_counter() - t) / len(scans)
    for name, X in [("polar spectrum only", np.array(blocks["polar"])), ("SIFT-VLAD only", np.array(blocks["vlad"])),
                    ("combined (shipped)", np.hstack([np.array(blocks["vlad"]),
                                                      sg.PARAMS["polar_weight"] * np.array(blocks["polar"])]))]:
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        sim = X @ X.T
        np.fill_diagonal(sim, -np.inf)
        order = np.argsort(-sim, axis=1)
        print(f"  signature {name:22s} {_recall([[labels[j] for j in o] for o in order], labels, n_mates)}"
              .replace("{", "").replace("}", ""))
    print(f"  signature time: {t_sig * 1e3:.0f} ms per scan")

    with tempfile.TemporaryDirectory() as d:
        db = CaseDatabase(Path(d) / "db")
        t = time.perf_counter()
        for s in scans:
            db.add(s, scan_id=s.exhibit_id, case_id="fadul", firearm_id=s.metadata["firearm"], preprocess=False)
        per_scan_ms = (time.perf_counter() - t) / len(scans) * 1e3
        print(f"  ingest: {per_scan_ms:.0f} ms per scan (signature + catalogue + index)")
        fid = {s.exhibit_id: s.metadata["firearm"] for s in scans}
        ret, rr, t_ret, t_rr = [], [], [], []
        for i, s in enumerate(scans):
            t = time.perf_counter()
            hits = db.search(s, k=39, preprocess=False, rerank=0)
            t_ret.append(time.perf_counter() - t)
            assert all(h.scan_id != s.exhibit_id for h in hits)
            ret.append([fid[h.scan_id] for h in hits])
            if rerank:
                t = time.perf_counter()
                hits = db.search(s, k=39, preprocess=False, rerank=rerank)
                t_rr.append(time.perf_counter() - t)
                rr.append([fid[h.scan_id] for h in hits])
                print(f"    {s.exhibit_id:10s} ({labels[i]:8s}) retrieval top5 {ret[-1][:5]} | re-ranked top5 "
                      f"{rr[-1][:5]} cmc {[h.cmc_count for h in hits[:5]]}", flush=True)
        print(f"  retrieval alone      {_fmt(_recall(ret, labels, n_mates))}")
        print(f"  query time (retrieval, signature included): median {np.median(t_ret) * 1e3:.0f} ms")
        if rerank:
            print(f"  re-ranked top {rerank:<4d}   {_fmt(_recall(rr, labels, n_mates))}")
            print(f"  query time with re-ranking of {rerank}: median {np.median(t_rr):.1f} s, "
                  f"max {np.max(t_rr):.1f} s")


# ------------------------------------------------------------------------------ scale
def _real_signatures() -> np.ndarray:
    from ballistics import datasets, read_scan
    from ballistics.retrieval import signature

    paths = sorted((SHARED / "fadul" / "processed").glob("*.x3p")) if SHARED.exists() else []
    scans = [read_scan(p) for p in paths] or datasets.fadul("processed")
    return np.array([signature(s) for s in scans])


def _noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Isotropic-enough noise of expected unit norm per row: uniform, zero mean, variance 1/d
    (three times cheaper to draw than Gaussian at a million rows)."""
    x = rng.random(shape, dtype=np.float32)
    x -= 0.5
    x *= np.float32(np.sqrt(12.0 / shape[1]))
    return x


def _firearms(real: np.ndarray, n_firearms: int, rng: np.random.Generator, a2: float = 1.0,
              chunk: int = 100_000) -> np.ndarray:
    """Firearm centres ``c + sqrt(a2) u_f`` (not normalised), float32.

    ``c`` is the real signatures' common pattern (unit), ``u_f`` a unit direction made
    of a random real signature's residual plus a random vector.
    """
    d = real.shape[1]
    c = real.mean(0)
    c /= np.linalg.norm(c)
    resid = real - c * (real @ c)[:, None]
    resid /= np.linalg.norm(resid, axis=1, keepdims=True)
    F = np.empty((n_firearms, d), np.float32)
    for s in range(0, n_firearms, chunk):
        nf = min(chunk, n_firearms - s)
        u = resid[rng.integers(0, len(real), nf)] + _noise(rng, (nf, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        F[s:s + nf] = c + np.sqrt(a2) * u
    return F


def _scans_of(F: np.ndarray, rng: np.random.Generator, b2: float = 3.0, chunk: int = 100_000) -> np.ndarray:
    """One noisy unit scan signature per firearm centre: cos(mates) ~ (1 + a2) / (1 + a2 + b2)
    = 0.40, cos(non-mates) ~ 1 / (1 + a2 + b2) = 0.20 for the defaults (the real Fadul
    signatures: 0.30 +- 0.10 and 0.20 +- 0.10)."""
    n, d = F.shape
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        x = F[s:s + chunk] + np.sqrt(b2) * _noise(rng, (min(chunk, n - s), d))
        out[s:s + chunk] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def scale(sizes: list[int], n_queries: int = 200, kinds: list[str] | None = None, hnsw_max: int = 100_000) -> None:
    import faiss

    from ballistics.database import SignatureIndex, choose_kind

    faiss.omp_set_num_threads(2)
    real = _real_signatures()
    d = real.shape[1]
    print(f"scale: {len(real)} real signatures of {d} values as seeds; {n_queries} queries; 2 scans per firearm "
          f"in the database + 1 query scan; threads={faiss.omp_get_max_threads()}")
    print(f"{'size':>9s} {'index':>6s} {'build s':>8s} {'MB':>8s} {'ms/query':>9s} {'speed-up':>8s} "
          f"{'mates@10':>8s} {'hit@10':>7s} {'vs exact@10':>11s}")
    for n in sizes:
        rng = np.random.default_rng(n)
        nf = n // 2
        # database: two scans per firearm (rows 2f, 2f+1); queries: a third scan of some firearms
        t = time.perf_counter()
        F = _firearms(real, nf, rng)
        X = np.empty((2 * nf, d), np.float32)
        X[0::2] = _scans_of(F, rng)
        X[1::2] = _scans_of(F, rng)
        qf = rng.choice(nf, n_queries, replace=False)
        Q = _scans_of(F[qf], rng)
        del F
        gc.collect()
        ids = np.arange(len(X), dtype=np.int64)
        mates = [set((2 * f + np.arange(2)).tolist()) for f in qf]
        print(f"{n:>9d}  (synthesis {time.perf_counter() - t:.1f} s, auto kind = {choose_kind(n, d)})", flush=True)
        todo = kinds or ["flat", "ivf", "ivfsq", "ivfpq", "hnsw"]
        exact_top = None
        t_exact = None
        for kind in todo:
            if kind == "hnsw" and n > hnsw_max:
                print(f"{n:>9d} {kind:>6s}  skipped (HNSW build above {hnsw_max} is too slow on 2 cores)")
                continue
            if kind in ("ivf", "ivfsq", "ivfpq") and n < 10_000:
                continue
            t = time.perf_counter()
            idx = SignatureIndex.build(ids, X, kind=kind)
            t_build = time.perf_counter() - t
            mb = idx.memory_bytes() / 1e6
            # single-query latency on one thread (how the database searches), warm-up first
            faiss.omp_set_num_threads(1)
            idx.search(Q[:5], 50)
            lat = []
            I_all = []
            for q in Q:
                t = time.perf_counter()
                _, I = idx.search(q[None], 50)
                lat.append(time.perf_counter() - t)
                I_all.append(I[0])
            I_all = np.array(I_all)
            faiss.omp_set_num_threads(2)
            ms = float(np.median(lat) * 1e3)
            if kind == "flat":
                exact_top = I_all
                t_exact = ms
            mate_rec = np.mean([len(mates[i] & set(I_all[i, :10].tolist())) / 2 for i in range(n_queries)])
            hit = np.mean([bool(mates[i] & set(I_all[i, :10].tolist())) for i in range(n_queries)])
            vs = (np.mean([len(set(exact_top[i, :10].tolist()) & set(I_all[i, :10].tolist())) / 10
                           for i in range(n_queries)]) if exact_top is not None else float("nan"))
            sp = f"{t_exact / ms:8.1f}" if t_exact else f"{'-':>8s}"
            print(f"{n:>9d} {kind:>6s} {t_build:8.1f} {mb:8.1f} {ms:9.2f} {sp} {mate_rec:8.3f} {hit:7.3f} {vs:11.3f}"
                  f"   {idx.params()}", flush=True)
            del idx
            gc.collect()
        print(f"{'':>9s} peak RSS so far {_rss_gb():.2f} GB", flush=True)
        del X, Q
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", nargs="?", choices=["fadul", "scale", "all"], default="all")
    ap.add_argument("--rerank", type=int, default=10, help="candidates re-ranked by compare (0: none)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kinds", nargs="*", default=None)
    a = ap.parse_args(argv)
    if a.part in ("fadul", "all"):
        fadul(a.rerank)
    if a.part in ("scale", "all"):
        scale(a.sizes, a.queries, a.kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
