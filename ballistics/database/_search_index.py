"""The search index of a case database: FAISS indices kept in step with the catalogue.

The catalogue is the source of truth; each part's index file is a cache of its
signatures.  :meth:`SearchIndex.sync` loads, patches (few ids missing or extra) or
rebuilds the in-memory indices whenever the catalogue's generation counter moved;
:meth:`SearchIndex.apply` applies one committed change right after its commit.
Indices of :data:`SAVE_ALWAYS_BELOW` entries or more are not rewritten after every
change but every :data:`SAVE_EVERY` changes, :data:`SAVE_INTERVAL_S` seconds and on
close; the lag is patched in the same way by the next process that opens them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatabaseError
from ..retrieval import FLAT_LIMIT, SignatureIndex, choose_kind, signature_dim
from ._entry import PARTS

logger = logging.getLogger(__name__)

#: Indices smaller than this are written to disk after every change.
SAVE_ALWAYS_BELOW = 100_000
#: Larger indices are written after this many changes, ``SAVE_INTERVAL_S`` seconds, a
#: rebuild, :meth:`CaseDatabase.flush` or :meth:`CaseDatabase.close`; whatever is not
#: written yet is patched in from the catalogue by the next process that opens it.
SAVE_EVERY = 1000
SAVE_INTERVAL_S = 60.0
#: Fewer signatures than this are always indexed flat (exact), whatever kind was asked
#: for: an IVF index needs enough vectors to train its centroids.
IVF_MIN = 1000


class SearchIndex:
    """The FAISS index of each part, kept in step with the catalogue.

    Parameters
    ----------
    root : path-like
        The database directory (index files in ``root/index``).
    catalogue : Catalogue
        The source of truth.
    lock : WriterLock
        Taken to write index files outside an ongoing write.
    readonly : bool
        Never write index files (lagging indices are patched in memory only).
    index_kind : str
        FAISS index kind (``"auto"``: exact below 50 000 signatures, IVF above).
    """

    def __init__(self, root: str | Path, catalogue: Any, lock: Any, *, readonly: bool, index_kind: str) -> None:
        self.root = Path(root)
        self.catalogue = catalogue
        self._lock = lock
        self.readonly = readonly
        self.index_kind = index_kind
        self._indices: dict[str, SignatureIndex | None] = {p: None for p in PARTS}
        self._generation = -1
        self.repaired: list[str] = []
        #: ``(part, scan number)`` of stored signatures found damaged (not finite).
        self.damaged: set[tuple[str, int]] = set()
        self._pending: dict[str, int] = {p: 0 for p in PARTS}
        self._last_save: dict[str, float] = {}

    def get(self, part: str) -> SignatureIndex | None:
        """The in-memory index of ``part`` (None when no signature of it is stored)."""
        return self._indices.get(part)

    def search(self, part: str, vector: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the ``depth`` nearest stored signatures of ``part`` (clamped to the entries).

        Returns empty arrays when the part has no index.
        """
        idx = self._indices.get(part)
        if idx is None or idx.ntotal == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        return idx.search(vector[None, :], max(1, min(int(depth), idx.ntotal)))

    def stats(self) -> dict[str, Any]:
        """Parameters and count of each part's index."""
        return {p: (idx.params() | {"count": idx.ntotal}) for p, idx in self._indices.items() if idx is not None}

    def _finite(self, part: str, ids: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop stored signatures that are not finite (damaged rows); remember them in :attr:`damaged`."""
        ok = np.isfinite(vecs).all(axis=1) & (vecs.shape[1] == signature_dim())
        if not ok.all():
            bad = ids[~ok].tolist()
            self.damaged.update((part, int(n)) for n in bad)
            logger.warning("%s: %d stored %s signature(s) are damaged (not finite); left out of the index: %s",
                           self.root, len(bad), part, bad[:10])
        return ids[ok], vecs[ok]

    def rebuild(self, kind: str | None, gen: int) -> dict[str, Any]:
        """Rebuild every part's index from the catalogue and save it (writer lock held by the caller).

        Returns
        -------
        dict
            Index parameters and count per part.
        """
        if kind is not None:
            self.index_kind = kind
        out = {}
        for part in PARTS:
            ids = self.catalogue.live_signature_ids(part)
            if len(ids) == 0 and not self.index_path(part).exists():
                continue
            idx = self.build(part, self.want_kind(len(ids), None))
            idx.save(self.index_path(part), {"generation": gen})
            self._indices[part] = idx
            out[part] = idx.params() | {"count": idx.ntotal}
        self._generation = gen
        return out

    def invalidate(self) -> None:
        """Forget the in-memory indices (rebuilt from the catalogue on the next :meth:`sync`)."""
        self._indices = {p: None for p in PARTS}
        self._generation = -1

    def index_path(self, part: str) -> Path:
        return self.root / "index" / f"{part}.faiss"

    def load(self, part: str) -> SignatureIndex | None:
        p = self.index_path(part)
        if not p.exists():
            return None
        for attempt in range(3):
            try:
                idx = SignatureIndex.load(p)
                if idx.dim != signature_dim():
                    logger.warning("%s: index dimension %d differs from signatures (%d); rebuilding", p, idx.dim,
                                   signature_dim())
                    return None
                return idx
            except DatabaseError as exc:
                if attempt == 2:
                    logger.warning("%s; rebuilding the index from the catalogue", exc)
                    self.repaired.append(f"{part}: unreadable index rebuilt ({exc})")
                    return None
                time.sleep(0.1)  # a writer may be replacing it right now
        return None  # pragma: no cover

    def want_kind(self, n: int, current: SignatureIndex | None) -> str:
        if self.index_kind != "auto":
            return self.index_kind
        want = choose_kind(n, signature_dim())
        if (current is not None and current.kind in ("ivf", "ivfsq", "ivfpq") and want == "flat"
                and n >= FLAT_LIMIT // 2):
            return current.kind  # hysteresis: do not flip back and forth around the limit
        return want

    def build(self, part: str, kind: str) -> SignatureIndex:
        ids, vecs = [], []
        for i, v in self.catalogue.iter_signatures(part):
            ids.append(i)
            vecs.append(v)
        if ids:
            I, V = self._finite(part, np.concatenate(ids), np.vstack(vecs))
        else:
            I, V = np.zeros(0, np.int64), np.zeros((0, signature_dim()), np.float32)
        if kind in ("ivf", "ivfsq", "ivfpq") and len(I) < IVF_MIN:
            kind = "flat"
        return SignatureIndex.build(I, V, kind=kind)

    def sync(self, persist: bool) -> None:
        """Make the in-memory indices agree with the catalogue (load, patch or rebuild)."""
        with self.catalogue.read() as _:
            gen = self.catalogue.generation()
            if gen == self._generation:
                return
            cat_ids = {p: self.catalogue.live_signature_ids(p) for p in PARTS}
        for part in PARTS:
            idx = self._indices[part]
            if idx is None:
                idx = self.load(part)
            want_ids = cat_ids[part]
            changed = False
            reason = ""
            if idx is None:
                if len(want_ids) == 0 and not self.index_path(part).exists():
                    self._indices[part] = None
                    continue
                reason = "no usable index"
                idx = None
            else:
                have = idx.ids()
                missing = np.setdiff1d(want_ids, have)
                extra = np.setdiff1d(have, want_ids)
                if len(missing) or len(extra):
                    reason = f"index lagged the catalogue ({len(missing)} missing, {len(extra)} extra)"
                    if len(missing) + len(extra) <= 0.2 * len(want_ids) + 100:
                        if len(extra):
                            idx.remove(extra)
                        for ids_, v in self.catalogue.iter_signatures(part, missing):
                            idx.add(*self._finite(part, ids_, v))
                        changed = True
                    else:
                        idx = None
                if idx is not None and idx.needs_retrain:
                    reason = reason or (f"IVF index grew from {idx.trained_size} trained to {idx.ntotal} "
                                        "vectors; retrained")
                    idx = self.build(part, self.want_kind(len(want_ids), idx))
                    changed = True
                if idx is not None and (idx.tombstone_fraction > 0.1 or
                                        idx.kind != self.want_kind(len(want_ids), idx)):
                    if not (idx.kind == "flat" and len(want_ids) < IVF_MIN):
                        reason = reason or f"index kind {idx.kind} -> {self.want_kind(len(want_ids), idx)}"
                        idx = None
            if idx is None:
                idx = self.build(part, self.want_kind(len(want_ids), None))
                changed = True
            if reason:
                logger.info("%s/%s: %s; %s", self.root, part, reason, "repaired" if changed else "")
                if persist:
                    self.repaired.append(f"{part}: {reason}")
            self._indices[part] = idx
            if persist and (changed or self._pending.get(part)):
                idx.save(self.index_path(part), {"generation": gen})
                self._pending[part] = 0
                self._last_save[part] = time.monotonic()
                if reason:
                    with self.catalogue.transaction():
                        self.catalogue.audit("repair_index", None, {"part": part, "reason": reason,
                                                                     "index": idx.params()})
        self._generation = gen

    def apply(self, gen: int, add: dict[str, tuple[int, np.ndarray]] | None = None,
               remove: int | None = None) -> None:
        """Apply one committed change (catalogue generation ``gen``) to the indices and save them.

        Called with the writer lock held, right after the commit, on indices that were in
        sync with the catalogue before it; anything unexpected falls back to :meth:`_sync`.
        """
        try:
            if self._generation != gen - 1:
                self.sync(persist=True)
                return
            self._apply_parts(gen, add, remove)
        except Exception as exc:  # the commit stands: the catalogue is the truth, the index is repaired later
            logger.error("%s: the change is committed but the index could not be updated (%s: %s); it will "
                         "be rebuilt from the catalogue on the next open or search", self.root,
                         type(exc).__name__, exc)
            self.invalidate()

    def _apply_parts(self, gen: int, add: dict[str, tuple[int, np.ndarray]] | None, remove: int | None) -> None:
        for part in PARTS:
            idx = self._indices[part]
            touched = False
            if add and part in add:
                num, vec = add[part]
                if idx is None:
                    idx = SignatureIndex(signature_dim(), "flat")
                idx.add(np.array([num]), vec[None, :])
                touched = True
            if remove is not None and idx is not None:
                touched = idx.remove(np.array([remove])) > 0 or touched
            if not touched or idx is None:
                continue
            n = idx.ntotal
            retrain = idx.needs_retrain
            if retrain or idx.tombstone_fraction > 0.1 or (idx.kind != self.want_kind(n, idx)
                                                           and not (idx.kind == "flat" and n < IVF_MIN)):
                why = (f"IVF index grew from {idx.trained_size} trained to {n} vectors" if retrain
                       else "tombstones or index kind")
                idx = self.build(part, self.want_kind(n, idx if retrain else None))
                with self.catalogue.transaction():
                    self.catalogue.audit("rebuild_index", None, {"part": part, "index": idx.params(),
                                                                  "count": idx.ntotal, "reason": why})
                self._pending[part] = SAVE_EVERY  # save a rebuilt index at once
            self._indices[part] = idx
            self._pending[part] += 1
            if (n < SAVE_ALWAYS_BELOW or self._pending[part] >= SAVE_EVERY
                    or time.monotonic() - self._last_save.get(part, 0.0) > SAVE_INTERVAL_S):
                self._save(part, gen)
        self._generation = gen

    def _save(self, part: str, gen: int) -> None:
        idx = self._indices[part]
        if idx is not None:
            idx.save(self.index_path(part), {"generation": gen})
        self._pending[part] = 0
        self._last_save[part] = time.monotonic()

    def flush(self) -> None:
        """Write index changes that are still only in memory (see :data:`SAVE_EVERY`)."""
        if self.readonly or not any(self._pending.values()):
            return
        with self._lock.hold():
            self.sync(persist=True)
            for part in PARTS:
                if self._pending[part]:
                    self._save(part, self._generation)

