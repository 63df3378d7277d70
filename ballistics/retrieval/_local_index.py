"""Stage 1 by local descriptors: an inverted file of SIFT key points voted with their orientations.

Every stored surface contributes its ``n_keypoints`` strongest SIFT key points (the
ones stage 2 stores, strongest first).  Each descriptor (RootSIFT, Arandjelovic &
Zisserman 2012) is quantised to one of 65,536 visual words by a product of two
256-word k-means over its two halves (an inverted multi-index, Babenko & Lempitsky
2012), and keeps a 32-bit Hamming embedding of its residual (signs of a fixed random
projection, Jegou, Douze & Schmid 2008).  A posting is 9 bytes: entry id, Hamming code,
orientation quantised to 256 levels; the word is implicit in the posting's list.

A query's key points (as given and mirrored, the two computed for stage 2 anyway) are
looked up in their nearest words; a posting whose code lies within ``hamming``
bits of the query's votes for ``(entry, handedness, rotation bin)``, where the
rotation is the difference of the two key points' orientations -- the weak geometric
consistency of Jegou et al. (2008): key points of two scans of one breech face agree on
one rotation, chance matches spread over all of them.  Two interleaved bin grids
(offset by half a bin) avoid losing votes at a bin boundary.  An entry's stage-1
score is its best bin's weighted vote count, so it does not depend on how many other
entries are stored: the recall of a mate does not decay as the collection grows, only
the chance scores of more non-mates compete with it.

The vocabulary and projection are fixed parameters of the model
(:mod:`._local_vocab`, trained on ``ballistics.synth`` surfaces only).

References
----------
Jegou, H., Douze, M., Schmid, C. (2008). Hamming embedding and weak geometric
consistency for large scale image search. ECCV.
Babenko, A., Lempitsky, V. (2012). The inverted multi-index. CVPR.
Arandjelovic, R., Zisserman, A. (2012). Three things everyone should know to improve
object retrieval. CVPR.
Philbin, J. et al. (2007). Object retrieval with large vocabularies and fast spatial
matching. CVPR.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._json import canonical_json
from .._threads import resolve_threads
from ..errors import BallisticsError
from ..kernels._local_votes import local_votes
from ._verify_sift import Keypoints

__all__ = ["LocalIndex", "LOCAL_PARAMS", "LOCAL_VERSION", "encode", "train_vocabulary", "vocabulary"]

LOCAL_VERSION = "local-sift-imi256x2-he32-wgc/v1"

#: Parameters of the local-descriptor stage 1 (chosen on synthetic surfaces and
#: real-derived decoys, see ``benchmarks/results_index.md``).
LOCAL_PARAMS: dict[str, Any] = {
    "version": LOCAL_VERSION,
    "n_keypoints": 300,     # strongest stored key points indexed per entry
    "words_per_half": 256,  # 256 x 256 = 65,536 visual words
    "he_bits": 32,
    "hamming": 9,           # a posting votes when its code is within this many bits
    "multi_assign": 2,      # query descriptors look up the nearest 2 x 2 words
    "rotation_bins": 24,    # 15-degree bins (two grids offset by half a bin)
    "sigma": 6.0,           # vote weight exp(-(h / sigma)^2) for Hamming distance h
}

_VOCAB: dict[str, np.ndarray] | None = None


def vocabulary() -> dict[str, np.ndarray]:
    """The shipped vocabulary: ``c1``, ``c2`` (256 x 64 each) and ``proj`` (32 x 128), float32."""
    global _VOCAB
    if _VOCAB is None:
        from ._local_vocab import load
        _VOCAB = load()
    return _VOCAB


def model_hash(params: dict[str, Any] | None = None) -> str:
    """SHA-256 of the parameters and the vocabulary (what makes two indices comparable)."""
    p = LOCAL_PARAMS if params is None else params
    h = hashlib.sha256(canonical_json(p).encode())
    for k, v in sorted(vocabulary().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v, "<f4").tobytes())
    return h.hexdigest()


def _rootsift(desc: np.ndarray) -> np.ndarray:
    d = np.asarray(desc, np.float32)
    d = d / np.maximum(d.sum(1, keepdims=True), 1e-6)
    return np.sqrt(d)


def _nearest(x: np.ndarray, c: np.ndarray, m: int) -> np.ndarray:
    d = (c * c).sum(1)[None, :] - 2.0 * x @ c.T
    if m == 1:
        return d.argmin(1)[:, None]
    return np.argsort(d, axis=1)[:, :m]


def encode(kp: Keypoints, n: int | None = None, multi: int = 1, vocab: dict[str, np.ndarray] | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Words, Hamming codes and quantised orientations of the ``n`` strongest key points.

    Returns
    -------
    words : numpy.ndarray, shape (n, multi * multi), int64
        Nearest words (the nearest first).
    codes : numpy.ndarray, shape (n, multi * multi), uint32
        Hamming code of the residual to each word.
    angles : numpy.ndarray, shape (n,), uint8
        Orientation in 1/256 of a turn.
    """
    v = vocabulary() if vocab is None else vocab
    c1, c2, proj = v["c1"], v["c2"], v["proj"]
    d = kp.descriptors if n is None else kp.descriptors[:n]
    ang = kp.angles if n is None else kp.angles[:n]
    if len(d) == 0:
        return np.zeros((0, multi * multi), np.int64), np.zeros((0, multi * multi), np.uint32), np.zeros(0, np.uint8)
    x = _rootsift(d)
    h = x.shape[1] // 2
    a = _nearest(x[:, :h], c1, multi)
    b = _nearest(x[:, h:], c2, multi)
    K = len(c2)
    words = (a[:, :, None] * K + b[:, None, :]).reshape(len(x), -1)
    resid = x[:, None, :] - np.concatenate([c1[a][:, :, None, :].repeat(multi, 2),
                                            c2[b][:, None, :, :].repeat(multi, 1)], -1).reshape(len(x), -1, 2 * h)
    bits = (resid @ proj.T) > 0                                   # (n, m*m, 32)
    codes = (bits.astype(np.uint64) << np.arange(bits.shape[-1], dtype=np.uint64)).sum(-1).astype(np.uint32)
    q = (np.round(np.asarray(ang, np.float64) * 256.0 / 360.0).astype(np.int64) % 256).astype(np.uint8)
    return words.astype(np.int64), codes, q


