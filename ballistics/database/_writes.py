"""The one way data enters a case database: a staged write, committed atomically.

:meth:`CaseDatabase.write` yields a :class:`WriteBatch` while holding the writer lock
(the index synchronised with the catalogue).  Inside the ``with`` block the caller
looks up what is stored and stages :class:`NewScan` records and audit entries; nothing
is written yet.  When the block ends normally the batch commits: the surfaces and
evidence files are written (temporary file, fsync, rename), then every catalogue row
(scan, files, signatures, blobs, audit entries) is committed in **one** SQLite
transaction, then the index is updated and the audit journal appended.  If the block
raises, nothing at all was written.  A crash after the files but before the commit
leaves unreferenced files (reported by ``verify``, reused by a later add).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._json import jsonable
from ..errors import DatabaseError
from ..retrieval import SIGNATURE_VERSION, signature_dim
from ..scan import Scan
from ._catalogue import now

__all__ = ["NewScan", "WriteBatch", "check_signature"]

_ROW_COLS = ("case_id", "exhibit_id", "firearm_id", "preprocess", "source", "source_sha256", "shape", "spacing",
             "metadata", "provenance", "origin_lab", "origin_scan_id")


def check_signature(vec: Any, what: str) -> np.ndarray:
    """A signature as float32 of the model's length, all finite; else :class:`DatabaseError`."""
    v = np.asarray(vec)
    if v.ndim != 1 or v.shape[0] != signature_dim() or not np.issubdtype(v.dtype, np.floating):
        raise DatabaseError(f"{what}: signature has shape {v.shape} {v.dtype}, expected ({signature_dim()},) floats.")
    v = v.astype(np.float32, copy=False)
    if not np.isfinite(v).all():
        raise DatabaseError(f"{what}: signature holds NaN or infinite values; nothing was stored.")
    return v


@dataclass
class NewScan:
    """One scan to store, with everything the catalogue records about it.

    Attributes
    ----------
    scan_id : str
        Unique id among live scans.
    sha256 : str
        ``Scan.checksum`` of the scan (unique among live scans).
    surfaces : dict of str to Scan
        Stored surfaces by role (``"original"``, ``"breech_face"``, ``"firing_pin"``).
    signatures : dict of str to ndarray
        Signature per part (``"breech_face"`` required), finite float32.
    blobs : dict of str to bytes
        Per-scan data of the search's verification stages.
    row : dict
        Other catalogue columns: case, exhibit and firearm ids, ``preprocess``,
        ``source``, ``source_sha256``, ``shape``, ``spacing`` (lists), ``metadata``,
        ``provenance`` (dicts), ``origin_lab``, ``origin_scan_id``.
    evidence : tuple of (bytes, str or None), optional
        The evidence file as received and its source name.
    action : str
        Audit action recorded for the scan (``"add"``, ``"import"``).
    audit : dict
        Audit parameters; the stored files and catalogue row are added to them.
    """

    scan_id: str
    sha256: str
    surfaces: dict[str, Scan]
    signatures: dict[str, np.ndarray]
    blobs: dict[str, bytes] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[bytes, str | None] | None = None
    action: str = "add"
    audit: dict[str, Any] = field(default_factory=dict)


