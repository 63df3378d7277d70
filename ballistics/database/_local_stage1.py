"""The key points' inverted file of a ``local-sift`` database, kept in step as entries arrive.

The vocabulary of the ``local-sift`` model is fixed (trained once on synthetic surfaces
and shipped), so adding entries never retrains anything: a new entry's postings are only
appended.  The inverted file is held in memory as two parts:

* the **main** part, built from every stored entry when the database is first searched;
* a **delta** part, rebuilt from the entries added since (small, so cheap to rebuild).

An entry's stage-1 score depends only on its own postings, so searching both parts and
merging their best entries gives exactly the answer of one index over all entries.
The main part is saved in the database's ``index`` folder (:data:`MAIN_FILE`, written
atomically by a writable handle), so a process that opens the database later loads it
instead of building it again; whatever changed since it was saved goes to the delta.
A saved file that is damaged or of another model is ignored and rebuilt.
Removed entries stay in the parts until the next full rebuild and are dropped from the
answers.  The schedule: the main part is rebuilt from scratch when the delta has grown
past :data:`MERGE_SHARE` of it, or when more than :data:`MERGE_SHARE` of its entries
have been removed.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_open
from .._json import canonical_json
from ..retrieval._local_index import LocalIndex, index_from_blobs, model_hash
from ..retrieval._models import LOCAL_BLOB
from ..retrieval._verify_sift import Keypoints

__all__ = ["LocalStage1", "Parts", "MERGE_SHARE", "MAIN_FILE"]

logger = logging.getLogger(__name__)

#: The delta is merged into the main part when it holds this share of the main part's
#: entries (or when this share of them has been removed).
MERGE_SHARE = 0.10
#: File of the saved main part, in the database's ``index`` folder.
MAIN_FILE = "local-sift-main.npz"


def _local_nums(cat: Any) -> set[int]:
    rows = cat.con.execute("SELECT num FROM blobs WHERE name=?", (LOCAL_BLOB,)).fetchall()
    return {int(r[0]) for r in rows}


def _save(path: Path, idx: LocalIndex, nums: set[int]) -> None:
    """Write the main part and the entries it holds (atomically: a reader never sees half a file)."""
    with atomic_open(path) as fh:
        np.savez(fh, offsets=idx.offsets, ids=idx.ids, codes=idx.codes, angles=idx.angles,
                 nums=np.array(sorted(nums), np.int64),
                 params=np.frombuffer(canonical_json(idx.params).encode(), np.uint8),
                 model=np.frombuffer(model_hash(idx.params).encode(), np.uint8))


def _load(path: Path) -> tuple[LocalIndex, set[int]] | None:
    """The saved main part, or None when it is missing, damaged or of another model."""
    try:
        with np.load(path, allow_pickle=False) as z:
            params = json.loads(bytes(z["params"]).decode())
            if bytes(z["model"]).decode() != model_hash() or model_hash(params) != model_hash():
                return None
            idx = LocalIndex(params)
            offsets, ids, codes, angles = z["offsets"], z["ids"], z["codes"], z["angles"]
            nums = {int(n) for n in z["nums"]}
        ok = (offsets.shape == idx.offsets.shape and offsets.dtype == np.int64 and ids.ndim == codes.ndim == 1
              and len(ids) == len(codes) == len(angles) == int(offsets[-1]) and offsets[0] == 0
              and bool(np.all(np.diff(offsets) >= 0)) and codes.dtype == np.uint32 and angles.dtype == np.uint8
              and ids.dtype in (np.int32, np.int64))  # an id of no live entry is dropped by the search
        if not ok:
            return None
        idx.offsets, idx.ids, idx.codes, idx.angles = offsets, ids, codes, angles
        idx.ntotal = len(nums)
        return idx, nums
    except Exception as exc:  # noqa: BLE001 - a derived cache: any damage means "build it again"
        logger.warning("local stage 1: saved inverted file %s not used (%s); rebuilding it", path, exc)
        return None


def _index(cat: Any, nums: set[int]) -> LocalIndex:
    ids, blobs = [], []
    for n in sorted(nums):
        b = cat.get_blob(n, LOCAL_BLOB)
        if b is not None:
            ids.append(n)
            blobs.append(b)
    return index_from_blobs(ids, blobs)


@dataclass(frozen=True)
class Parts:
    """One consistent state of the inverted file: main part, delta, removed entries."""

    main: LocalIndex | None = None
    delta: LocalIndex | None = None
    stale: frozenset[int] = frozenset()

    def search(self, query: Keypoints | tuple[Keypoints, ...], depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``depth`` live entries of both parts: ``(scores, nums)``, shape ``(1, depth)``.

        Same answer as :meth:`LocalIndex.search` over one index of every live entry (ties
        by entry number)."""
        extra = len(self.stale)
        parts = [p.search(query, depth + extra) for p in (self.main, self.delta) if p is not None]
        S = np.concatenate([s[0] for s, _ in parts]) if parts else np.zeros(0, np.float32)
        ids = np.concatenate([i[0] for _, i in parts]) if parts else np.zeros(0, np.int64)
        ok = (ids >= 0) & ~np.isin(ids, np.fromiter(self.stale, np.int64, len(self.stale)))
        S, ids = S[ok], ids[ok]
        top = np.lexsort((ids, -S))[:depth]
        out_s = np.full((1, depth), -np.inf, np.float32)
        out_i = np.full((1, depth), -1, np.int64)
        out_s[0, :len(top)] = S[top]
        out_i[0, :len(top)] = ids[top]
        return out_s, out_i


@dataclass
class LocalStage1:
    """The two-part inverted file of one database (see the module's docstring); thread-safe.

    ``path``: the saved main part (None: kept in memory only); ``writable``: whether this
    handle may write it."""

    path: Path | None = None
    writable: bool = False
    generation: int = -1
    parts: Parts = field(default_factory=Parts)
    main_nums: set[int] = field(default_factory=set)
    delta_nums: set[int] = field(default_factory=set)
    rebuilds: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sync(self, cat: Any) -> Parts:
        """The parts in step with the catalogue (rebuilt only when its generation moved)."""
        with self._lock:
            gen = cat.generation()
            if gen == self.generation and self.parts.main is not None:
                return self.parts
            live = {int(r["num"]) for r in cat.list_scans()} & _local_nums(cat)
            if self.parts.main is None and self.path is not None and self.path.is_file():
                saved = _load(self.path)
                if saved is not None:
                    self.parts, self.main_nums, self.delta_nums = Parts(saved[0]), saved[1], set()
            known = self.main_nums | self.delta_nums
            stale, new = known - live, live - known
            limit = MERGE_SHARE * max(len(self.main_nums), 1)
            if self.parts.main is None or len(stale) > limit or len(self.delta_nums | new) > limit:
                self.main_nums, self.delta_nums = live, set()
                self.parts = Parts(_index(cat, live))
                self.rebuilds += 1
                logger.info("local stage 1: inverted file built from %d entries", len(live))
                if self.writable and self.path is not None:
                    try:
                        _save(self.path, self.parts.main, live)  # type: ignore[arg-type]
                    except OSError as exc:  # a cache: searching goes on without it
                        logger.warning("local stage 1: could not save %s (%s)", self.path, exc)
            else:
                if new:
                    self.delta_nums = (self.delta_nums | new) & live
                delta = _index(cat, self.delta_nums) if new or self.parts.delta is None and self.delta_nums \
                    else self.parts.delta
                self.parts = Parts(self.parts.main, delta, frozenset(stale))
            self.generation = gen
            return self.parts