class LocalIndex:
    """Inverted file of key-point postings with orientation-consistent voting.

    Build with :meth:`build` (key points per entry) or :meth:`from_postings`; search
    with :meth:`search` given the query's key points (as given, mirrored).
    """

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = {**LOCAL_PARAMS, **(params or {})}
        nw = int(self.params["words_per_half"]) ** 2
        self.offsets = np.zeros(nw + 1, np.int64)
        self.ids = np.zeros(0, np.int64)
        self.codes = np.zeros(0, np.uint32)
        self.angles = np.zeros(0, np.uint8)
        self.ntotal = 0

    # ------------------------------------------------------------------ build
    @classmethod
    def from_postings(cls, words: np.ndarray, ids: np.ndarray, codes: np.ndarray, angles: np.ndarray,
                      params: dict[str, Any] | None = None) -> LocalIndex:
        """Index from flat postings (one row per key point: word, entry id, code, angle)."""
        self = cls(params)
        order = np.argsort(words, kind="stable")
        nw = len(self.offsets) - 1
        cnt = np.bincount(np.asarray(words)[order], minlength=nw)
        self.offsets[1:] = np.cumsum(cnt)
        self.ids = np.asarray(ids)[order].astype(np.int64 if np.max(ids, initial=0) >= 2**31 else np.int32)
        self.codes = np.asarray(codes, np.uint32)[order]
        self.angles = np.asarray(angles, np.uint8)[order]
        self.ntotal = int(len(np.unique(self.ids))) if len(self.ids) else 0
        return self

    @classmethod
    def build(cls, ids: Sequence[int], kps: Sequence[Keypoints], params: dict[str, Any] | None = None
              ) -> LocalIndex:
        """Index the key points of every entry (``ids[i]`` owns ``kps[i]``)."""
        p = {**LOCAL_PARAMS, **(params or {})}
        W, I, C, A = [], [], [], []
        for i, kp in zip(ids, kps):
            w, c, a = encode(kp, int(p["n_keypoints"]))
            W.append(w[:, 0])
            C.append(c[:, 0])
            A.append(a)
            I.append(np.full(len(a), int(i), np.int64))
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
        return cls.from_postings(cat(W, np.int64), cat(I, np.int64), cat(C, np.uint32), cat(A, np.uint8), p)

    def memory_bytes(self) -> int:
        """Bytes held by the postings and the word offsets."""
        return int(self.ids.nbytes + self.codes.nbytes + self.angles.nbytes + self.offsets.nbytes)

    def save(self, path: str | Path) -> None:
        """Write the postings to ``path`` (``.npz``)."""
        np.savez(Path(path), offsets=self.offsets, ids=self.ids, codes=self.codes, angles=self.angles,
                 params=np.frombuffer(canonical_json(self.params).encode(), np.uint8))

    @classmethod
    def load(cls, path: str | Path) -> LocalIndex:
        """Read an index written by :meth:`save`."""
        import json
        with np.load(Path(path), allow_pickle=False) as z:
            self = cls(json.loads(bytes(z["params"]).decode()))
            self.offsets, self.ids, self.codes, self.angles = z["offsets"], z["ids"], z["codes"], z["angles"]
        self.ntotal = int(len(np.unique(self.ids))) if len(self.ids) else 0
        return self

    # ----------------------------------------------------------------- search
    def search(self, query: Keypoints | Sequence[Keypoints], depth: int, exclude: Any = None,
               max_list: int | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``depth`` entries for the query's key points (as given, then mirrored).

        Every posting in a query descriptor's ``multi_assign ** 2`` nearest words whose
        code lies within ``hamming`` bits votes with weight ``exp(-(h / sigma) ** 2)``
        for (entry, handedness, rotation bin) on both bin grids; a descriptor (one key
        point in one of its words) votes at most once per bin, with its best weight.  The
        votes are counted in compiled loops (:func:`ballistics.kernels._local_votes.local_votes`)
        in memory proportional to the votes, not to the entries stored.

        Parameters
        ----------
        query : Keypoints or sequence of Keypoints
            The query's key points; a second set is its mirror image (handedness 1).
        depth : int
            Entries returned (fewer when fewer entries got any vote; padded with id -1).
        exclude : array-like of int, optional
            Entry ids never returned.
        max_list : int, optional
            Word lists longer than this many postings are not scanned (a stop list of
            the most frequent words, Sivic & Zisserman 2003); None scans every list.
        threads : int, optional
            Threads scanning the postings (default: the engine's compute threads, one
            unless :func:`ballistics.threads` says otherwise); the answer does not
            depend on it.

        Returns
        -------
        scores, ids : numpy.ndarray, shape (1, depth)
            Weighted vote count of each entry's best (handedness, rotation bin), best
            first; equal scores by ascending id.
        """
        qs = (query,) if isinstance(query, Keypoints) else tuple(query)
        if not all(isinstance(q, Keypoints) for q in qs):
            raise BallisticsError("LocalIndex.search needs Keypoints (see ballistics.retrieval.query_keypoints).")
        p = self.params
        m = int(p["multi_assign"])
        W, C, A, H = [], [], [], []
        for hand, q in enumerate(qs[:2]):
            w, c, a = encode(q, None, m)
            W.append(w.ravel())
            C.append(c.ravel())
            A.append(np.repeat(a, m * m))
            H.append(np.full(w.size, hand, np.uint8))
        cat = (lambda xs, dt: np.ascontiguousarray(np.concatenate(xs), dt) if xs else np.zeros(0, dt))
        qw, qc, qa, qh = cat(W, np.int64), cat(C, np.uint32), cat(A, np.uint8), cat(H, np.uint8)
        if max_list is not None:
            keep = (self.offsets[qw + 1] - self.offsets[qw]) <= int(max_list)
            qw, qc, qa, qh = qw[keep], qc[keep], qa[keep], qh[keep]
        ex = None if exclude is None else np.asarray(exclude, np.int64).ravel()
        weights = _vote_weights(int(p["hamming"]), float(p["sigma"]))
        ids = self.ids if self.ids.dtype in (np.int32, np.int64) else self.ids.astype(np.int64)
        best, eids = local_votes(np.ascontiguousarray(self.offsets, np.int64), np.ascontiguousarray(ids),
                                 np.ascontiguousarray(self.codes, np.uint32),
                                 np.ascontiguousarray(self.angles, np.uint8),
                                 qw, qc, qa, qh,
                                 weights, int(p["rotation_bins"]), int(depth), ex, resolve_threads(threads))
        S = np.full((1, depth), -np.inf, np.float32)
        I = np.full((1, depth), -1, np.int64)
        S[0, :len(best)] = best
        I[0, :len(eids)] = eids
        return S, I


def _vote_weights(hamming: int, sigma: float) -> np.ndarray:
    """Vote weight ``exp(-(h / sigma) ** 2)`` (float32) for Hamming distances ``h = 0 ... hamming``."""
    h = np.arange(min(int(hamming), 32) + 1)          # empty when hamming < 0: nothing votes
    return np.exp(-(h.astype(np.float32) / float(sigma)) ** 2).astype(np.float32)


def train_vocabulary(descriptors: np.ndarray, words_per_half: int = 256, he_bits: int = 32, seed: int = 1
                     ) -> dict[str, np.ndarray]:
    """Train the two half-vocabularies (k-means on RootSIFT halves) and the random projection.

    Used once to make :mod:`._local_vocab` from synthetic surfaces' SIFT descriptors;
    kept public so a lab can train its own (a new model version).
    """
    import faiss

    x = _rootsift(descriptors)
    h = x.shape[1] // 2
    out = {}
    for name, part in (("c1", x[:, :h]), ("c2", x[:, h:])):
        km = faiss.Kmeans(h, words_per_half, niter=20, seed=seed)
        km.train(np.ascontiguousarray(part, np.float32))
        assert km.centroids is not None
        out[name] = km.centroids.astype(np.float32)
    # stored as uint8 (1/255 steps): the shipped vocabulary is these exact values
    for name in ("c1", "c2"):
        out[name] = np.clip(np.rint(out[name] * 255.0), 0, 255).astype(np.float32) / 255.0
    out["proj"] = projection(he_bits, x.shape[1], seed)
    return out


def projection(bits: int, dim: int, seed: int) -> np.ndarray:
    """Random +-1 projection (exact integers: the same on every machine), float32 (bits, dim)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(bits, dim)) * 2 - 1).astype(np.float32)