class WriteBatch:
    """Staged changes of one :meth:`CaseDatabase.write` block (see the module docstring).

    Reads (:meth:`scan_by_id`, :meth:`scan_by_sha`, :meth:`scan_by_origin`) see the
    catalogue as committed plus nothing staged; :meth:`add` refuses an id or hash
    staged twice.
    """

    def __init__(self, catalogue: Any, store: Any, path: Any) -> None:
        self._catalogue = catalogue
        self._store = store
        self._path = path
        self._scans: list[NewScan] = []
        self._audit: list[tuple[str, str | None, dict[str, Any]]] = []
        self._ids: set[str] = set()
        self._shas: set[str] = set()

    def scan_by_id(self, scan_id: str) -> dict[str, Any] | None:
        """The live catalogue row with this id, or None."""
        return self._catalogue.scan_by_id(scan_id)

    def scan_by_sha(self, sha: str) -> dict[str, Any] | None:
        """The live catalogue row with this height-array hash, or None."""
        return self._catalogue.scan_by_sha(sha)

    def scan_by_origin(self, lab: str, origin_scan_id: str, sha: str) -> dict[str, Any] | None:
        """The live row imported from ``lab`` as ``origin_scan_id`` with hash ``sha``, or None."""
        return self._catalogue.scan_by_origin(lab, origin_scan_id, sha)

    def staged(self, scan_id: str) -> bool:
        """Whether ``scan_id`` is already staged in this batch."""
        return scan_id in self._ids

    def add(self, new: NewScan) -> None:
        """Stage a scan; raises :class:`DatabaseError` on a taken id/hash or a bad signature."""
        if new.scan_id in self._ids or self._catalogue.scan_by_id(new.scan_id) is not None:
            raise DatabaseError(f"{self._path}: scan id {new.scan_id!r} is taken; choose another id "
                                "(or remove the stored scan first).")
        if new.sha256 in self._shas:
            raise DatabaseError(f"{self._path}: the same heights (SHA-256 {new.sha256[:16]}...) are staged twice.")
        if "breech_face" not in new.signatures:
            raise DatabaseError(f"{self._path}: scan {new.scan_id!r} has no breech-face signature.")
        new.signatures = {p: check_signature(v, f"scan {new.scan_id!r} {p}") for p, v in new.signatures.items()}
        self._ids.add(new.scan_id)
        self._shas.add(new.sha256)
        self._scans.append(new)

    def audit(self, action: str, scan_id: str | None, parameters: dict[str, Any]) -> None:
        """Stage an audit entry, committed after the staged scans' entries."""
        self._audit.append((action, scan_id, dict(parameters)))

    @property
    def empty(self) -> bool:
        """Nothing staged."""
        return not self._scans and not self._audit

    def commit(self, apply: Callable[[int, dict[str, tuple[int, np.ndarray]] | None], None]) -> list[int]:
        """Write the files, commit the catalogue rows in one transaction, then ``apply(generation, add)``.

        ``add`` is the one scan's signatures when exactly one scan was staged (the index
        is patched in place), else None (the index re-synchronises).  Returns the new
        scans' catalogue numbers.
        """
        if self.empty:
            return []
        files: list[dict[str, tuple[str, str]]] = []
        for new in self._scans:
            f = {role: self._store.put_surface(s) for role, s in new.surfaces.items()}
            if new.evidence is not None:
                f["evidence"] = self._store.put_evidence(*new.evidence)
            files.append(f)
        nums: list[int] = []
        cat = self._catalogue
        with cat.transaction():
            for new, f in zip(self._scans, files):
                r = new.row
                cat.ensure_entities(r.get("case_id"), r.get("exhibit_id"), r.get("firearm_id"))
                row = {c: r.get(c) for c in _ROW_COLS}
                for c in ("shape", "spacing", "metadata", "provenance"):
                    row[c] = None if r.get(c) is None else json.dumps(jsonable(r[c]), default=str)
                row["preprocess"] = int(bool(r.get("preprocess", True)))
                num = cat.insert_scan({**row, "scan_id": new.scan_id, "sha256": new.sha256, "added": now()})
                for role, (fsha, rel) in f.items():
                    cat.insert_file(num, role, fsha, rel)
                for part, vec in new.signatures.items():
                    cat.insert_signature(num, part, SIGNATURE_VERSION, vec)
                for name, data in new.blobs.items():
                    cat.put_blob(num, name, data)
                kept = {c: r.get(c) for c in ("case_id", "exhibit_id", "firearm_id", "origin_lab", "origin_scan_id",
                                              "preprocess", "source", "source_sha256")}
                cat.audit(new.action, new.scan_id, {**new.audit, "files": {k: v[1] for k, v in f.items()},
                                                    "file_sha256": {k: v[0] for k, v in f.items()},
                                                    "catalogue_row": kept})
                nums.append(num)
            for action, scan_id, params in self._audit:
                cat.audit(action, scan_id, params)
            gen = cat.bump_generation() if self._scans else cat.generation()
        one = {p: (nums[0], v) for p, v in self._scans[0].signatures.items()} if len(self._scans) == 1 else None
        if self._scans:
            apply(gen, one)
        return nums
