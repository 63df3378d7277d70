"""Stage-1 signature variants among decoys: recall per byte, a larger VLAD, latency up to 1 M.

Run: ``python benchmarks/search_stage1.py {stage1|vlad|index} [options]``
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
    _decoy_pool,
    _load,
    _stage1_recall,
    augment,
    log,
    parser,
    real_scans,
    setup_logging,
    synth_scans,
)


def _variants(X: np.ndarray) -> dict[str, tuple[np.ndarray, str, int]]:
    """Stage-1 signature variants from the cached 640-d vectors: name -> (vectors, storage, bytes/entry)."""
    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    vl, po = unit(X[:, :512]), unit(X[:, 512:])
    return {"fused-640 f32": (X, "flat", 2560), "fused-640 SQ8": (X, "sq8", 640),
            "VLAD-512 f32": (vl, "flat", 2048), "VLAD-512 SQ8": (vl, "sq8", 512),
            "polar-128 f32": (po, "flat", 512), "polar-128 SQ8": (po, "sq8", 128)}


def cmd_stage1(a: argparse.Namespace) -> None:
    """Stage-1 variants: mate recall at depth vs bytes per entry, real queries among decoys."""
    import faiss
    feats = _load()
    fa = feats["firearms"]
    nreal = len(fa)
    depths = [10, 50, 200, 1000]
    for size in a.sizes:
        rng = np.random.default_rng(size)
        Xd, base = _decoy_pool(feats, size - nreal, a.decoys, rng)
        dfa_arr = np.array([str(x) for x in _decoy_bases(feats, a.decoys)[2]])
        X = np.vstack([feats["real"]["sig_synth"].astype(np.float32), Xd])
        print(f"\n## stage-1 variants at {size:,} entries ({nreal} real + decoys: {a.decoys}); "
              "mate recall within depth")
        print(f"{'variant':<16}{'B/entry':>8}" + "".join(f"{'d=' + str(d):>8}" for d in depths))
        for name, (V, kind, nb) in _variants(X).items():
            if kind == "flat":
                idx = faiss.IndexFlatIP(V.shape[1])
            else:
                idx = faiss.IndexScalarQuantizer(V.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
                idx.train(V)
            idx.add(V)
            rec = _stage1_recall(idx, V[:nreal], fa, dfa_arr[base], depths)
            print(f"{name:<16}{nb:>8}" + "".join(f"{np.mean(rec[d]):8.3f}" for d in depths))


def cmd_vlad(a: argparse.Namespace) -> None:
    """Larger VLAD (synth-trained PCA-64 x 64 words = 4096 values) vs the 640-d signature, among decoys."""
    import faiss

    from ballistics.retrieval._signature import PARAMS, _centre_px, _standardise, polar_spectrum, sift_descriptors, vlad
    _cv1()
    feats = _load()
    p = dict(PARAMS)

    def desc(s):
        z, m, sc = _standardise(s, p["spacing_m"])
        return sift_descriptors(z, m, p)[1], polar_spectrum(z, m, _centre_px(s, m, sc), p)

    rng = np.random.default_rng(7)
    train = synth_scans(20, 3, seed=1001)
    train = train + [augment(s, rng) for s in train]
    Xt = np.vstack([desc(s)[0] for s in train]).astype(np.float64)
    mean = Xt.mean(0)
    _, _, vt = np.linalg.svd(Xt - mean, full_matrices=False)
    cbs = {}
    for dim, words in ((64, 64), (32, 16)):
        basis = vt[:dim].T
        km = faiss.Kmeans(dim, words, niter=25, seed=1)
        km.train(((Xt - mean) @ basis).astype(np.float32))
        cbs[f"VLAD pca{dim}x{words}"] = (basis, km.centroids.astype(np.float64))
    scans, *_ = real_scans()
    rng = np.random.default_rng(11)
    aug = [augment(s, rng) for s in scans for _ in range(a.copies)]
    groups = {"real": scans, "decoy": synth_scans(a.decoy_firearms, 2, seed=5000), "decoy_real": aug}
    D = {g: [desc(s) for s in ss] for g, ss in groups.items()}
    log.info("descriptors of %d surfaces done", sum(len(v) for v in D.values()))

    def sig(g, name, polar_w):
        basis, cent = cbs[name]
        out = []
        for d, pol in D[g]:
            v = vlad(d, mean, basis, cent)
            v = v / max(np.linalg.norm(v), 1e-12)
            if polar_w:
                pv = pol / max(np.linalg.norm(pol), 1e-12)
                v = np.concatenate([v, polar_w * pv])
                v = v / np.linalg.norm(v)
            out.append(v)
        return np.array(out, np.float32)

    fa = feats["firearms"]
    nreal = len(fa)
    depths = [10, 50, 200, 1000]
    dfa = np.array([str(x) for x in [None] * len(D["decoy"]) + feats["decoy_real"]["firearm"]])
    for name in cbs:
        for pw in (0.0, 0.5):
            R = sig("real", name, pw)
            B = np.vstack([sig("decoy", name, pw), sig("decoy_real", name, pw)])
            for size in a.sizes:
                rng2 = np.random.default_rng(size)
                n = size - nreal
                b = rng2.integers(0, len(B), n)
                b[: min(n, len(B))] = np.arange(min(n, len(B)))
                X = B[b] + rng2.normal(0, 0.02 * np.sqrt(640 / B.shape[1]), (n, B.shape[1])).astype(np.float32)
                X[: min(n, len(B))] = B[: min(n, len(B))]
                X /= np.linalg.norm(X, axis=1, keepdims=True)
                idx = faiss.IndexScalarQuantizer(B.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
                idx.train(X[:20000])
                idx.add(np.vstack([R, X]))
                rec = _stage1_recall(idx, R, fa, dfa[b], depths)
                print(f"{name + (' +polar' if pw else ''):<24}{B.shape[1]:>6} B/entry(SQ8) {size:>8,}"
                      + "".join(f"{np.mean(rec[d]):8.3f}" for d in depths), flush=True)


def cmd_index(a: argparse.Namespace) -> None:
    """Stage-1 latency and memory at 10 k .. 1 M entries (decoy replicas, say so)."""
    import faiss

    from ballistics.retrieval._faiss_index import SignatureIndex
    feats = _load()
    faiss.omp_set_num_threads(1)
    R = feats["real"]["sig_synth"].astype(np.float32)
    Q = R[:40]
    for size in a.sizes:
        rng = np.random.default_rng(size)
        Xd, _ = _decoy_pool(feats, size - len(R), a.decoys, rng)
        X = np.vstack([R, Xd])
        del Xd
        for kind in a.kinds:
            try:
                t = time.perf_counter()
                si = SignatureIndex.build(np.arange(len(X)), X, kind=kind)
                build = time.perf_counter() - t
                ts, tc = [], []
                for q in Q:
                    w, c = time.perf_counter(), time.process_time()
                    si.search(q[None], 1000)
                    ts.append(time.perf_counter() - w)
                    tc.append(time.process_time() - c)
                mem = si.memory_bytes() if hasattr(si, "memory_bytes") else float("nan")
                print(f"{size:>9,} {kind:<8} build {build:6.1f} s  "
                      f"search depth 1000: median {1e3 * np.median(ts):7.2f} ms wall "
                      f"{1e3 * np.median(tc):7.2f} ms CPU  memory {mem / 1e6:8.1f} MB ({mem / len(X):.0f} B/entry)")
            except Exception as exc:  # report and go on to the next index kind
                print(f"{size:>9,} {kind:<8} failed: {exc}")


COMMANDS = {"stage1": cmd_stage1, "vlad": cmd_vlad, "index": cmd_index}


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "stage1").parse_args(argv)
    setup_logging()
    COMMANDS[a.what](a)


if __name__ == "__main__":
    main()
