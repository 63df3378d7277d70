"""The strongest global signature measured, as a stage-1 design of the scale benchmarks.

``vlad4096``: VLAD of SIFT descriptors with a PCA-64 basis and 64 words (4,096 values,
Jegou et al. 2012), 8-bit scalar-quantised in FAISS (4,096 B per entry).  The basis
and the codebook are trained on ``ballistics.synth`` surfaces only (the same training
set as the shipped-layout codebook of ``search_features.py``), never on a queried
firearm.  Its signatures of the real scans and of the base decoys are cached in
``benchmarks/out/search_vlad4096.pkl`` (the decoys are regenerated exactly as
``search_features.py`` makes them: same seeds, same order).  Replicas: the base
signature plus Gaussian noise of the same total norm as the 640-value replicas.

Used by ``search_scale.py`` and ``search_local.py`` (``--design vlad4096`` and
``fused4096``: the key points' votes with this signature instead of the 640-value one).
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
from _common import OUT, _decoy_bases, augment, log, real_scans, synth_scans

CACHE4096 = OUT / "search_vlad4096.pkl"
DIM, WORDS = 64, 64


def _descriptors(s, p):
    from ballistics.retrieval._signature import _standardise, sift_descriptors
    z, m, _ = _standardise(s, p["spacing_m"])
    return sift_descriptors(z, m, p)[1]


def build_cache(feats: dict, copies: int = 6, decoy_firearms: int = 150) -> dict:
    """Train the 4,096-value codebook on synthetic surfaces and sign every real scan and base decoy."""
    import faiss

    from ballistics.retrieval._signature import PARAMS, vlad
    p = dict(PARAMS)
    c0 = time.process_time()
    rng = np.random.default_rng(7)
    train = synth_scans(20, 3, seed=1001)
    train = train + [augment(s, rng) for s in train]
    X = np.vstack([_descriptors(s, p) for s in train]).astype(np.float64)
    mean = X.mean(0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    basis = vt[:DIM].T
    km = faiss.Kmeans(DIM, WORDS, niter=25, seed=1)
    km.train(((X - mean) @ basis).astype(np.float32))
    cent = km.centroids.astype(np.float64)

    def sig(s) -> np.ndarray:
        v = vlad(_descriptors(s, p), mean, basis, cent)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    scans, _, firearms, _ = real_scans()
    real = np.array([sig(s) for s in scans])
    synth = np.array([sig(s) for s in synth_scans(decoy_firearms, 2, seed=5000)])
    rng = np.random.default_rng(11)
    aug = np.array([sig(augment(s, rng)) for s, _ in zip(scans, firearms) for _ in range(copies)])
    out = {"real": real, "decoy": synth, "decoy_real": aug, "cpu_s": time.process_time() - c0}
    with open(CACHE4096, "wb") as f:
        pickle.dump(out, f)
    log.info("vlad4096 signatures of %d real scans and %d base decoys cached (%.0f s CPU)",
             len(real), len(synth) + len(aug), out["cpu_s"])
    return out


def load_cache(feats: dict) -> dict:
    if CACHE4096.exists():
        with open(CACHE4096, "rb") as f:
            return pickle.load(f)
    return build_cache(feats)


class Vlad4096Stage1:
    """Inner product over 4,096-value VLAD signatures, SQ8 (decoys: base + noise replicas)."""

    name = "vlad-4096 (flat SQ8)"

    def __init__(self, col, size: int, a: argparse.Namespace) -> None:
        import faiss
        c4 = load_cache(col.feats)
        if a.queries:
            raise SystemExit("vlad4096: outside queries are not supported (their signatures are not cached)")
        base_sig, _, _ = _decoy_bases(col.feats, a.decoys)   # the 640-value bases: order and count
        B = np.vstack(([c4["decoy"]] if a.decoys in ("synth", "both") else [])
                      + ([c4["decoy_real"]] if a.decoys in ("real", "both") else [])).astype(np.float32)
        assert len(B) == len(base_sig), (len(B), len(base_sig))
        rng = np.random.default_rng(size)   # the same base indices as the other designs
        n = size - col.n
        b = rng.integers(0, len(B), n)
        m = min(n, len(B))
        b[:m] = np.arange(m)
        c = time.perf_counter()
        noise = np.random.default_rng(size + 1)
        sigma = 0.02 * np.sqrt(640 / B.shape[1])

        def chunk(lo: int, hi: int) -> np.ndarray:  # made in chunks: 10^6 x 4,096 float32 would be 16 GB
            X = B[b[lo:hi]] + noise.normal(0, sigma, (hi - lo, B.shape[1])).astype(np.float32)
            base = np.arange(lo, hi) < m
            X[base] = B[b[lo:hi][base]]
            return X / np.linalg.norm(X, axis=1, keepdims=True)

        self.q = c4["real"].astype(np.float32)
        self.idx = faiss.IndexScalarQuantizer(B.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        first = chunk(0, min(n, 20000))
        self.idx.train(first)
        self.idx.add(self.q)
        self.idx.add(first)
        for lo in range(len(first), n, 50000):
            self.idx.add(chunk(lo, min(n, lo + 50000)))
        self.build_s = time.perf_counter() - c
        self.bytes_per_entry = float(B.shape[1])
        self.base, self.col = b, col

    def search(self, qi: int, depth: int) -> list[int]:
        from _common import _search_excluding
        banned = self.col.banned(qi, self.base)
        _, I = _search_excluding(self.idx, self.q[qi:qi + 1], depth + 1, banned)
        return [j for j in I[0].tolist() if j != qi and j >= 0]
