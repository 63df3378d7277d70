"""``CaseDatabase``: a directory holding the catalogue, the scans and the FAISS index.

Layout of a database directory::

    PATH/catalogue.sqlite          SQLite catalogue (WAL mode): the source of truth
    PATH/scans/ab/abcdef....x3p    scans and extracted surfaces, named by SHA-256
                                   of their height array (``Scan.checksum``)
    PATH/index/<part>.faiss(.json) FAISS index of each part's signatures
    PATH/write.lock                one writer at a time (``fcntl.flock``)

Write protocol (``add``): the surfaces and signatures are computed first, without
any lock; then, holding the writer lock, the x3p files are written (temporary file,
fsync, rename), the catalogue rows (scan, files, signatures, audit entry) are
committed in one transaction, and finally the index is updated and written
atomically.  A crash before the commit leaves at most unreferenced scan files
(reported by :meth:`CaseDatabase.verify`, reused by a later add of the same scan);
a crash after the commit leaves an index that lags the catalogue, which every open
detects (ids compared with the catalogue's) and repairs from the stored signatures.
Indices of :data:`SAVE_ALWAYS_BELOW` entries or more are not rewritten after every
change (a million-entry index is 2.6 GB) but every :data:`SAVE_EVERY` changes,
:data:`SAVE_INTERVAL_S` seconds and on :meth:`CaseDatabase.close`; the lag is patched
in the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._version import __version__
from ..errors import BallisticsError, ComparisonError, DatabaseError
from ..scan import Scan, _jsonable
from ._catalogue import Catalogue, now
from ._faiss_index import FLAT_LIMIT, SignatureIndex, choose_kind
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION, signature, signature_dim

logger = logging.getLogger(__name__)

PARTS = ("breech_face", "firing_pin")
#: Indices smaller than this are written to disk after every change.
SAVE_ALWAYS_BELOW = 100_000
#: Larger indices are written after this many changes, ``SAVE_INTERVAL_S`` seconds, a
#: rebuild, :meth:`CaseDatabase.flush` or :meth:`CaseDatabase.close`; whatever is not
#: written yet is patched in from the catalogue by the next process that opens it.
SAVE_EVERY = 1000
SAVE_INTERVAL_S = 60.0
#: Weights of the parts when their retrieval scores are fused.
PART_WEIGHTS = {"breech_face": 0.7, "firing_pin": 0.3}


@dataclass
class SearchHit:
    """One candidate of a database search.

    Attributes
    ----------
    scan_id, case_id, exhibit_id, firearm_id : str or None
        Identifiers of the stored scan.
    rank : int
        1-based position in the returned list.
    retrieval_score : float
        Fused cosine similarity of the signatures (-1..1, higher = more alike).
    score : float or None
        ``Comparison.score`` of the re-ranking comparison (higher = more similar);
        None when the candidate was not re-ranked.
    cmc_count : int or None
        Congruent matching cells found by the comparison; None when not re-ranked.
    comparison : dict or None
        ``Comparison.to_dict()`` (registration, parameters...), or ``{"error": ...}``
        when the comparison failed; None when not re-ranked.
    """

    scan_id: str
    case_id: str | None
    exhibit_id: str | None
    firearm_id: str | None
    rank: int
    retrieval_score: float
    score: float | None = None
    cmc_count: int | None = None
    comparison: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary."""
        return _jsonable(asdict(self))


@dataclass
class PreparedEntry:
    """A scan ready to be stored: its surfaces and signatures (picklable)."""

    scan: Scan
    surfaces: dict[str, Scan]
    signatures: dict[str, np.ndarray]
    preprocess: bool
    notes: dict[str, Any] = field(default_factory=dict)


def _load_scan(scan: Scan | str | os.PathLike[str]) -> Scan:
    if isinstance(scan, Scan):
        return scan
    if isinstance(scan, (str, os.PathLike)):
        from ..reading import read_scan
        return read_scan(scan)
    raise BallisticsError(f"expected a ballistics.Scan or a file path, got {type(scan).__name__}")


def _default_extractors() -> dict[str, Callable[[Scan], Scan]]:
    try:
        from ..features import extract_breech_face, extract_firing_pin
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise BallisticsError("preprocess=True needs ballistics.features.extract_breech_face, which this "
                              "installation lacks; pass already extracted surfaces with preprocess=False.") from exc
    return {"breech_face": extract_breech_face, "firing_pin": extract_firing_pin}


