"""A FAISS index of signatures with integer ids: exact or approximate, persistent.

Kinds (``SignatureIndex.kind``):

``"flat"``
    Exact inner-product search (``IndexFlatIP`` in ``IndexIDMap2``); the default
    below :data:`FLAT_LIMIT` signatures.  Removal by id.
``"ivf"``
    Inverted file with exact vectors (``IndexIVFFlat``, ``nlist ~ sqrt(n)``,
    ``nprobe`` searched lists); the default from :data:`FLAT_LIMIT` on.  Same memory as
    flat, a fraction of the work per query.  Removal by id.
``"ivfsq"``
    Inverted file with 8-bit scalar-quantised vectors (``IndexIVFScalarQuantizer``,
    a quarter of the memory, near-exact scores); chosen automatically when the raw
    vectors would exceed :data:`MEMORY_LIMIT` bytes.  Removal by id.
``"ivfpq"``
    Inverted file with product-quantised vectors (``IndexIVFPQ``, ``pq_m`` bytes per
    vector).  The smallest, but on these signatures it loses most of the exact top 10
    (see ``benchmarks/results_index.md``); only on request.  Removal by id.
``"hnsw"``
    Hierarchical navigable small-world graph (``IndexHNSWFlat`` in ``IndexIDMap2``).
    FAISS cannot remove from an HNSW graph: removed ids are kept in a tombstone set,
    filtered out of results (the search over-fetches by their number), and the
    owner (:class:`~ballistics.database.CaseDatabase`) rebuilds the index from the
    catalogue when tombstones exceed 10 %.  Only chosen on request.

Persistence: :meth:`SignatureIndex.save` writes ``faiss.write_index`` output to a
temporary file beside the target, fsyncs it and renames it over the target
(``os.replace``), so a reader or a crash sees the old or the new index, never half
of one.  Tombstones and parameters go into a JSON side-car written the same way
*before* the index (so it can only be newer than the index, and its ``ids_digest``
tells which index it belongs to).

References
----------
Johnson, J., Douze, M., Jegou, H. (2019). Billion-scale similarity search with GPUs.
IEEE Trans. Big Data.  Jegou, H., Douze, M., Schmid, C. (2011). Product quantization for
nearest neighbor search. IEEE TPAMI 33.  Malkov, Y., Yashunin, D. (2020). Efficient and
robust approximate nearest neighbor search using HNSW graphs. IEEE TPAMI 42.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._io import atomic_write_bytes
from ..errors import BallisticsError, DatabaseError

logger = logging.getLogger(__name__)

IVF_KINDS = ("ivf", "ivfsq", "ivfpq")

#: Below this many signatures the index is exact (flat).
FLAT_LIMIT = 50_000
#: An IVF index is retrained (rebuilt with new centroids) once it holds this many times
#: the number of vectors it was trained on: centroids learnt on a small collection
#: partition a grown one badly (long inverted lists, lost recall at fixed ``nprobe``).
RETRAIN_GROWTH = 4.0
#: Above this many bytes of raw float32 vectors the automatic choice is IVF-PQ.
MEMORY_LIMIT = 8 * 1024 ** 3
#: An IVF search probes ``max(8, nlist // NPROBE_DIVISOR)`` lists unless told otherwise.
#: Stage 1 takes its short list 1,000 deep, far deeper than the top 10 an IVF setting is
#: usually judged by, and the entries an IVF search loses first are the moderately
#: similar ones far down such a list, where mates of poorly marked scans are: probing a
#: quarter of the lists keeps what the exact search finds there (measured at 10^5 and
#: 10^6 entries, ``benchmarks/results_index.md`` §7.3b) for about a third of its time.
NPROBE_DIVISOR = 4


def default_nprobe(nlist: int) -> int:
    """IVF lists a search probes by default: ``max(8, nlist // NPROBE_DIVISOR)``."""
    return int(max(8, int(nlist) // NPROBE_DIVISOR))
KINDS = ("flat", "ivf", "ivfsq", "ivfpq", "hnsw")


def choose_kind(n: int, dim: int) -> str:
    """Automatic index kind for ``n`` vectors of ``dim`` float32 values."""
    if n < FLAT_LIMIT:
        return "flat"
    if n * dim * 4 > MEMORY_LIMIT:
        return "ivfsq"
    return "ivf"


def ids_digest(ids: np.ndarray) -> str:
    """SHA-256 of the sorted id set (to check an index against the catalogue)."""
    a = np.sort(np.asarray(ids, dtype=np.int64))
    return hashlib.sha256(a.tobytes()).hexdigest()


class SignatureIndex:
    """Signatures (unit float32 vectors) searchable by inner product, with int64 ids.

    Parameters
    ----------
    dim : int
        Length of the vectors.
    kind : {"auto", "flat", "ivf", "ivfsq", "ivfpq", "hnsw"}
        Index structure (see the module docstring); ``"auto"`` picks by the size of the
        first :meth:`build`.
    nprobe : int, optional
        IVF lists searched per query (default: :func:`default_nprobe`, a quarter of them).
    pq_m : int, default 64
        Sub-quantisers of IVF-PQ (bytes per vector).
    hnsw_m, ef_search : int
        HNSW graph degree and search breadth.

    Notes
    -----
    Scores are inner products of unit vectors (cosine similarity, -1..1, higher = more
    alike); ids are int64 chosen by the caller (the catalogue's scan numbers).
    """

    def __init__(self, dim: int, kind: str = "auto", *, nprobe: int | None = None, pq_m: int = 64,
                 hnsw_m: int = 32, ef_search: int = 128, ef_construction: int = 80) -> None:
        if kind != "auto" and kind not in KINDS:
            raise BallisticsError(f"index kind must be 'auto' or one of {KINDS}, got {kind!r}")
        if int(dim) <= 0:
            raise BallisticsError(f"index dimension must be positive, got {dim}")
        self.dim = int(dim)
        self.requested_kind = kind
        self.kind = "flat" if kind == "auto" else kind
        self.nprobe = nprobe
        self.pq_m = int(pq_m)
        self.hnsw_m = int(hnsw_m)
        self.ef_search = int(ef_search)
        self.ef_construction = int(ef_construction)
        self.tombstones: set[int] = set()
        self.trained_size = 0
        self._index: Any = None
        self._new_index(self.kind, train=None)

    # ------------------------------------------------------------------ construction
    def _new_index(self, kind: str, train: np.ndarray | None) -> None:
        import faiss

        d = self.dim
        if kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        elif kind == "hnsw":
            h = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            h.hnsw.efConstruction = self.ef_construction
            h.hnsw.efSearch = self.ef_search
            self._index = faiss.IndexIDMap2(h)
        elif kind in ("ivf", "ivfsq", "ivfpq"):
            if train is None or len(train) == 0:
                raise BallisticsError(f"an {kind!r} index needs training vectors; build() it from data")
            n = len(train)
            nlist = int(max(16, min(2 ** round(math.log2(math.sqrt(n))), n // 39)))
            quant = faiss.IndexFlatIP(d)
            idx: faiss.IndexIVF
            if kind == "ivf":
                idx = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
            elif kind == "ivfsq":
                idx = faiss.IndexIVFScalarQuantizer(quant, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                    faiss.METRIC_INNER_PRODUCT)
            else:
                m = self.pq_m
                while d % m:
                    m -= 1
                idx = faiss.IndexIVFPQ(quant, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            ntrain = min(n, nlist * 64)
            rs = np.random.default_rng(0)
            sample = train if ntrain >= n else train[rs.choice(n, ntrain, replace=False)]
            idx.train(np.ascontiguousarray(sample, dtype=np.float32))
            idx.nprobe = self.nprobe or default_nprobe(nlist)
            self._index = idx
            self.trained_size = int(n)
        else:  # pragma: no cover - validated in __init__
            raise BallisticsError(f"unknown index kind {kind!r}")
        self.kind = kind
        self.tombstones = set()
        if kind not in IVF_KINDS:
            self.trained_size = 0

    @property
    def needs_retrain(self) -> bool:
        """True for an IVF index that has grown :data:`RETRAIN_GROWTH`-fold since it was trained."""
        return self.kind in IVF_KINDS and self.trained_size > 0 and self.ntotal >= RETRAIN_GROWTH * self.trained_size

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto", **kw: Any) -> SignatureIndex:
        """New index holding ``vectors`` under ``ids``; ``kind="auto"`` picks by size."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise BallisticsError(f"vectors must be a 2-D array, got shape {vectors.shape}")
        self = cls(vectors.shape[1], "flat" if kind in ("auto", "ivf", "ivfsq", "ivfpq") else kind, **kw)
        self.requested_kind = kind
        chosen = choose_kind(len(vectors), vectors.shape[1]) if kind == "auto" else kind
        if chosen != "flat":
            self._new_index(chosen, train=vectors)
        self.add(ids, vectors)
        return self

    # ------------------------------------------------------------------ content
    @property
    def ntotal(self) -> int:
        """Number of live vectors (tombstoned HNSW entries excluded)."""
        return int(self._index.ntotal) - len(self.tombstones)

    def ids(self) -> np.ndarray:
        """Sorted int64 array of the live ids."""
        import faiss

        idx = self._index
        if isinstance(idx, faiss.IndexIDMap2) or hasattr(idx, "id_map"):
            a = faiss.vector_to_array(idx.id_map).astype(np.int64)
        else:
            inv = faiss.extract_index_ivf(idx).invlists
            if inv is None:  # pragma: no cover - a trained IVF index always owns its lists
                raise DatabaseError("the IVF index has no inverted lists; rebuild it from the catalogue.")
            parts = []
            for l in range(inv.nlist):
                n = inv.list_size(l)
                if n:
                    parts.append(faiss.rev_swig_ptr(inv.get_ids(l), n).copy())
            a = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if self.tombstones:
            a = a[~np.isin(a, np.fromiter(self.tombstones, np.int64))]
        return np.sort(a)

    def _check(self, ids: np.ndarray, vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        ids = np.ascontiguousarray(np.atleast_1d(np.asarray(ids)).astype(np.int64))
        if vectors is None:
            return ids, None
        v = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if v.shape[1] != self.dim:
            raise BallisticsError(f"vectors have length {v.shape[1]}, the index holds length {self.dim}")
        if len(v) != len(ids):
            raise BallisticsError(f"{len(ids)} ids for {len(v)} vectors")
        if not np.all(np.isfinite(v)):
            raise BallisticsError("vectors contain NaN or infinite values")
        return ids, v

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under int64 ids (ids must not be present already)."""
        ids, v = self._check(ids, vectors)
        if len(ids) == 0:
            return
        revive = [i for i in ids.tolist() if i in self.tombstones]
        if revive:
            raise DatabaseError(f"ids {revive[:5]} were removed from this HNSW index; rebuild it before reusing them")
        self._index.add_with_ids(v, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were removed (HNSW: tombstoned)."""
        import faiss

        ids, _ = self._check(ids)
        if len(ids) == 0:
            return 0
        if self.kind == "hnsw":
            present = set(self.ids().tolist())
            hit = [i for i in ids.tolist() if i in present]
            self.tombstones.update(hit)
            return len(hit)
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    @property
    def tombstone_fraction(self) -> float:
        """Fraction of stored HNSW entries that are removed (0 for other kinds)."""
        n = int(self._index.ntotal)
        return len(self.tombstones) / n if n else 0.0

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors of each query.

        Parameters
        ----------
        queries : numpy.ndarray, shape (q, dim) or (dim,)
        k : int

        Returns
        -------
        scores : numpy.ndarray, shape (q, k), float32
            Inner products (cosine similarities), best first; ``-inf`` where fewer
            than ``k`` entries exist.
        ids : numpy.ndarray, shape (q, k), int64
            Matching ids; -1 where fewer than ``k`` entries exist.
        """
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise BallisticsError(f"query has length {q.shape[1]}, the index holds length {self.dim}")
        k = int(k)
        if k <= 0:
            raise BallisticsError(f"k must be positive, got {k}")
        extra = len(self.tombstones)
        kk = max(1, min(k + extra, int(self._index.ntotal))) if self._index.ntotal else 1
        if self._index.ntotal == 0:
            return (np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64))
        D, I = self._index.search(q, kk)
        if extra:
            dead = np.isin(I, np.fromiter(self.tombstones, np.int64))
            D = np.where(dead, -np.inf, D)
            I = np.where(dead, -1, I)
            order = np.argsort(-D, axis=1, kind="stable")
            D = np.take_along_axis(D, order, 1)
            I = np.take_along_axis(I, order, 1)
        D = np.where(I < 0, -np.inf, D)[:, :k]
        I = I[:, :k]
        if I.shape[1] < k:
            pad = k - I.shape[1]
            D = np.hstack([D, np.full((len(q), pad), -np.inf, np.float32)])
            I = np.hstack([I, np.full((len(q), pad), -1, np.int64)])
        return D.astype(np.float32), I.astype(np.int64)

    def memory_bytes(self) -> int:
        """Estimated memory of the index in bytes (vectors or codes, ids, links, centroids).

        Computed from the structure rather than by serialising, which would need a
        second copy of a large index.
        """
        import faiss

        n, d = int(self._index.ntotal), self.dim
        if self.kind == "flat":
            return n * (4 * d + 8)
        if self.kind == "hnsw":
            return n * (4 * d + 8 + 4 * 2 * self.hnsw_m) + n // max(self.hnsw_m, 1) * 4 * self.hnsw_m
        ivf = faiss.extract_index_ivf(self._index)
        code = {"ivf": 4 * d, "ivfsq": d, "ivfpq": int(getattr(self._index, "code_size", self.pq_m))}[self.kind]
        return n * (code + 8) + int(ivf.nlist) * 4 * d

    def params(self) -> dict[str, Any]:
        """Parameters of the index (recorded in the audit log)."""
        out: dict[str, Any] = {"kind": self.kind, "requested_kind": self.requested_kind, "dim": self.dim}
        if self.kind in ("ivf", "ivfsq", "ivfpq"):
            import faiss
            ivf = faiss.extract_index_ivf(self._index)
            out.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe), trained_size=int(self.trained_size))
            if self.kind == "ivfpq":
                out["pq_m"] = int(self._index.pq.M)
        if self.kind == "hnsw":
            out.update(hnsw_m=self.hnsw_m, ef_search=self.ef_search, ef_construction=self.ef_construction)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        """Write the index atomically to ``path`` (plus ``path + ".json"`` side-car)."""
        import faiss

        p = Path(path)
        data = faiss.serialize_index(self._index).tobytes()
        ids = self.ids()
        meta = {"kind": self.kind, "requested_kind": self.requested_kind, "dim": self.dim,
                "tombstones": sorted(self.tombstones), "count": int(len(ids)),
                "ids_digest": ids_digest(ids), "index_sha256": hashlib.sha256(data).hexdigest(),
                "hnsw_m": self.hnsw_m, "ef_search": self.ef_search, "pq_m": self.pq_m,
                "nprobe": self.nprobe, "trained_size": int(self.trained_size), **(extra or {})}
        atomic_write_bytes(Path(str(p) + ".json"), json.dumps(meta).encode())
        atomic_write_bytes(p, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SignatureIndex:
        """Read an index written by :meth:`save`.

        Raises
        ------
        DatabaseError
            The file is missing, unreadable, or does not match its side-car.
        """
        import faiss

        p = Path(path)
        try:
            raw = p.read_bytes()
            meta = json.loads(Path(str(p) + ".json").read_text())
        except (OSError, ValueError) as exc:
            raise DatabaseError(f"{p}: cannot read the index ({exc}); rebuild it from the catalogue.") from exc
        if meta.get("index_sha256") != hashlib.sha256(raw).hexdigest():
            raise DatabaseError(f"{p}: the index does not match its side-car (interrupted write?); "
                                "rebuild it from the catalogue.")
        try:
            idx = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8).copy())
        except RuntimeError as exc:
            raise DatabaseError(f"{p}: corrupt FAISS index ({exc}); rebuild it from the catalogue.") from exc
        self = cls.__new__(cls)
        self.dim = int(meta["dim"])
        self.kind = meta["kind"]
        self.requested_kind = meta.get("requested_kind", self.kind)
        self.nprobe = meta.get("nprobe")
        self.pq_m = int(meta.get("pq_m", 64))
        self.hnsw_m = int(meta.get("hnsw_m", 32))
        self.ef_search = int(meta.get("ef_search", 128))
        self.ef_construction = 80
        self.tombstones = set(int(t) for t in meta.get("tombstones", []))
        # indices saved before the size was recorded count as trained on what they hold
        self.trained_size = int(meta.get("trained_size", meta.get("count", 0) if self.kind in IVF_KINDS else 0))
        self._index = idx
        if self.kind in IVF_KINDS:  # the serialised nprobe is the saving version's: apply this one's
            ivf = faiss.extract_index_ivf(idx)
            ivf.nprobe = self.nprobe or default_nprobe(ivf.nlist)
        if self.kind == "hnsw":
            # an HNSW index is stored wrapped in an IndexIDMap2 (see _new_index)
            inner = faiss.downcast_index(cast("faiss.IndexIDMap2", idx).index)
            cast("faiss.IndexHNSW", inner).hnsw.efSearch = self.ef_search
        return self
