"""The SQLite catalogue of a case database: the source of truth.

Tables: ``cases``, ``firearms``, ``exhibits``, ``scans`` (one row per stored scan;
its integer ``num`` is the FAISS id, never reused), ``files`` (the stored files of a
scan by role and SHA-256: the evidence file as received, the scan and its extracted
surfaces as x3p), ``signatures`` (one float32 vector per scan and part, so the FAISS
index can always be rebuilt), ``blobs`` (named per-scan byte strings computed at
ingest for the search's verification stages, with their SHA-256), ``parameters`` and
``audit``.

The audit log is a hash chain (:mod:`._audit`).

Every thread gets its own SQLite connection (:class:`threading.local`).

The database runs in WAL mode with ``synchronous=FULL``: readers see the last
committed state while one writer works, and a committed transaction survives a
crash or power loss.  Removal is a soft delete (``scans.removed_at``): the row, its
files and the audit trail stay; only the signatures leave the index.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._json import jsonable, loads_bounded
from .._version import __version__
from ..errors import DatabaseError
from ._audit import GENESIS, audit_hash
from ._schema import SCHEMA, SCHEMA_VERSION, migrate

logger = logging.getLogger(__name__)

#: Read-only opens copy catalogues up to this size into memory (see :meth:`Catalogue._snapshot`).
SNAPSHOT_LIMIT = 1 << 30



def now() -> str:
    """UTC time stamp, ISO 8601 with microseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Catalogue:
    """Thin wrapper over the SQLite file of a case database.

    Parameters
    ----------
    path : path-like
        The ``catalogue.sqlite`` file.
    create : bool
        Create the schema if the file is new.
    readonly : bool
        Open read-only (``mode=ro``); writes raise.
    """

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = bool(readonly)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._memory: str | None = None
        self._anchor: sqlite3.Connection | None = None
        self._snap_stat: tuple[int, int] | None = None
        self._mode = 0  # bumped when a snapshot is replaced by live reading
        if not create and not self.path.exists():
            raise DatabaseError(f"{self.path}: no catalogue; is this a case database? "
                                "Create one with `ballistics db init PATH`.")
        try:
            if readonly:
                self._snapshot()
            con = self.con
            if create and not readonly:
                con.executescript(SCHEMA)
                if self.get_meta("schema_version") is None:
                    with self.transaction():
                        self.set_meta("schema_version", str(SCHEMA_VERSION))
                        self.set_meta("created", now())
                        self.set_meta("generation", "0")
            con.execute("SELECT count(*) FROM scans").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise DatabaseError(f"{self.path}: cannot open the catalogue ({exc}).") from exc
        v = self.get_meta("schema_version")
        if v is None or int(v) > SCHEMA_VERSION:
            self.close()
            raise DatabaseError(f"{self.path}: catalogue schema {v!r} is not supported by this version "
                                f"({SCHEMA_VERSION}); upgrade ballistics.")
        if int(v) < SCHEMA_VERSION:
            if not readonly:
                self._migrate(self.con)
            elif self._anchor is not None:  # upgrade the private in-memory copy only
                self._migrate(self._anchor)
            else:
                self.close()
                raise DatabaseError(f"{self.path}: catalogue schema {v} is older than this version's "
                                    f"({SCHEMA_VERSION}) and a writer has it open; open it once without "
                                    "readonly=True to upgrade it.")

    def _snapshot(self) -> None:
        """Copy a catalogue no process has open into shared memory, so reading writes nothing.

        SQLite in WAL mode creates and updates ``-wal`` / ``-shm`` files even for a
        ``mode=ro`` reader.  When no ``-wal`` file exists (no connection is open and the
        last one checkpointed), the file is copied with ``immutable=1`` into a named
        in-memory database shared by this object's per-thread connections; the copy is
        kept only if the file did not change meanwhile (size, mtime, still no ``-wal``).
        Otherwise (a writer is active) the catalogue is read live through ``mode=ro``,
        which touches only SQLite's shared-memory index (``-shm``), never the data.
        Catalogues above :data:`SNAPSHOT_LIMIT` bytes are always read live.
        """
        wal = Path(str(self.path) + "-wal")
        for _ in range(3):
            if wal.exists():
                return
            st = self.path.stat()
            if st.st_size > SNAPSHOT_LIMIT:
                return
            name = f"ballistics-ro-{uuid.uuid4().hex}"
            anchor = sqlite3.connect(f"file:{name}?mode=memory&cache=shared", uri=True, isolation_level=None,
                                     check_same_thread=False)
            src = sqlite3.connect("file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro&immutable=1",
                                  uri=True, isolation_level=None)
            try:
                src.backup(anchor)
            finally:
                src.close()
            st2 = self.path.stat()
            if not wal.exists() and (st.st_size, st.st_mtime_ns) == (st2.st_size, st2.st_mtime_ns):
                self._memory, self._anchor = name, anchor
                self._snap_stat = (st.st_size, st.st_mtime_ns)
                return
            anchor.close()

    def _connect(self) -> sqlite3.Connection:
        if self._memory is not None:
            con = sqlite3.connect(f"file:{self._memory}?mode=memory&cache=shared", uri=True, timeout=30,
                                  isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA query_only=ON")
            return con
        if self.readonly:
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        else:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def _snapshot_stale(self) -> bool:
        """True when a writer has touched the catalogue since the in-memory copy was taken."""
        if self._memory is None:
            return False
        if Path(str(self.path) + "-wal").exists():
            return True
        try:
            st = self.path.stat()
        except OSError:
            return True
        return (st.st_size, st.st_mtime_ns) != self._snap_stat

    def _go_live(self) -> None:
        """Leave the in-memory copy: later connections read the file live (``mode=ro``)."""
        with self._all_lock:
            if self._memory is None:
                return
            self._memory = None
            self._mode += 1
            if self._anchor is not None:  # other threads' copies live on until they reconnect
                self._anchor.close()
                self._anchor = None
        logger.debug("%s: a writer changed the catalogue; reading it live from now on", self.path)

    @property
    def con(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        A read-only object that started on an in-memory copy switches to reading the
        file live (between transactions) as soon as a writer changes it, so a
        long-lived reader sees every later commit.
        """
        c = getattr(self._local, "con", None)
        if c is not None and not c.in_transaction:
            if self._snapshot_stale():
                self._go_live()
            if getattr(self._local, "mode", 0) != self._mode:
                with self._all_lock:
                    if c in self._all:
                        self._all.remove(c)
                c.close()
                c = None
        if c is None:
            c = self._connect()
            self._local.con = c
            self._local.mode = self._mode
            with self._all_lock:
                self._all.append(c)
        return c

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Bring an older catalogue up to :data:`SCHEMA_VERSION` (adds tables and columns)."""
        migrate(con)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:  # pragma: no cover
                    pass
            self._all.clear()
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None
        self._local = threading.local()

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def _begin(self, statement: str, *, rollback: bool) -> Iterator[sqlite3.Connection]:
        con = self.con
        con.execute(statement)
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK" if rollback else "COMMIT")
            raise
        con.execute("COMMIT")

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Context manager: one atomic write transaction (rolled back on error)."""
        return self._begin("BEGIN IMMEDIATE", rollback=True)

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Context manager: one consistent read snapshot."""
        return self._begin("BEGIN", rollback=False)

    @staticmethod
    def parse_json(text: str | bytes) -> Any:
        """Parse JSON read from a catalogue or its journal (size- and depth-capped)."""
        return loads_bounded(text, what="catalogue JSON", error=DatabaseError)

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def generation(self) -> int:
        """Counter bumped by every committed change of the scans or signatures."""
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> int:
        g = self.generation() + 1
        self.set_meta("generation", str(g))
        return g

    def set_parameter(self, name: str, value: Any) -> None:
        self.con.execute("INSERT INTO parameters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE "
                         "SET value=excluded.value", (name, json.dumps(jsonable(value))))

    def get_parameter(self, name: str) -> Any:
        row = self.con.execute("SELECT value FROM parameters WHERE name=?", (name,)).fetchone()
        return None if row is None else loads_bounded(row[0], what=f"catalogue parameter {name}", error=DatabaseError)

    # ------------------------------------------------------------------ audit
    def audit(self, action: str, scan_id: str | None, parameters: dict[str, Any] | None) -> None:
        """Append an entry to the audit chain (inside the caller's write transaction)."""
        last = self.con.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = GENESIS if last is None or last[0] is None else last[0]
        nxt = self.con.execute("SELECT coalesce(max(id), 0) + 1 FROM audit").fetchone()[0]
        seq = self.con.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        if seq is not None:
            nxt = max(nxt, int(seq[0]) + 1)
        t = now()
        params = json.dumps(jsonable(parameters or {}), default=str, sort_keys=True)
        h = audit_hash(nxt, t, action, scan_id, params, __version__, prev)
        self.con.execute("INSERT INTO audit(id, time, action, scan_id, parameters, library_version, prev_hash, hash) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", (nxt, t, action, scan_id, params, __version__, prev, h))
        self.set_meta("audit_head", f"{nxt}:{h}")

    def audit_rows(self) -> list[tuple]:
        """Raw audit rows ``(id, time, action, scan_id, parameters, library_version, prev_hash, hash)``."""
        return self.con.execute("SELECT id, time, action, scan_id, parameters, library_version, prev_hash, hash "
                                "FROM audit ORDER BY id").fetchall()

    def audit_log(self, scan_id: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, time, action, scan_id, parameters, library_version FROM audit"
        args: tuple = ()
        if scan_id is not None:
            q += " WHERE scan_id=?"
            args = (scan_id,)
        rows = self.con.execute(q + " ORDER BY id", args).fetchall()
        return [{"id": r[0], "time": r[1], "action": r[2], "scan_id": r[3], "parameters": self.parse_json(r[4] or "{}"),
                 "library_version": r[5]} for r in rows]

    # ------------------------------------------------------------------ scans
    def ensure_entities(self, case_id: str | None, exhibit_id: str | None, firearm_id: str | None) -> None:
        t = now()
        if case_id is not None:
            self.con.execute("INSERT OR IGNORE INTO cases(case_id, created) VALUES(?, ?)", (case_id, t))
        if firearm_id is not None:
            self.con.execute("INSERT OR IGNORE INTO firearms(firearm_id, created) VALUES(?, ?)", (firearm_id, t))
        if exhibit_id is not None:
            self.con.execute("INSERT OR IGNORE INTO exhibits(exhibit_id, case_id, firearm_id, created) "
                             "VALUES(?, ?, ?, ?)", (exhibit_id, case_id, firearm_id, t))

    def insert_scan(self, row: dict[str, Any]) -> int:
        cols = ["scan_id", "sha256", "case_id", "exhibit_id", "firearm_id", "added", "preprocess", "source",
                "source_sha256", "shape", "spacing", "metadata", "provenance", "origin_lab", "origin_scan_id"]
        vals = [row.get(c) for c in cols]
        try:
            cur = self.con.execute(f"INSERT INTO scans({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})",
                                   vals)
        except sqlite3.IntegrityError as exc:
            raise DatabaseError(f"scan {row.get('scan_id')!r} cannot be stored: {exc}") from exc
        return int(cur.lastrowid or 0)

    def insert_file(self, num: int, role: str, sha256: str, path: str) -> None:
        self.con.execute("INSERT INTO files(num, role, sha256, path) VALUES(?, ?, ?, ?)", (num, role, sha256, path))

    def put_blob(self, num: int, name: str, data: bytes) -> None:
        """Store (or replace) one named blob of a scan."""
        b = bytes(data)
        self.con.execute("INSERT INTO blobs(num, name, sha256, data) VALUES(?, ?, ?, ?) ON CONFLICT(num, name) "
                         "DO UPDATE SET sha256=excluded.sha256, data=excluded.data",
                         (int(num), str(name), hashlib.sha256(b).hexdigest(), b))

    def get_blob(self, num: int, name: str) -> bytes | None:
        """One named blob of a scan, or None."""
        r = self.con.execute("SELECT data FROM blobs WHERE num=? AND name=?", (int(num), str(name))).fetchone()
        return None if r is None else bytes(r[0])

    def blobs_of(self, num: int) -> dict[str, bytes]:
        """Every blob of a scan by name."""
        return {r[0]: bytes(r[1]) for r in self.con.execute("SELECT name, data FROM blobs WHERE num=?", (int(num),))}

    def blob_index(self, with_data: bool = False) -> list[tuple]:
        """``(num, name, sha256[, data])`` of every blob (one query, for verify)."""
        cols = "num, name, sha256" + (", data" if with_data else "")
        return self.con.execute(f"SELECT {cols} FROM blobs").fetchall()

    def all_files(self) -> list[tuple[int, str, str, str]]:
        """``(num, role, sha256, path)`` of every stored file (one query, for verify)."""
        return self.con.execute("SELECT num, role, sha256, path FROM files").fetchall()

    def signature_index(self) -> list[tuple[int, str]]:
        """``(num, part)`` of every signature (one query, for verify)."""
        return self.con.execute("SELECT num, part FROM signatures").fetchall()

    def insert_signature(self, num: int, part: str, version: str, vector: np.ndarray) -> None:
        v = np.ascontiguousarray(vector, dtype=np.float32)
        self.con.execute("INSERT INTO signatures(num, part, version, dim, vector) VALUES(?, ?, ?, ?, ?)",
                         (num, part, version, int(v.size), v.tobytes()))

    _SCAN_COLS = ("num", "scan_id", "sha256", "case_id", "exhibit_id", "firearm_id", "added", "removed_at",
                  "preprocess", "source", "source_sha256", "shape", "spacing", "metadata", "provenance", "origin_lab",
                  "origin_scan_id")

    def _scan_dict(self, r: tuple) -> dict[str, Any]:
        d = dict(zip(self._SCAN_COLS, r))
        for k in ("shape", "spacing", "metadata", "provenance"):
            d[k] = self.parse_json(d[k]) if d[k] else None
        d["preprocess"] = bool(d["preprocess"])
        return d

    def scan_by_id(self, scan_id: str) -> dict[str, Any] | None:
        r = self.con.execute(f"SELECT {', '.join(self._SCAN_COLS)} FROM scans WHERE scan_id=? AND removed_at IS NULL",
                             (scan_id,)).fetchone()
        return None if r is None else self._scan_dict(r)

    def scan_by_sha(self, sha: str) -> dict[str, Any] | None:
        r = self.con.execute(f"SELECT {', '.join(self._SCAN_COLS)} FROM scans WHERE sha256=? AND removed_at IS NULL",
                             (sha,)).fetchone()
        return None if r is None else self._scan_dict(r)

    def scan_by_origin(self, lab: str, origin_scan_id: str, sha: str) -> dict[str, Any] | None:
        """The live scan imported from ``lab`` under ``origin_scan_id`` with height hash ``sha``."""
        r = self.con.execute(f"SELECT {', '.join(self._SCAN_COLS)} FROM scans WHERE origin_lab=? AND "
                             "origin_scan_id=? AND sha256=? AND removed_at IS NULL",
                             (lab, origin_scan_id, sha)).fetchone()
        return None if r is None else self._scan_dict(r)

    def scans_by_nums(self, nums: Iterable[int]) -> dict[int, dict[str, Any]]:
        nums = [int(n) for n in nums]
        if not nums:
            return {}
        out = {}
        for i in range(0, len(nums), 500):
            chunk = nums[i:i + 500]
            q = f"SELECT {', '.join(self._SCAN_COLS)} FROM scans WHERE num IN ({', '.join('?' * len(chunk))})"
            for r in self.con.execute(q, chunk):
                d = self._scan_dict(r)
                out[d["num"]] = d
        return out

    def list_scans(self, include_removed: bool = False, case_id: str | None = None) -> list[dict[str, Any]]:
        q = f"SELECT {', '.join(self._SCAN_COLS)} FROM scans"
        cond, args = [], []
        if not include_removed:
            cond.append("removed_at IS NULL")
        if case_id is not None:
            cond.append("case_id=?")
            args.append(case_id)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        return [self._scan_dict(r) for r in self.con.execute(q + " ORDER BY num", args)]

    def files_of(self, num: int) -> dict[str, dict[str, str]]:
        return {r[0]: {"sha256": r[1], "path": r[2]} for r in
                self.con.execute("SELECT role, sha256, path FROM files WHERE num=?", (num,))}

    def all_file_paths(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT path FROM files")}

    def live_signature_ids(self, part: str) -> np.ndarray:
        rows = self.con.execute("SELECT s.num FROM signatures s JOIN scans c ON c.num = s.num "
                                "WHERE s.part=? AND c.removed_at IS NULL ORDER BY s.num", (part,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_signatures(self, part: str, nums: Iterable[int] | None = None, batch: int = 10_000
                        ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, vectors)`` batches of the live signatures of one part."""
        if nums is not None:
            nums = [int(n) for n in nums]
            for i in range(0, len(nums), 500):
                chunk = nums[i:i + 500]
                rows = self.con.execute(
                    f"SELECT num, vector FROM signatures WHERE part=? AND num IN ({', '.join('?' * len(chunk))})",
                    [part, *chunk]).fetchall()
                if rows:
                    yield (np.array([r[0] for r in rows], np.int64),
                           np.vstack([np.frombuffer(r[1], np.float32) for r in rows]))
            return
        cur = self.con.execute("SELECT s.num, s.vector FROM signatures s JOIN scans c ON c.num = s.num "
                               "WHERE s.part=? AND c.removed_at IS NULL ORDER BY s.num", (part,))
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            yield (np.array([r[0] for r in rows], np.int64), np.vstack([np.frombuffer(r[1], np.float32) for r in rows]))

    def signature_versions(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT DISTINCT version FROM signatures")]

    def counts(self) -> dict[str, int]:
        c = self.con
        return {
            "scans": c.execute("SELECT count(*) FROM scans WHERE removed_at IS NULL").fetchone()[0],
            "removed_scans": c.execute("SELECT count(*) FROM scans WHERE removed_at IS NOT NULL").fetchone()[0],
            "cases": c.execute("SELECT count(DISTINCT case_id) FROM scans WHERE removed_at IS NULL").fetchone()[0],
            "exhibits": c.execute("SELECT count(DISTINCT exhibit_id) FROM scans "
                                  "WHERE removed_at IS NULL").fetchone()[0],
            "firearms": c.execute("SELECT count(DISTINCT firearm_id) FROM scans "
                                  "WHERE removed_at IS NULL").fetchone()[0],
            "audit_entries": c.execute("SELECT count(*) FROM audit").fetchone()[0],
        }

    def mark_removed(self, num: int) -> None:
        self.con.execute("UPDATE scans SET removed_at=? WHERE num=?", (now(), num))