def prepare_entry(scan: Scan | str | os.PathLike[str], preprocess: bool = True,
                  extractors: dict[str, Callable[[Scan], Scan]] | None = None) -> PreparedEntry:
    """Read (if a path), extract (if ``preprocess``) and sign a scan.

    The expensive, lock-free half of :meth:`CaseDatabase.add`; a module-level function
    so that ``ballistics db add --jobs N`` can run it in worker processes.

    Parameters
    ----------
    scan : Scan or path
        A whole-primer scan (``preprocess=True``) or an extracted breech face
        (``preprocess=False``).
    preprocess : bool
        Extract the breech face (required) and the firing pin (optional: a failure is
        logged and recorded) before computing signatures.
    extractors : dict, optional
        ``{"breech_face": f, "firing_pin": g}`` replacing the default
        :func:`ballistics.extract_breech_face` / :func:`ballistics.extract_firing_pin`.

    Returns
    -------
    PreparedEntry
    """
    s = _load_scan(scan)
    s.require_valid(0.0, "scan")
    notes: dict[str, Any] = {}
    if preprocess:
        ex = extractors or _default_extractors()
        surfaces = {"breech_face": ex["breech_face"](s)}
        if "firing_pin" in ex:
            try:
                surfaces["firing_pin"] = ex["firing_pin"](s)
            except BallisticsError as exc:
                logger.warning("%s: no firing pin signature (%s)", s.name, exc)
                notes["firing_pin_error"] = str(exc)
    else:
        surfaces = {"breech_face": s}
    sigs = {}
    for part, surf in surfaces.items():
        try:
            sigs[part] = signature(surf)
        except BallisticsError as exc:
            if part == "breech_face":
                raise
            logger.warning("%s: no %s signature (%s)", s.name, part, exc)
            notes[f"{part}_error"] = str(exc)
    surfaces = {p: v for p, v in surfaces.items() if p in sigs}
    return PreparedEntry(scan=s, surfaces=surfaces, signatures=sigs, preprocess=bool(preprocess), notes=notes)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class CaseDatabase:
    """A lab's collection of scans, searchable for earlier exhibits from the same firearm.

    Parameters
    ----------
    path : path-like
        Directory of the database; created (with an empty catalogue) when missing
        and ``create`` is true.
    create : bool, default True
        Create a new database if ``path`` holds none.
    readonly : bool, default False
        Refuse every change (searching, listing and verifying still work).
    index_kind : {"auto", "flat", "ivf", "ivfsq", "ivfpq", "hnsw"}
        FAISS index structure; ``"auto"`` is exact below 50 000 signatures and IVF
        above (see :mod:`ballistics.index._faiss_index`).
    extractors : dict, optional
        Replacement surface extractors (``{"breech_face": f, "firing_pin": g}``).
    compare, prepare : callable, optional
        Replacement comparison functions (default :func:`ballistics.comparison.compare`
        and :func:`ballistics.comparison.prepare`), used to re-rank candidates.
    lock_timeout : float, default 600
        Seconds to wait for another writer to finish.

    Examples
    --------
    >>> from ballistics import datasets
    >>> db = CaseDatabase("/tmp/lab-db")                               # doctest: +SKIP
    >>> for s in datasets.fadul("processed"):                          # doctest: +SKIP
    ...     db.add(s, scan_id=s.exhibit_id, case_id="C1", preprocess=False)
    >>> db.search(datasets.fadul("processed")[0], k=3, preprocess=False)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False,
                 index_kind: str = "auto", extractors: dict[str, Callable[[Scan], Scan]] | None = None,
                 compare: Callable[..., Any] | None = None, prepare: Callable[[Scan], Any] | None = None,
                 lock_timeout: float = 600.0) -> None:
        self.path = Path(path)
        cat = self.path / "catalogue.sqlite"
        if not cat.exists():
            if not create or readonly:
                raise DatabaseError(f"{self.path}: not a case database (no catalogue.sqlite); create it with "
                                    "`ballistics db init PATH`.")
            if self.path.exists() and not self.path.is_dir():
                raise DatabaseError(f"{self.path}: exists and is not a directory.")
            if self.path.exists() and any(p.name not in (".", "write.lock") for p in self.path.iterdir()):
                raise DatabaseError(f"{self.path}: directory is not empty and holds no case database; "
                                    "choose an empty or new directory.")
            self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "scans").mkdir(exist_ok=True) if not readonly else None
        (self.path / "index").mkdir(exist_ok=True) if not readonly else None
        self.readonly = readonly
        self.lock_timeout = float(lock_timeout)
        self._extractors = extractors
        self._compare = compare
        self._prepare = prepare
        usable = False
        if readonly or cat.exists():
            try:
                self.catalogue = Catalogue(cat)
                usable = self.catalogue.get_parameter("signature") is not None
            except DatabaseError:
                if readonly:
                    raise
                # e.g. an init killed before its first commit: finish creating it below
        if not readonly and not usable:
            with self._writer():
                self.catalogue = Catalogue(cat, create=True)
                if self.catalogue.get_parameter("signature") is None:
                    with self.catalogue.transaction():
                        self.catalogue.set_parameter("signature", SIGNATURE_PARAMS)
                        self.catalogue.set_parameter("index_kind", index_kind)
                        self.catalogue.audit("init", None, {"signature": SIGNATURE_PARAMS, "index_kind": index_kind,
                                                            "path": str(self.path)})
        stored = self.catalogue.get_parameter("signature") or {}
        if stored.get("version", SIGNATURE_VERSION) != SIGNATURE_VERSION:
            raise DatabaseError(f"{self.path}: signatures were made with {stored.get('version')!r}, this library "
                                f"makes {SIGNATURE_VERSION!r}; use a matching ballistics version.")
        self.index_kind = index_kind if index_kind != "auto" else (self.catalogue.get_parameter("index_kind") or "auto")
        self._indices: dict[str, SignatureIndex | None] = {p: None for p in PARTS}
        self._generation = -1
        self._repaired: list[str] = []
        self._pending: dict[str, int] = {p: 0 for p in PARTS}
        self._last_save: dict[str, float] = {}
        if readonly:
            self._sync(persist=False)
        else:
            with self._writer(wait=False) as got:
                # repair on disk if no other writer is busy; otherwise only in memory
                self._sync(persist=bool(got))

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Write pending index changes and close the catalogue connection."""
        try:
            self.flush()
        except BallisticsError as exc:  # the catalogue holds everything; the index is repaired on open
            logger.warning("%s: index not flushed on close (%s)", self.path, exc)
        self.catalogue.close()

    def __enter__(self) -> "CaseDatabase":
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _writer(self, wait: bool = True) -> Iterator[bool]:
        """Exclusive writer lock (``fcntl.flock`` on ``PATH/write.lock``).

        Yields True when the lock is held; with ``wait=False`` yields False at once if
        another process holds it.  The kernel releases the lock of a killed process.
        """
        if getattr(self, "readonly", False):
            raise DatabaseError(f"{self.path}: opened read-only; open it without readonly=True to change it.")
        fd = os.open(self.path / "write.lock", os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.lock_timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait:
                        yield False
                        return
                    if time.monotonic() > deadline:
                        raise DatabaseError(f"{self.path}: another process has been writing for more than "
                                            f"{self.lock_timeout:.0f} s; try again later.") from None
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _index_path(self, part: str) -> Path:
        return self.path / "index" / f"{part}.faiss"

    def _load_index(self, part: str) -> SignatureIndex | None:
        p = self._index_path(part)
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
                    self._repaired.append(f"{part}: unreadable index rebuilt ({exc})")
                    return None
                time.sleep(0.1)  # a writer may be replacing it right now
        return None  # pragma: no cover

    def _want_kind(self, n: int, current: SignatureIndex | None) -> str:
        if self.index_kind != "auto":
            return self.index_kind
        want = choose_kind(n, signature_dim())
        if current is not None and current.kind in ("ivf", "ivfsq", "ivfpq") and want == "flat" and n >= FLAT_LIMIT // 2:
            return current.kind  # hysteresis: do not flip back and forth around the limit
        return want

    def _build(self, part: str, kind: str) -> SignatureIndex:
        ids, vecs = [], []
        for i, v in self.catalogue.iter_signatures(part):
            ids.append(i)
            vecs.append(v)
        if ids:
            I, V = np.concatenate(ids), np.vstack(vecs)
        else:
            I, V = np.zeros(0, np.int64), np.zeros((0, signature_dim()), np.float32)
        if kind in ("ivf", "ivfsq", "ivfpq") and len(I) < 1000:
            kind = "flat"
        return SignatureIndex.build(I, V, kind=kind)

    def _sync(self, persist: bool) -> None:
        """Make the in-memory indices agree with the catalogue (load, patch or rebuild)."""
        with self.catalogue.read() as _:
            gen = self.catalogue.generation()
            if gen == self._generation:
                return
            cat_ids = {p: self.catalogue.live_signature_ids(p) for p in PARTS}
        for part in PARTS:
            idx = self._indices[part]
            if idx is None:
                idx = self._load_index(part)
            want_ids = cat_ids[part]
            changed = False
            reason = ""
            if idx is None:
                if len(want_ids) == 0 and not self._index_path(part).exists():
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
                            idx.add(ids_, v)
                        changed = True
                    else:
                        idx = None
                if idx is not None and (idx.tombstone_fraction > 0.1 or
                                        idx.kind != self._want_kind(len(want_ids), idx)):
                    if not (idx.kind == "flat" and len(want_ids) < 1000):
                        reason = reason or f"index kind {idx.kind} -> {self._want_kind(len(want_ids), idx)}"
                        idx = None
            if idx is None:
                idx = self._build(part, self._want_kind(len(want_ids), None))
                changed = True
            if reason:
                logger.info("%s/%s: %s; %s", self.path, part, reason, "repaired" if changed else "")
                if persist:
                    self._repaired.append(f"{part}: {reason}")
            self._indices[part] = idx
            if persist and (changed or self._pending.get(part)):
                idx.save(self._index_path(part), {"generation": gen})
                self._pending[part] = 0
                self._last_save[part] = time.monotonic()
                if reason:
                    with self.catalogue.transaction():
                        self.catalogue.audit("repair_index", None, {"part": part, "reason": reason,
                                                                     "index": idx.params()})
        self._generation = gen

    def _apply(self, gen: int, add: dict[str, tuple[int, np.ndarray]] | None = None,
               remove: int | None = None) -> None:
        """Apply one committed change (catalogue generation ``gen``) to the indices and save them.

        Called with the writer lock held, right after the commit, on indices that were in
        sync with the catalogue before it; anything unexpected falls back to :meth:`_sync`.
        """
        try:
            if self._generation != gen - 1:
                self._sync(persist=True)
                return
            self._apply_parts(gen, add, remove)
        except Exception as exc:  # the commit stands: the catalogue is the truth, the index is repaired later
            logger.error("%s: the change is committed but the index could not be updated (%s: %s); it will "
                         "be rebuilt from the catalogue on the next open or search", self.path,
                         type(exc).__name__, exc)
            self._indices = {p: None for p in PARTS}
            self._generation = -1

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
            if idx.tombstone_fraction > 0.1 or (idx.kind != self._want_kind(n, idx)
                                                 and not (idx.kind == "flat" and n < 1000)):
                idx = self._build(part, self._want_kind(n, None))
                with self.catalogue.transaction():
                    self.catalogue.audit("rebuild_index", None, {"part": part, "index": idx.params(),
                                                                  "count": idx.ntotal})
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
            idx.save(self._index_path(part), {"generation": gen})
        self._pending[part] = 0
        self._last_save[part] = time.monotonic()

    def flush(self) -> None:
        """Write index changes that are still only in memory (see :data:`SAVE_EVERY`)."""
        if self.readonly or not any(self._pending.values()):
            return
        with self._writer():
            self._sync(persist=True)
            for part in PARTS:
                if self._pending[part]:
                    self._save(part, self._generation)

    # ------------------------------------------------------------------ files
    def _scan_relpath(self, checksum: str) -> str:
        return f"scans/{checksum[:2]}/{checksum}.x3p"

    def _store_file(self, scan: Scan) -> tuple[str, str]:
        from ..reading import write_x3p

        sha = scan.checksum
        rel = self._scan_relpath(sha)
        p = self.path / rel
        if not (p.exists() and p.stat().st_size > 0):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_x3p(scan, p)
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
            _fsync_dir(p.parent)
        return sha, rel

    def load_scan(self, scan_id: str, role: str = "breech_face") -> Scan:
        """Read a stored surface back.

        Parameters
        ----------
        scan_id : str
        role : {"original", "breech_face", "firing_pin"}

        Raises
        ------
        DatabaseError
            Unknown scan or role, or the stored file no longer matches its hash.
        """
        from ..reading import read_scan

        row = self.catalogue.scan_by_id(scan_id)
        if row is None:
            raise DatabaseError(f"{self.path}: no scan {scan_id!r}.")
        files = self.catalogue.files_of(row["num"])
        if role not in files:
            raise DatabaseError(f"scan {scan_id!r} has no stored {role!r} surface (has {sorted(files)}).")
        f = files[role]
        s = read_scan(self.path / f["path"])
        if s.checksum != f["sha256"]:
            raise DatabaseError(f"{self.path / f['path']}: stored surface of {scan_id!r} was altered "
                                "(its hash no longer matches the catalogue).")
        return s

    # ------------------------------------------------------------------ changes
    def add(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, scan_id: str | None = None, *,
            case_id: str | None = None, exhibit_id: str | None = None, firearm_id: str | None = None,
            preprocess: bool = True, on_duplicate: str = "error") -> str:
        """Store a scan, its extracted surfaces and signatures, and index it.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            A whole-primer scan (``preprocess=True``), an already extracted breech face
            (``preprocess=False``, e.g. a processed Fadul scan), a file to read, or the
            output of :func:`prepare_entry`.
        scan_id : str, optional
            Unique id in this database (default: the scan's exhibit id / name).
        case_id, exhibit_id, firearm_id : str, optional
            Case, exhibit and (known) firearm; default to the scan's own identifiers.
        preprocess : bool, default True
            Extract breech face and firing pin first (ignored for a PreparedEntry).
        on_duplicate : {"error", "skip"}
            What to do if the same scan (same height-array SHA-256) is stored already:
            raise :class:`DatabaseError`, or return the stored scan's id.

        Returns
        -------
        str
            The scan id.

        Raises
        ------
        DatabaseError
            Duplicate scan or scan id, read-only database, lock timeout; nothing was
            changed.
        ScanReadError, EmptyScanError, RegionNotFoundError
            The scan cannot be read or extracted; nothing was changed.
        """
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only.")
        if on_duplicate not in ("error", "skip"):
            raise BallisticsError(f"on_duplicate must be 'error' or 'skip', got {on_duplicate!r}")
        if isinstance(scan, PreparedEntry):
            entry = scan
        else:
            s = _load_scan(scan)
            dup = self._duplicate(s.checksum, on_duplicate)
            if dup is not None:
                return dup
            entry = prepare_entry(s, preprocess, self._extractors)
        s = entry.scan
        scan_id = str(scan_id if scan_id is not None else (s.exhibit_id or s.name))
        case_id = case_id if case_id is not None else s.case_id
        exhibit_id = exhibit_id if exhibit_id is not None else s.exhibit_id
        sha = s.checksum
        with self._writer():
            self._sync(persist=True)
            dup = self._duplicate(sha, on_duplicate)
            if dup is not None:
                return dup
            if self.catalogue.scan_by_id(scan_id) is not None:
                raise DatabaseError(f"{self.path}: scan id {scan_id!r} is taken; choose another id "
                                    "(or remove the stored scan first).")
            files: dict[str, tuple[str, str]] = {"original": self._store_file(s)}
            for part, surf in entry.surfaces.items():
                files[part] = files["original"] if surf is s else self._store_file(surf)
            params = {"sha256": sha, "case_id": case_id, "exhibit_id": exhibit_id, "firearm_id": firearm_id,
                      "preprocess": entry.preprocess, "source": s.provenance.source,
                      "source_sha256": s.provenance.sha256, "parts": sorted(entry.signatures),
                      "signature": SIGNATURE_PARAMS, "files": {r: f[1] for r, f in files.items()},
                      "surface_steps": {p: v.provenance.steps[-1:] for p, v in entry.surfaces.items()},
                      **entry.notes}
            with self.catalogue.transaction():
                self.catalogue.ensure_entities(case_id, exhibit_id, firearm_id)
                num = self.catalogue.insert_scan({
                    "scan_id": scan_id, "sha256": sha, "case_id": case_id, "exhibit_id": exhibit_id,
                    "firearm_id": firearm_id, "added": now(), "preprocess": int(entry.preprocess),
                    "source": s.provenance.source, "source_sha256": s.provenance.sha256,
                    "shape": json.dumps(list(s.shape)), "spacing": json.dumps(list(s.spacing)),
                    "metadata": json.dumps(_jsonable(s.metadata), default=str),
                    "provenance": json.dumps(_jsonable(s.provenance.to_dict()), default=str)})
                for role, (fsha, rel) in files.items():
                    self.catalogue.insert_file(num, role, fsha, rel)
                for part, vec in entry.signatures.items():
                    self.catalogue.insert_signature(num, part, SIGNATURE_VERSION, vec)
                self.catalogue.audit("add", scan_id, params)
                gen = self.catalogue.bump_generation()
            self._apply(gen, add={p: (num, v) for p, v in entry.signatures.items()})
        logger.info("%s: added %s (%s)", self.path, scan_id, sha[:12])
        return scan_id

    def _duplicate(self, sha: str, on_duplicate: str) -> str | None:
        row = self.catalogue.scan_by_sha(sha)
        if row is None:
            return None
        if on_duplicate == "skip":
            logger.info("%s: scan already stored as %s", self.path, row["scan_id"])
            return str(row["scan_id"])
        raise DatabaseError(f"{self.path}: this scan (SHA-256 {sha[:16]}...) is already stored as "
                            f"{row['scan_id']!r} (case {row['case_id']!r}); nothing was added.")

    def remove(self, scan_id: str, reason: str | None = None) -> None:
        """Withdraw a scan from searches (soft delete, recorded in the audit log).

        The catalogue row, its files and its signatures stay on disk for the record; the
        scan no longer appears in :meth:`search` or :meth:`list` and its id and hash may
        be added again.
        """
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only.")
        with self._writer():
            self._sync(persist=True)
            row = self.catalogue.scan_by_id(scan_id)
            if row is None:
                raise DatabaseError(f"{self.path}: no scan {scan_id!r} to remove.")
            with self.catalogue.transaction():
                self.catalogue.mark_removed(row["num"])
                self.catalogue.audit("remove", scan_id, {"reason": reason, "sha256": row["sha256"],
                                                          "case_id": row["case_id"], "num": row["num"]})
                gen = self.catalogue.bump_generation()
            self._apply(gen, remove=row["num"])

    def rebuild_index(self, kind: str | None = None) -> dict[str, Any]:
        """Rebuild every part's FAISS index from the signatures in the catalogue.

        Parameters
        ----------
        kind : str, optional
            Index kind to use from now on (default: the database's setting).

        Returns
        -------
        dict
            Index parameters per part.
        """
        with self._writer():
            if kind is not None:
                self.index_kind = kind
            gen = self.catalogue.generation()
            out = {}
            for part in PARTS:
                ids = self.catalogue.live_signature_ids(part)
                if len(ids) == 0 and not self._index_path(part).exists():
                    continue
                idx = self._build(part, self._want_kind(len(ids), None))
                idx.save(self._index_path(part), {"generation": gen})
                self._indices[part] = idx
                out[part] = idx.params() | {"count": idx.ntotal}
            with self.catalogue.transaction():
                if kind is not None:
                    self.catalogue.set_parameter("index_kind", kind)
                self.catalogue.audit("rebuild_index", None, out)
            self._generation = gen
        return out

    # ------------------------------------------------------------------ queries
    def search(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, k: int = 10, *,
               preprocess: bool = True, candidates: int | None = None, rerank: int | None = None,
               method: str | None = None, exclude_self: bool = True,
               exclude: Sequence[str] = ()) -> list[SearchHit]:
        """Ranked list of stored scans most likely fired by the same firearm.

        Stage 1 (retrieval) searches the FAISS index of each part with the query's
        signatures and fuses the cosine similarities (breech face 0.7, firing pin 0.3,
        re-weighted over the parts both sides have).  Stage 2 (re-ranking) compares the
        query's breech face with the best ``rerank`` candidates
        (:func:`ballistics.comparison.compare`) and orders them by CMC count, then
        comparison score; the other candidates follow in retrieval order.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            The query (whole primer if ``preprocess``, else an extracted breech face).
        k : int, default 10
            Length of the returned list.
        preprocess : bool, default True
            Extract surfaces first.
        candidates : int, optional
            Retrieval depth (default ``max(50, 5 k)``).
        rerank : int, optional
            How many top candidates to re-rank with ``compare`` (default ``k``; 0 turns
            re-ranking off).
        method : str, optional
            Comparison method passed to ``compare`` (default: its default, High CMC).
        exclude_self : bool, default True
            Leave out stored scans identical to the query (same height-array hash).
        exclude : sequence of str
            Scan ids to leave out.

        Returns
        -------
        list of SearchHit
            Best first, at most ``k``.
        """
        k = int(k)
        if k <= 0:
            raise BallisticsError(f"k must be a positive number of hits, got {k}")
        entry = scan if isinstance(scan, PreparedEntry) else prepare_entry(scan, preprocess, self._extractors)
        self._sync(persist=False)
        ncand = int(candidates) if candidates else max(50, 5 * k)
        rr = k if rerank is None else max(0, int(rerank))
        excluded = set(exclude)
        self_sha = entry.scan.checksum if exclude_self else None
        fused: dict[int, float] = {}
        wsum: dict[int, float] = {}
        per_part: dict[str, tuple[dict[int, float], float]] = {}
        for part, vec in entry.signatures.items():
            idx = self._indices.get(part)
            if idx is None or idx.ntotal == 0:
                continue
            D, I = idx.search(vec[None, :], ncand + len(excluded) + 1)
            ok = I[0] >= 0
            scores = dict(zip(I[0][ok].tolist(), D[0][ok].tolist()))
            floor = float(D[0][ok].min()) if ok.any() else 0.0
            per_part[part] = (scores, floor)
        all_ids = set().union(*[set(s) for s, _ in per_part.values()]) if per_part else set()
        rows = self.catalogue.scans_by_nums(all_ids)
        for i in all_ids:
            row = rows.get(i)
            if row is None or row["removed_at"] is not None:
                continue
            if row["scan_id"] in excluded or (self_sha is not None and row["sha256"] == self_sha):
                continue
            for part, (scores, floor) in per_part.items():
                w = PART_WEIGHTS[part]
                if part != "breech_face" and i not in scores:
                    # the stored scan may have no signature of this part: skip the part for it
                    continue
                fused[i] = fused.get(i, 0.0) + w * scores.get(i, floor)
                wsum[i] = wsum.get(i, 0.0) + w
        order = sorted(fused, key=lambda i: -fused[i] / wsum[i])[:ncand]
        hits = [SearchHit(scan_id=rows[i]["scan_id"], case_id=rows[i]["case_id"], exhibit_id=rows[i]["exhibit_id"],
                          firearm_id=rows[i]["firearm_id"], rank=0, retrieval_score=float(fused[i] / wsum[i]))
                for i in order]
        if rr and hits:
            head = self._rerank(entry, hits[:rr], method)
            hits = head + hits[rr:]
        hits = hits[:k]
        for r, h in enumerate(hits, 1):
            h.rank = r
        return hits

    def _rerank(self, entry: PreparedEntry, hits: list[SearchHit], method: str | None) -> list[SearchHit]:
        compare, prepare = self._compare, self._prepare
        if compare is None:
            try:
                from ..comparison import compare as compare  # noqa: PLW0127
            except ImportError as exc:
                raise BallisticsError("re-ranking needs ballistics.comparison.compare, which this installation "
                                      "lacks; search with rerank=0.") from exc
        if prepare is None:
            try:
                from ..comparison import prepare as prepare  # noqa: PLW0127
            except ImportError:
                prepare = None
        q = entry.surfaces["breech_face"]
        qp = prepare(q) if prepare is not None else q
        for h in hits:
            try:
                cand = self.load_scan(h.scan_id, "breech_face")
                c = compare(qp, cand, **({"method": method} if method else {}))
                h.cmc_count = int(c.cmc_count)
                h.score = float(c.score)
                h.comparison = c.to_dict()
            except (ComparisonError, DatabaseError, BallisticsError) as exc:
                logger.warning("comparison with %s failed: %s", h.scan_id, exc)
                h.comparison = {"error": str(exc)}
        done = [h for h in hits if h.cmc_count is not None]
        failed = [h for h in hits if h.cmc_count is None]
        done.sort(key=lambda h: (-(h.cmc_count or 0), -(h.score if h.score is not None else -np.inf),
                                 -h.retrieval_score))
        return done + failed

    def list(self, case_id: str | None = None, include_removed: bool = False) -> list[dict[str, Any]]:
        """Stored scans (catalogue rows) as dictionaries, oldest first."""
        rows = self.catalogue.list_scans(include_removed=include_removed, case_id=case_id)
        return [{k: r[k] for k in ("scan_id", "case_id", "exhibit_id", "firearm_id", "sha256", "added",
                                   "removed_at", "preprocess", "source", "shape", "spacing")} for r in rows]

    def audit_log(self, scan_id: str | None = None) -> list[dict[str, Any]]:
        """Every change (time, action, scan id, parameters, library version), oldest first."""
        return self.catalogue.audit_log(scan_id)

    def stats(self) -> dict[str, Any]:
        """Counts, index kinds and sizes, signature version and disk use."""
        self._sync(persist=False)
        out: dict[str, Any] = {"path": str(self.path), **self.catalogue.counts(),
                               "signature_version": SIGNATURE_VERSION, "signature_dim": signature_dim(),
                               "generation": self.catalogue.generation(), "library_version": __version__}
        out["index"] = {p: (idx.params() | {"count": idx.ntotal}) for p, idx in self._indices.items()
                        if idx is not None}
        out["disk_bytes"] = int(sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()))
        if self._repaired:
            out["repaired_on_open"] = list(self._repaired)
        return out

    def verify(self, deep: bool = False) -> dict[str, Any]:
        """Check that catalogue, files and index agree.

        Parameters
        ----------
        deep : bool, default False
            Also read every stored file and compare its height-array hash.

        Returns
        -------
        dict
            ``ok`` (bool: no stored data is missing or altered), ``problems`` (list of
            str), ``index_in_sync`` / ``index_lag`` (whether the index *file* holds
            exactly the catalogue's signatures; a lag is not data loss: it is patched
            from the catalogue whenever the database is opened or searched),
            ``orphan_files`` (stored files no catalogue row refers to, e.g. left by an
            interrupted add; harmless, reused if the same scan is added again).
        """
        from ..reading import read_scan

        problems: list[str] = []
        with self.catalogue.read():
            rows = self.catalogue.list_scans()
            referenced = self.catalogue.all_file_paths()
            cat_ids = {p: self.catalogue.live_signature_ids(p) for p in PARTS}
            files = {r["num"]: self.catalogue.files_of(r["num"]) for r in rows}
        for r in rows:
            f = files[r["num"]]
            if "breech_face" not in f or "original" not in f:
                problems.append(f"{r['scan_id']}: missing stored surfaces (has {sorted(f)})")
            for role, info in f.items():
                p = self.path / info["path"]
                if not p.exists():
                    problems.append(f"{r['scan_id']}: stored {role} file {info['path']} is missing")
                elif deep:
                    try:
                        if read_scan(p).checksum != info["sha256"]:
                            problems.append(f"{r['scan_id']}: stored {role} file {info['path']} was altered")
                    except BallisticsError as exc:
                        problems.append(f"{r['scan_id']}: stored {role} file unreadable ({exc})")
        if not any(len(v) for v in cat_ids.values()) and rows:
            problems.append("scans without signatures")
        for r in rows:
            if r["num"] not in set(cat_ids["breech_face"].tolist()):
                problems.append(f"{r['scan_id']}: no breech-face signature")
        lag: dict[str, dict[str, int]] = {}
        for part in PARTS:
            disk = self._load_index(part) if self._index_path(part).exists() else None
            want = cat_ids[part]
            if disk is None:
                if len(want):
                    lag[part] = {"index_ids": 0, "catalogue_ids": int(len(want)), "missing": int(len(want)),
                                 "extra": 0}
                continue
            have = disk.ids()
            if not np.array_equal(np.sort(have), np.sort(want)):
                lag[part] = {"index_ids": int(len(have)), "catalogue_ids": int(len(want)),
                             "missing": int(len(np.setdiff1d(want, have))),
                             "extra": int(len(np.setdiff1d(have, want)))}
        on_disk = {str(p.relative_to(self.path)) for p in (self.path / "scans").rglob("*.x3p")}
        orphans = sorted(on_disk - referenced)
        return {"ok": not problems, "problems": problems, "index_lag": lag, "index_in_sync": not lag,
                "orphan_files": orphans, "scans": len(rows)}