# ----------------------------------------------------------------------------- per-entry blob
_BLOB_MAGIC = b"BLI1"


def local_blob(kp: Keypoints, params: dict[str, Any] | None = None) -> bytes:
    """Per-entry data of the local stage 1: the postings of the ``n_keypoints`` strongest key points.

    ``magic, n, words (uint32), codes (uint32), angles (uint8)`` -- 9 bytes per key point.
    """
    import struct
    p = {**LOCAL_PARAMS, **(params or {})}
    w, c, a = encode(kp, int(p["n_keypoints"]))
    n = len(a)
    return (_BLOB_MAGIC + struct.pack("<I", n) + w[:, 0].astype("<u4").tobytes() + c[:, 0].astype("<u4").tobytes()
            + a.astype(np.uint8).tobytes())


def read_local_blob(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(words, codes, angles) of a :func:`local_blob`; raises BallisticsError when malformed."""
    import struct
    b = bytes(blob)
    if len(b) < 8 or b[:4] != _BLOB_MAGIC:
        raise BallisticsError("not a local stage-1 blob (bad header)")
    (n,) = struct.unpack("<I", b[4:8])
    if len(b) != 8 + 9 * n:
        raise BallisticsError(f"local stage-1 blob truncated or padded: {len(b)} bytes, expected {8 + 9 * n}")
    w = np.frombuffer(b, "<u4", n, 8).astype(np.int64)
    c = np.frombuffer(b, "<u4", n, 8 + 4 * n).astype(np.uint32)
    a = np.frombuffer(b, np.uint8, n, 8 + 8 * n).copy()
    if n and int(w.max()) >= int(LOCAL_PARAMS["words_per_half"]) ** 2:
        raise BallisticsError("local stage-1 blob names a word outside the vocabulary")
    return w, c, a


def index_from_blobs(ids: Sequence[int], blobs: Sequence[bytes], params: dict[str, Any] | None = None
                     ) -> LocalIndex:
    """A :class:`LocalIndex` of stored :func:`local_blob` s (``ids[i]`` owns ``blobs[i]``)."""
    W, I, C, A = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.uint32)], [np.zeros(0, np.uint8)]
    for i, b in zip(ids, blobs):
        w, c, a = read_local_blob(b)
        W.append(w)
        C.append(c)
        A.append(a)
        I.append(np.full(len(a), int(i), np.int64))
    return LocalIndex.from_postings(np.concatenate(W), np.concatenate(I), np.concatenate(C), np.concatenate(A),
                                    params)
