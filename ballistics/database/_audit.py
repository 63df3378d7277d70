"""The audit log of a case database: a hash chain in the catalogue, mirrored to a journal.

Every entry stores the SHA-256 of the previous entry (``prev_hash``) and its own
``hash`` = SHA-256 of its canonical JSON content (``id, time, action, scan_id,
parameters, library_version, prev_hash``), so an edited, deleted, inserted or
reordered entry breaks the chain (:func:`check_audit_chain`).

The entries are also appended, after each commit, to ``PATH/audit.jsonl`` (one
canonical JSON object per line, fsync-ed): a copy outside the SQLite file from which
:meth:`~ballistics.database.CaseDatabase.recover` rebuilds the catalogue if the
catalogue itself is lost.  The journal may lag the catalogue by the entries of a
process killed between its commit and the append; the next writer appends them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._io import fsync_dir
from .._json import canonical_hash, canonical_json, loads_bounded
from ..errors import DatabaseError

__all__ = ["GENESIS", "JOURNAL_NAME", "AuditLog", "audit_hash", "check_audit_chain", "read_journal"]

#: ``prev_hash`` of the first audit entry.
GENESIS = "0" * 64
#: The audit journal beside the catalogue.
JOURNAL_NAME = "audit.jsonl"
#: Largest journal line accepted when reading it back (bytes).
MAX_JOURNAL_LINE = 16 * 1024 * 1024
_COLS = ("id", "time", "action", "scan_id", "parameters", "library_version", "prev_hash", "hash")


def audit_hash(id_: int, time: str, action: str, scan_id: str | None, parameters: str | None,
               library_version: str, prev_hash: str) -> str:
    """SHA-256 of an audit entry's canonical JSON content (sorted keys, no spaces)."""
    return canonical_hash({"id": int(id_), "time": time, "action": action, "scan_id": scan_id,
                           "parameters": parameters, "library_version": library_version, "prev_hash": prev_hash})


def check_audit_chain(rows: list[tuple], head: str | None = None) -> list[str]:
    """Problems of an audit chain (rows as from :meth:`Catalogue.audit_rows`); empty when intact.

    Detects an edited entry (its hash no longer matches its content), a deleted or
    reordered entry (its successor's ``prev_hash`` no longer names it, or ids are not
    consecutive), and a deleted last entry through ``head`` (``"id:hash"`` of the last
    entry, kept in ``meta.audit_head``).
    """
    problems: list[str] = []
    prev = GENESIS
    last_id = 0
    for r in rows:
        id_, t, action, scan_id, params, ver, prev_hash, h = r
        if h is None:
            problems.append(f"audit entry {id_}: not sealed in the hash chain")
            prev, last_id = h or prev, id_
            continue
        if audit_hash(id_, t, action, scan_id, params, ver, prev_hash or "") != h:
            problems.append(f"audit entry {id_} ({action}): content was edited (hash mismatch)")
        if prev_hash != prev:
            problems.append(f"audit entry {id_} ({action}): chain broken before it (an entry was deleted, "
                            "inserted or reordered)")
        if id_ != last_id + 1:
            problems.append(f"audit entry {id_}: ids jump from {last_id} (an entry was deleted or reordered)")
        prev, last_id = h, id_
    if head is not None and rows and f"{last_id}:{prev}" != head:
        problems.append(f"audit log ends at entry {last_id}, but the catalogue recorded {head.split(':')[0]} as "
                        "the last one (entries were deleted at the end, or the log was rewritten)")
    if head is not None and not rows:
        problems.append("audit log is empty, but the catalogue recorded entries (they were deleted)")
    return problems


def _last_journal_id(path: Path) -> int:
    """Id of the last whole line of the journal (0 if none); reads only the file's tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - MAX_JOURNAL_LINE))
            tail = fh.read()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot read the audit journal ({exc}).") from exc
    for line in reversed(tail.split(b"\n")):
        if line.strip():
            try:
                return int(loads_bounded(line, what=str(path), expect=dict, error=DatabaseError)["id"])
            except (DatabaseError, KeyError, TypeError, ValueError):
                continue  # a line cut short by a kill: the previous one counts
    return 0


def read_journal(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Entries of an audit journal, oldest first, and the problems found reading it.

    A damaged line (cut short by a kill, or edited) is skipped and reported; an entry
    whose id was already read is ignored (an append repeated after a kill).
    """
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[int] = set()
    p = Path(path)
    try:
        fh = open(p, "rb")
    except FileNotFoundError:
        return [], [f"{p}: no audit journal"]
    except OSError as exc:
        raise DatabaseError(f"{p}: cannot read the audit journal ({exc}).") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                e = loads_bounded(line, what=f"{p} line {n}", expect=dict, error=DatabaseError)
                id_ = int(e["id"])
            except (DatabaseError, KeyError, TypeError, ValueError) as exc:
                problems.append(f"{p} line {n}: unreadable ({exc})")
                continue
            if id_ not in seen:
                seen.add(id_)
                out.append(e)
    return out, problems


class AuditLog:
    """The audit chain of one catalogue and its journal file.

    Parameters
    ----------
    catalogue : Catalogue
        The catalogue holding the ``audit`` table.
    journal : path-like
        The journal file (``PATH/audit.jsonl``).
    readonly : bool
        Never write the journal.
    """

    def __init__(self, catalogue: Any, journal: str | os.PathLike[str], readonly: bool = False) -> None:
        self.catalogue = catalogue
        self.journal = Path(journal)
        self.readonly = readonly
        self._journal_id: int | None = None

    def append(self, action: str, scan_id: str | None, parameters: dict[str, Any] | None) -> None:
        """Add an entry (inside the caller's catalogue write transaction)."""
        self.catalogue.audit(action, scan_id, parameters)

    def rows(self) -> list[tuple]:
        """Raw rows ``(id, time, action, scan_id, parameters, library_version, prev_hash, hash)``."""
        return self.catalogue.audit_rows()

    def entries(self, scan_id: str | None = None) -> list[dict[str, Any]]:
        """Entries as dictionaries (time, action, scan id, parameters, library version), oldest first."""
        return self.catalogue.audit_log(scan_id)

    def head(self) -> str | None:
        """``"id:hash"`` of the last entry (anchor it outside the database to detect a rewrite)."""
        return self.catalogue.get_meta("audit_head")

    def check(self) -> list[str]:
        """Problems of the chain (empty when intact)."""
        with self.catalogue.read():
            rows, head = self.rows(), self.head()
        return check_audit_chain(rows, head)

    def sync_journal(self) -> int:
        """Append the committed entries the journal lacks (writer lock held); returns how many."""
        if self.readonly:
            return 0
        if self._journal_id is None:
            self._journal_id = _last_journal_id(self.journal)
        rows = self.catalogue.con.execute(
            "SELECT id, time, action, scan_id, parameters, library_version, prev_hash, hash FROM audit "
            "WHERE id > ? ORDER BY id", (self._journal_id,)).fetchall()
        if not rows:
            return 0
        text = "".join(canonical_json(dict(zip(_COLS, r))) + "\n" for r in rows)
        new = not self.journal.exists()
        try:
            with open(self.journal, "ab") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DatabaseError(f"{self.journal}: cannot append to the audit journal ({exc}).") from exc
        if new:
            fsync_dir(self.journal.parent)
        self._journal_id = int(rows[-1][0])
        return len(rows)

