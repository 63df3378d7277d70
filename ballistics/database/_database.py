"""``CaseDatabase``: a directory holding the catalogue, the scans and the FAISS index.

Layout of a database directory::

    PATH/catalogue.sqlite          SQLite catalogue (WAL mode): the source of truth
    PATH/scans/ab/abcdef....x3p    scans and extracted surfaces, named by SHA-256
                                   of their height array (``Scan.checksum``)
    PATH/scans/ab/abcdef....x3p.evidence
                                   evidence files byte for byte as received, named
                                   by the SHA-256 of their bytes
    PATH/index/<part>.faiss(.json) FAISS index of each part's signatures
    PATH/audit.jsonl               journal of the audit chain (for ``recover``)
    PATH/write.lock                one writer at a time (:mod:`filelock`)

The class is a small façade over collaborators with public interfaces:
:class:`~._catalogue.Catalogue` (SQLite), :class:`~._audit.AuditLog` (hash chain and
journal), :class:`~._store.EvidenceStore` (files), :class:`~._lock.WriterLock`,
:class:`~._search_index.SearchIndex` (FAISS, kept in step with the catalogue); every
change goes through :meth:`CaseDatabase.write` (:mod:`._writes`).

Layout, write protocol and crash behaviour: ``ballistics/database/README.md``.  A crash before a commit leaves at most
unreferenced files; after it, an index lagging the catalogue, repaired by every open.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import DatabaseError, ParameterError
from ..retrieval import SIGNATURE_PARAMS, SIGNATURE_VERSION, Keypoints, SearchParams, SearchResult, signature_dim
from ..retrieval._models import DEFAULT_MODEL, get_model
from ..retrieval._timing import Timer
from ..scan import Scan
from . import _models
from ._audit import JOURNAL_NAME, AuditLog
from ._catalogue import Catalogue
from ._entry import PreparedEntry, load_scan_input, prepare_entry
from ._lock import WriterLock
from ._open import open_catalogue
from ._search import run_search
from ._search_index import SearchIndex
from ._store import EvidenceStore
from ._verify import verify_database
from ._writes import NewScan, WriteBatch

__all__ = ["CaseDatabase"]

logger = logging.getLogger(__name__)


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
        Open truly read-only: no file is written, no lock taken, no directory created;
        every change raises :class:`~ballistics.errors.DatabaseError`.
    index_kind : {"auto", "flat", "ivf", "ivfsq", "ivfpq", "hnsw"}
        FAISS index structure; ``"auto"`` is exact below 50 000 signatures and IVF above.
    extractors : dict, optional
        Replacement surface extractors (``{"breech_face": f, "firing_pin": g}``).
    compare, prepare : callable, optional
        Replacement comparison functions (default :func:`ballistics.comparison.compare`
        and :func:`ballistics.comparison.prepare`), used by stage 3 of search.
    lock_timeout : float, default 600
        Seconds to wait for another writer to finish.
    model : str, optional
        Signature model recorded by a new database: ``"local-sift"`` (the default; stage 1
        adds the key points' best votes to the global signatures' short list) or
        ``"global-640"`` (global signatures only).  An existing database keeps its own
        (:meth:`resign` moves it); one that holds scans but records none is ``"global-640"``.

    Raises
    ------
    DatabaseError
        Not a database (and ``create`` is false), a non-empty directory without one, or
        a catalogue that is empty or unreadable while the directory holds stored data
        (see :meth:`recover`).

    Notes
    -----
    Thread-safe: a connection per thread, writers take turns through the lock; keep it on a local disk.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False,
                 index_kind: str = "auto", extractors: dict[str, Callable[[Scan], Scan]] | None = None,
                 compare: Callable[..., Any] | None = None, prepare: Callable[[Scan], Any] | None = None,
                 lock_timeout: float = 600.0, model: str | None = None) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.lock_timeout = float(lock_timeout)
        self.lock = WriterLock(self.path, self.lock_timeout)
        self._extractors, self._compare, self._prepare = extractors, compare, prepare
        self._cleanup: Callable[[], None] | None = None  # set by open_bundle()
        new_model = get_model(model if model is not None else DEFAULT_MODEL).record()  # refused before any write
        self.catalogue: Catalogue = open_catalogue(self.path, self.lock, create=create, readonly=readonly,
                                                   index_kind=index_kind, model=new_model)
        stored = self.catalogue.get_parameter("signature") or {}
        if stored.get("version", SIGNATURE_VERSION) != SIGNATURE_VERSION:
            raise DatabaseError(f"{self.path}: signatures were made with {stored.get('version')!r}, this library "
                                f"makes {SIGNATURE_VERSION!r}; use a matching ballistics version.")
        self.audit = AuditLog(self.catalogue, self.path / JOURNAL_NAME, readonly=readonly)
        self.store = EvidenceStore(self.path)
        kind = index_kind if index_kind != "auto" else (self.catalogue.get_parameter("index_kind") or "auto")
        self.index = SearchIndex(self.path, self.catalogue, self.lock, readonly=readonly, index_kind=kind)
        if readonly:
            self.index.sync(persist=False)
        else:
            with self.lock.hold(wait=False) as got:  # repair on disk only if no other writer is busy
                self.index.sync(persist=bool(got))
                if got:
                    self.audit.sync_journal()
        _models.record_model(self, model)

    # ------------------------------------------------------------------ plumbing
    @property
    def index_kind(self) -> str:
        """The FAISS index kind in use."""
        return self.index.index_kind

    def close(self) -> None:
        """Write pending index changes and close the catalogue connections."""
        try:
            self.flush()
        except DatabaseError as exc:  # the catalogue holds everything; the index is repaired on open
            logger.warning("%s: index not flushed on close (%s)", self.path, exc)
        self.catalogue.close()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None

    def __enter__(self) -> CaseDatabase:
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    model = property(lambda self: _models.recorded_model(self.catalogue).name,
                     doc="Name of the signature model stage 1 searches with.")

    def _need_writable(self) -> None:  # every change checks this first
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only; open it without readonly=True to change it.")

    def flush(self) -> None:
        """Write index changes that are still only in memory."""
        self.index.flush()

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteBatch]:
        """Stage changes and commit them atomically (the public write API; see :mod:`._writes`).

        Yields a :class:`WriteBatch`: stage scans (:meth:`WriteBatch.add`) and audit
        entries; they are committed together when the block ends normally, and nothing is
        written if it raises.  Raises :class:`DatabaseError` on a read-only database or a
        lock timeout.
        """
        self._need_writable()
        with self.lock.hold():
            self.index.sync(persist=True)
            batch = WriteBatch(self.catalogue, self.store, self.path)
            yield batch
            batch.commit(self._apply)
            self.audit.sync_journal()

    def _apply(self, gen: int, add: dict[str, Any] | None) -> None:
        """Bring the index to catalogue generation ``gen`` after a commit (one scan: patched in place)."""
        if add is not None:
            self.index.apply(gen, add=add)
        else:
            self.index.sync(persist=True)

    # ------------------------------------------------------------------ changes
    def add(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, scan_id: str | None = None, *,
            case_id: str | None = None, exhibit_id: str | None = None, firearm_id: str | None = None,
            preprocess: bool = True, on_duplicate: str = "error") -> str:
        """Store a scan, its extracted surfaces and signatures, and index it.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            A whole-primer scan (``preprocess=True``), an already extracted breech face
            (``preprocess=False``), a file to read, or the output of :func:`prepare_entry`.
        scan_id : str, optional
            Unique id in this database (default: the scan's exhibit id / name).
        case_id, exhibit_id, firearm_id : str, optional
            Case, exhibit and (known) firearm; default to the scan's own identifiers.
        preprocess : bool, default True
            Extract breech face and firing pin first (ignored for a PreparedEntry).
        on_duplicate : {"error", "skip"}
            Same heights stored already: raise :class:`DatabaseError`, or return its id.

        Returns
        -------
        str
            The scan id.

        Raises
        ------
        DatabaseError
            Duplicate scan or id, signature with NaN/inf, read-only database, lock
            timeout; nothing was changed.
        ParameterError
            ``on_duplicate`` is not "error" or "skip".
        """
        self._need_writable()
        if on_duplicate not in ("error", "skip"):
            raise ParameterError(f"on_duplicate must be 'error' or 'skip', got {on_duplicate!r}")
        if isinstance(scan, PreparedEntry):
            entry = scan
        else:
            s, raw = load_scan_input(scan)
            dup = self._duplicate(s.checksum, on_duplicate)
            if dup is not None:
                return dup
            entry = prepare_entry(s, preprocess, self._extractors)
            entry.evidence = raw
        s = entry.scan
        sid = str(scan_id if scan_id is not None else (s.exhibit_id or s.name))
        case_id = case_id if case_id is not None else s.case_id
        exhibit_id = exhibit_id if exhibit_id is not None else s.exhibit_id
        surfaces = {"original": s, **entry.surfaces}
        # the caller's entry is left as it was; stage-1 data are this database's model's own
        blobs = {k: v for k, v in entry.blobs.items() if not k.startswith("stage1:")}
        blobs.update(_models.entry_blobs(self, blobs.get(_models.SIFT_BLOB)))
        new = NewScan(
            scan_id=sid, sha256=s.checksum, surfaces=surfaces, signatures=entry.signatures, blobs=blobs,
            row={"case_id": case_id, "exhibit_id": exhibit_id, "firearm_id": firearm_id,
                 "preprocess": entry.preprocess, "source": s.provenance.source,
                 "source_sha256": s.provenance.sha256, "shape": list(s.shape), "spacing": list(s.spacing),
                 "metadata": s.metadata, "provenance": s.provenance.to_dict()},
            evidence=None if entry.evidence is None else (entry.evidence, s.provenance.source),
            audit={"sha256": s.checksum, "case_id": case_id, "exhibit_id": exhibit_id, "firearm_id": firearm_id,
                   "preprocess": entry.preprocess, "source": s.provenance.source,
                   "source_sha256": s.provenance.sha256, "parts": sorted(entry.signatures),
                   "signature": SIGNATURE_PARAMS,
                   "surface_steps": {p: v.provenance.steps[-1:] for p, v in entry.surfaces.items()},
                   "blobs": sorted(entry.blobs), **entry.notes})
        with self.write() as w:
            dup = self._duplicate(s.checksum, on_duplicate)
            if dup is not None:
                return dup
            w.add(new)
        logger.info("%s: added %s (%s)", self.path, sid, s.checksum[:12])
        return sid

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
        scan no longer appears in :meth:`search` or :meth:`list`.
        """
        self._need_writable()
        with self.lock.hold():
            self.index.sync(persist=True)
            row = self.catalogue.scan_by_id(scan_id)
            if row is None:
                raise DatabaseError(f"{self.path}: no scan {scan_id!r} to remove.")
            with self.catalogue.transaction():
                self.catalogue.mark_removed(row["num"])
                self.audit.append("remove", scan_id, {"reason": reason, "sha256": row["sha256"],
                                                      "case_id": row["case_id"], "num": row["num"]})
                gen = self.catalogue.bump_generation()
            self.index.apply(gen, remove=row["num"])
            self.audit.sync_journal()

    def rebuild_index(self, kind: str | None = None) -> dict[str, Any]:
        """Rebuild every part's FAISS index from the stored signatures; returns index parameters per part.

        ``kind``: the index kind to use from now on (default: the database's setting).
        """
        self._need_writable()
        with self.lock.hold():
            out = self.index.rebuild(kind, self.catalogue.generation())
            with self.catalogue.transaction():
                if kind is not None:
                    self.catalogue.set_parameter("index_kind", kind)
                self.audit.append("rebuild_index", None, out)
            self.audit.sync_journal()
        return out

    def put_blob(self, scan_id: str, name: str, data: bytes) -> None:
        """Store (or replace) a named blob of a scan, recorded in the audit log."""
        self._need_writable()
        with self.lock.hold():
            num = self._num(scan_id)
            with self.catalogue.transaction():
                self.catalogue.put_blob(num, name, data)
                self.audit.append("put_blob", scan_id, {"name": name, "bytes": len(data)})
            self.audit.sync_journal()

    def resign(self, model: str, batch: int = 64, progress: Callable[[int, int], None] | None = None
               ) -> dict[str, Any]:
        """Move to signature ``model`` from the stored surfaces, resumably (:func:`._models.resign`)."""
        return _models.resign(self, model, batch, progress)

    def rebuild_blobs(self, force: bool = False) -> dict[str, int]:
        """Compute the stage-2 blobs that live scans lack (``force``: all), from their stored breech faces.

        Returns
        -------
        dict
            ``{"scans": scans touched, "blobs": blobs written}``.
        """
        from ._blobs import rebuild_blobs

        self._need_writable()
        return rebuild_blobs(self, force)

    def _num(self, scan_id: str) -> int:
        row = self.catalogue.scan_by_id(scan_id)
        if row is None:
            raise DatabaseError(f"{self.path}: no scan {scan_id!r}.")
        return int(row["num"])

    def get_blob(self, scan_id: str, name: str) -> bytes | None:
        """A stored stage-2 blob of a scan, or None."""
        return self.catalogue.get_blob(self._num(scan_id), name)

    def load_scan(self, scan_id: str, role: str = "breech_face") -> Scan:
        """Read a stored surface back (``role``: "original", "breech_face" or "firing_pin").

        Raises
        ------
        DatabaseError
            Unknown scan or role, or the stored file no longer matches its hash.
        """
        if role == "evidence":
            raise DatabaseError("the evidence file is bytes, not a surface; use CaseDatabase.evidence_bytes().")
        row = self.catalogue.scan_by_id(scan_id)
        if row is None:
            raise DatabaseError(f"{self.path}: no scan {scan_id!r}.")
        files = self.catalogue.files_of(row["num"])
        if role not in files:
            raise DatabaseError(f"scan {scan_id!r} has no stored {role!r} surface (has {sorted(files)}).")
        return self.store.read_surface(files[role]["path"], files[role]["sha256"], f"{role} surface of {scan_id!r}",
                                       row)

    def evidence_bytes(self, scan_id: str) -> bytes:
        """The evidence file of a scan, byte for byte as received (checked against its SHA-256)."""
        f = self.catalogue.files_of(self._num(scan_id)).get("evidence")
        if f is None:
            raise DatabaseError(f"scan {scan_id!r} was added as an in-memory scan; no evidence file was stored.")
        return self.store.read_evidence(f["path"], f["sha256"], f"evidence file of {scan_id!r}")

    def list(self, case_id: str | None = None, include_removed: bool = False) -> list[dict[str, Any]]:
        """Stored scans (catalogue rows) as dictionaries, oldest first."""
        out = []
        for r in self.catalogue.list_scans(include_removed=include_removed, case_id=case_id):
            d = {k: r[k] for k in ("scan_id", "case_id", "exhibit_id", "firearm_id", "sha256", "added",
                                   "removed_at", "preprocess", "source", "shape", "spacing")}
            d["lab"] = r["origin_lab"]  # None: this lab's own scan
            out.append(d)
        return out

    def audit_log(self, scan_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every change (time, action, scan id, parameters, library version), oldest first."""
        return self.audit.entries(scan_id)

    def audit_head(self) -> str | None:
        """``"id:hash"`` of the last audit entry; anchor it outside the database."""
        return self.audit.head()

    def stats(self) -> dict[str, Any]:
        """Counts, index kinds and sizes, signature version and disk use."""
        self.index.sync(persist=False)
        out: dict[str, Any] = {"path": str(self.path), **self.catalogue.counts(),
                               "signature_version": SIGNATURE_VERSION, "signature_dim": signature_dim(),
                               "signature_model": _models.recorded_model(self.catalogue).record(),
                               "generation": self.catalogue.generation(), "library_version": __version__,
                               "index": self.index.stats()}
        out["disk_bytes"] = int(sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()))
        if self.index.repaired:
            out["repaired_on_open"] = builtins.list(self.index.repaired)
        return out

    def verify(self, deep: bool = False) -> dict[str, Any]:
        """Check that catalogue, files, blobs, audit log and index agree.

        Parameters
        ----------
        deep : bool, default False
            Also re-read every stored file and blob and check its SHA-256.

        Returns
        -------
        dict
            ``ok``, ``problems`` (list of str: missing or altered files, damaged
            signatures or key points, a broken audit chain), ``audit_ok``,
            ``audit_entries``, ``index_in_sync`` / ``index_lag``, ``orphan_files``,
            ``blobs``, ``missing_blobs``, ``scans``.
        """
        return verify_database(self.path, self.catalogue, self.index, deep)

    def search(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, k: int | None = None, *,
               params: SearchParams | None = None, preprocess: bool = True, exclude_self: bool = True,
               exclude: Sequence[str] = (), _cache: dict[int, Keypoints | bytes | None] | None = None,
               **knobs: Any) -> SearchResult:
        """Ranked list of stored scans most likely fired by the same firearm (3-stage cascade).

        Stage 1 retrieves a FAISS short list (signatures of breech face and firing pin
        fused 0.7/0.3); stage 2 orders it by SIFT inliers under one rigid motion; stage 3
        compares the best verified candidates in full, seeded by stage 2's pose (see
        :class:`~ballistics.retrieval.SearchParams`).  A candidate whose stored data is
        damaged is skipped and named in the result's warnings.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            The query (whole primer if ``preprocess``, else an extracted breech face).
        k : int, optional
            Length of the returned list (default ``params.k``, 10); clamped to the
            number of stored scans.
        params : SearchParams, optional
            Every knob of the cascade (:class:`~ballistics.retrieval.SearchParams`).
        preprocess : bool, default True
            Extract surfaces first.
        exclude_self : bool, default True
            Leave out stored scans identical to the query (same height-array hash).
        exclude : sequence of str
            Scan ids to leave out.
        **knobs
            Overrides of ``params`` fields (``rerank=0``, ``shortlist=200``, ...).

        Returns
        -------
        SearchResult
            Hits best first (a sequence), per-stage timings, parameters, warnings.

        Raises
        ------
        ParameterError
            Unknown or invalid knobs (checked before any work).

        References
        ----------
        Jegou et al. (2010) (VLAD); Lowe (2004) (SIFT); Fischler & Bolles (1981)
        (RANSAC); Song (2013), Chen et al. (2017) (CMC).
        """
        p = params if params is not None else SearchParams()
        if k is not None:
            knobs["k"] = k
        knobs = {n: v for n, v in knobs.items() if v is not None}
        p = p.replace(**knobs) if knobs else p
        timings: dict[str, dict[str, float]] = {}
        with Timer(timings, "query", 1):
            entry = scan if isinstance(scan, PreparedEntry) else prepare_entry(scan, preprocess, self._extractors)
        return run_search(entry, p, catalogue=self.catalogue, index=self.index, store=self.store,
                          compare=self._compare, prepare=self._prepare, exclude_self=exclude_self,
                          exclude=exclude, cache=_cache, timings=timings, stage1=_models.local_stage1(self))

    def search_many(self, scans: Sequence[Scan | str | os.PathLike[str] | PreparedEntry], k: int | None = None,
                    **kw: Any) -> builtins.list[SearchResult]:
        """Search several queries, reusing decoded stage-2 key points across them.

        Returns one :class:`SearchResult` per query, in order.
        """
        cache: dict[int, Keypoints | bytes | None] = {}
        return [self.search(s, k, _cache=cache, **kw) for s in scans]

    def export_bundle(self, path: str | os.PathLike[str], scan_ids: builtins.list[str] | None = None, *,
                      include_surfaces: bool = False, lab: str, sign_key: Any = None,
                      force: bool = False) -> dict[str, Any]:
        """Write an exchange bundle for a partner lab (see :func:`ballistics.database.export_bundle`)."""
        from ._bundle_export import export_bundle

        return export_bundle(self, path, scan_ids, include_surfaces=include_surfaces, lab=lab, sign_key=sign_key,
                             force=force)

    def import_bundle(self, path: str | os.PathLike[str], public_key: Any = None, *, resign: bool = False,
                      trust_unsigned: bool = False) -> dict[str, Any]:
        """Add a partner lab's bundle (see :func:`ballistics.database.import_bundle`)."""
        from ._bundle_import import import_bundle

        self._need_writable()
        return import_bundle(self, path, public_key, resign=resign, trust_unsigned=trust_unsigned)

    @classmethod
    def recover(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Rebuild a lost or unreadable catalogue (see :func:`ballistics.database.recover`)."""
        from ._recover import recover

        return recover(path)
