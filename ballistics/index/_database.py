"""``CaseDatabase``: a directory holding the catalogue, the scans and the FAISS index.

Layout of a database directory::

    PATH/catalogue.sqlite          SQLite catalogue (WAL mode): the source of truth
    PATH/scans/ab/abcdef....x3p    scans and extracted surfaces, named by SHA-256
                                   of their height array (``Scan.checksum``)
    PATH/scans/ab/abcdef....x3p.evidence
                                   evidence files byte for byte as received, named
                                   by the SHA-256 of their bytes
    PATH/index/<part>.faiss(.json) FAISS index of each part's signatures
    PATH/write.lock                one writer at a time (:mod:`filelock`)

The class is a façade over one module per concern: :mod:`._lock` (writer lock),
:mod:`._store` (files), :mod:`._sync` (index kept in step with the catalogue),
:mod:`._search` (retrieval and re-ranking), :mod:`._verify` (consistency checks),
:mod:`._catalogue` (SQLite).

Write protocol (``add``): the surfaces, signatures and stage-2 blobs are computed
first, without any lock; then, holding the writer lock, the files are written
(temporary file, fsync, rename, fsync directory), the catalogue rows (scan, files,
signatures, blobs, audit entry) are committed in one transaction, and finally the
index is updated and written atomically.  A crash before the commit leaves at most
unreferenced files (reported by :meth:`CaseDatabase.verify`, reused by a later add of
the same scan); a crash after the commit leaves an index that lags the catalogue,
which every open detects (ids compared with the catalogue's) and repairs from the
stored signatures.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import BallisticsError, DatabaseError
from ..scan import Scan, _jsonable
from ._catalogue import Catalogue, now
from ._entry import PARTS, PreparedEntry, compute_blobs, load_scan_input, prepare_entry
from ._faiss_index import SignatureIndex
from ._lock import WriterLock
from ._search import PART_WEIGHTS, SearchHit, SearchMixin
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION, signature_dim
from ._store import StoreMixin
from ._sync import SyncMixin
from ._verify import VerifyMixin

__all__ = ["CaseDatabase", "PreparedEntry", "SearchHit", "prepare_entry", "PARTS", "PART_WEIGHTS"]

logger = logging.getLogger(__name__)


class CaseDatabase(StoreMixin, SyncMixin, SearchMixin, VerifyMixin):
    """A lab's collection of scans, searchable for earlier exhibits from the same firearm.

    Parameters
    ----------
    path : path-like
        Directory of the database; created (with an empty catalogue) when missing
        and ``create`` is true.
    create : bool, default True
        Create a new database if ``path`` holds none.
    readonly : bool, default False
        Open truly read-only: the catalogue through SQLite's ``mode=ro``, the FAISS
        index loaded (and patched in memory if it lags) but never written, no lock
        taken, no directory created.  Every change raises
        :class:`~ballistics.errors.DatabaseError`.
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

    Notes
    -----
    One object may be shared by threads: each thread gets its own SQLite connection
    and writers (threads or processes) take turns through :class:`._lock.WriterLock`.
    Keep the directory on a local disk: see ``notes/database.md`` on network file
    systems.

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
        if not readonly:
            (self.path / "scans").mkdir(exist_ok=True)
            (self.path / "index").mkdir(exist_ok=True)
        self.readonly = readonly
        self.lock_timeout = float(lock_timeout)
        self._lock = WriterLock(self.path, self.lock_timeout)
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None  # set by open_bundle()
        self._extractors = extractors
        self._compare = compare
        self._prepare = prepare
        usable = False
        if readonly or cat.exists():
            try:
                self.catalogue = Catalogue(cat, readonly=readonly)
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
        """Write pending index changes and close the catalogue connections."""
        try:
            self.flush()
        except BallisticsError as exc:  # the catalogue holds everything; the index is repaired on open
            logger.warning("%s: index not flushed on close (%s)", self.path, exc)
        self.catalogue.close()
        tmp = self._tmpdir
        if tmp is not None:  # a bundle opened with open_bundle()
            tmp.cleanup()
            self._tmpdir = None

    def __enter__(self) -> CaseDatabase:
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    def _writer(self, wait: bool = True) -> Any:
        """Exclusive writer lock (``PATH/write.lock``): a context manager yielding True when held.

        With ``wait=False`` it yields False at once if another writer holds it.
        """
        if getattr(self, "readonly", False):
            raise DatabaseError(f"{self.path}: opened read-only; open it without readonly=True to change it.")
        return self._lock.hold(wait)

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
            s, raw = load_scan_input(scan)
            dup = self._duplicate(s.checksum, on_duplicate)
            if dup is not None:
                return dup
            entry = prepare_entry(s, preprocess, self._extractors)
            entry.evidence = raw
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
            if entry.evidence is not None:
                files["evidence"] = self._store_evidence(entry.evidence, s.provenance.source)
            params = {"sha256": sha, "case_id": case_id, "exhibit_id": exhibit_id, "firearm_id": firearm_id,
                      "preprocess": entry.preprocess, "source": s.provenance.source,
                      "source_sha256": s.provenance.sha256, "parts": sorted(entry.signatures),
                      "signature": SIGNATURE_PARAMS, "files": {r: f[1] for r, f in files.items()},
                      "surface_steps": {p: v.provenance.steps[-1:] for p, v in entry.surfaces.items()},
                      "blobs": sorted(entry.blobs),
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
                for name, data in entry.blobs.items():
                    self.catalogue.put_blob(num, name, data)
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


    # ------------------------------------------------------------------ blobs
    def _num(self, scan_id: str) -> int:
        row = self.catalogue.scan_by_id(scan_id)
        if row is None:
            raise DatabaseError(f"{self.path}: no scan {scan_id!r}.")
        return int(row["num"])

    def get_blob(self, scan_id: str, name: str) -> bytes | None:
        """A stored stage-2 blob of a scan (see :func:`ballistics.index._stage2.ingest_blobs`), or None."""
        return self.catalogue.get_blob(self._num(scan_id), name)

    def put_blob(self, scan_id: str, name: str, data: bytes) -> None:
        """Store (or replace) a named blob of a scan, recorded in the audit log."""
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only.")
        with self._writer():
            num = self._num(scan_id)
            with self.catalogue.transaction():
                self.catalogue.put_blob(num, name, data)
                self.catalogue.audit("put_blob", scan_id, {"name": name, "bytes": len(data)})

    def rebuild_blobs(self, force: bool = False) -> dict[str, int]:
        """Compute the stage-2 blobs that live scans lack, from their stored breech faces.

        Parameters
        ----------
        force : bool, default False
            Recompute every blob, not only missing ones.

        Returns
        -------
        dict
            ``{"scans": scans touched, "blobs": blobs written}``.
        """
        from ._stage2 import ingest_blobs

        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only.")
        names = set(ingest_blobs())
        if not names:
            return {"scans": 0, "blobs": 0}
        have: dict[int, set[str]] = {}
        for num, name, _ in self.catalogue.blob_index():
            have.setdefault(num, set()).add(name)
        todo = [r for r in self.catalogue.list_scans() if force or names - have.get(r["num"], set())]
        written = 0
        for r in todo:  # computed outside the lock, committed one scan at a time
            blobs = compute_blobs(self.load_scan(r["scan_id"], "breech_face"))
            with self._writer():
                row = self.catalogue.scan_by_id(r["scan_id"])
                if row is None or row["num"] != r["num"]:
                    continue  # removed meanwhile
                with self.catalogue.transaction():
                    for name, data in blobs.items():
                        if force or name not in have.get(r["num"], set()):
                            self.catalogue.put_blob(r["num"], name, data)
                            written += 1
                    self.catalogue.audit("rebuild_blobs", r["scan_id"], {"names": sorted(blobs)})
        return {"scans": len(todo), "blobs": written}

    # ------------------------------------------------------------------ exchange bundles
    def export_bundle(self, path: str | os.PathLike[str], scan_ids: list[str] | None = None, *,
                      include_surfaces: bool = False, lab: str, sign_key: Any = None) -> dict[str, Any]:
        """Write an exchange bundle for a partner lab (one zip file; see :mod:`._bundle`).

        Parameters
        ----------
        path : path-like
            The bundle to write (atomically).
        scan_ids : list of str, optional
            Scans to export (default: every live scan).
        include_surfaces : bool, default False
            Also ship the extracted surfaces as x3p (lets the partner re-rank with
            ``compare`` and re-sign under another signature model).  The evidence
            file is never exported.
        lab : str
            Name of the exporting lab; the partner's database files the entries under it.
        sign_key : path, bytes or Ed25519PrivateKey, optional
            Sign the manifest (detached Ed25519 signature); see
            :func:`ballistics.index.generate_signing_key`.

        Returns
        -------
        dict
            The manifest's summary (versions, signature model, counts) and the size in bytes.
        """
        from ._bundle import export_bundle

        out = export_bundle(self, path, scan_ids, include_surfaces=include_surfaces, lab=lab, sign_key=sign_key)
        if not self.readonly:
            with self._writer(), self.catalogue.transaction():
                self.catalogue.audit("export_bundle", None, {k: out[k] for k in ("lab", "counts", "path", "bytes",
                                                                                  "parameters")})
        return out

    def import_bundle(self, path: str | os.PathLike[str], public_key: Any = None, *,
                      resign: bool = False) -> dict[str, Any]:
        """Add a partner lab's bundle; its entries keep their origin lab.

        Imported scans get the id ``"<lab>/<their id>"`` (case, exhibit and firearm ids
        are prefixed the same way), so ids of two labs never collide and every search
        hit names the lab that holds the scan.  Importing the same bundle again
        changes nothing; a scan whose heights are already stored is skipped.

        Parameters
        ----------
        path : path-like
            The bundle.
        public_key : path, bytes or Ed25519PublicKey, optional
            The exporting lab's public key; when given, the bundle must be signed with
            the matching private key.
        resign : bool, default False
            If the bundle's signature model differs from this database's, recompute
            signatures and blobs from its surfaces (needs a bundle exported with
            surfaces) instead of refusing it.

        Returns
        -------
        dict
            ``lab``, ``imported`` (new scan ids), ``already_present``, ``resigned``.

        Raises
        ------
        BundleError
            Truncated, tampered, wrong-version, wrong-signature or other-model bundle
            (a subclass says which); the database is left unchanged.
        """
        from ._bundle import import_bundle

        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only.")
        return import_bundle(self, path, public_key, resign=resign)

    # ------------------------------------------------------------------ queries
    def list(self, case_id: str | None = None, include_removed: bool = False) -> list[dict[str, Any]]:
        """Stored scans (catalogue rows) as dictionaries, oldest first."""
        rows = self.catalogue.list_scans(include_removed=include_removed, case_id=case_id)
        out = []
        for r in rows:
            d = {k: r[k] for k in ("scan_id", "case_id", "exhibit_id", "firearm_id", "sha256", "added",
                                   "removed_at", "preprocess", "source", "shape", "spacing")}
            d["lab"] = r["origin_lab"]  # None: this lab's own scan
            out.append(d)
        return out

    def audit_log(self, scan_id: str | None = None) -> builtins.list[dict[str, Any]]:
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
