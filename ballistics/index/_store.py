"""The file store of a case database: scans and evidence files named by SHA-256.

``PATH/scans/ab/abcdef....x3p`` holds a surface (the scan as given, or an extracted
breech face / firing pin) named by the SHA-256 of its height array
(:attr:`ballistics.Scan.checksum`); ``PATH/scans/ab/abcdef....<ext>.evidence`` holds an
evidence file byte for byte as it was received, named by the SHA-256 of its bytes.
Every file is written to a temporary name, fsynced, renamed into place and its
directory fsynced, so a crash leaves either the whole file or none.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes as _atomic_write_bytes
from .._io import fsync_dir
from ..errors import BallisticsError, DatabaseError
from ..scan import Scan


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably, creating its directory.

    ``mode``: permission bits of the new file (default: as :func:`ballistics._io.atomic_write_bytes`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, data, mode=mode)
    fsync_dir(path.parent)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


class StoreMixin:
    """Stored files of :class:`~ballistics.index.CaseDatabase` (writing, reading back)."""

    path: Path
    catalogue: Any

    @staticmethod
    def _scan_relpath(checksum: str) -> str:
        return f"scans/{checksum[:2]}/{checksum}.x3p"

    @staticmethod
    def _evidence_relpath(sha: str, suffix: str) -> str:
        ext = "".join(c for c in suffix.lower() if c.isalnum())[:8] or "bin"
        return f"scans/{sha[:2]}/{sha}.{ext}.evidence"

    def _store_file(self, scan: Scan) -> tuple[str, str]:
        """Write a surface as x3p (unless already there); ``(checksum, relative path)``."""
        from ..reading import write_x3p

        sha = scan.checksum
        rel = self._scan_relpath(sha)
        p = self.path / rel
        if not (p.exists() and p.stat().st_size > 0):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_x3p(scan, p)
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
            fsync_dir(p.parent)
        return sha, rel

    def _store_evidence(self, data: bytes, source: str | None) -> tuple[str, str]:
        """Write an evidence file byte for byte (unless already there); ``(sha256, relative path)``."""
        sha = sha256_bytes(data)
        rel = self._evidence_relpath(sha, Path(source or "").suffix)
        p = self.path / rel
        if not (p.exists() and p.stat().st_size == len(data)):
            atomic_write_bytes(p, data)
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
        if role == "evidence":
            raise DatabaseError("the evidence file is bytes, not a surface; use CaseDatabase.evidence_bytes().")
        if role not in files:
            raise DatabaseError(f"scan {scan_id!r} has no stored {role!r} surface (has {sorted(files)}).")
        f = files[role]
        try:
            s = read_scan(self.path / f["path"])
        except BallisticsError as exc:
            raise DatabaseError(f"{self.path / f['path']}: stored {role} surface of {scan_id!r} is unreadable "
                                f"({exc}).") from exc
        if s.checksum != f["sha256"]:
            raise DatabaseError(f"{self.path / f['path']}: stored surface of {scan_id!r} was altered "
                                "(its hash no longer matches the catalogue).")
        return s

    def evidence_bytes(self, scan_id: str) -> bytes:
        """The evidence file of a scan, byte for byte as received (checked against its SHA-256).

        Raises
        ------
        DatabaseError
            Unknown scan, a scan added as an in-memory ``Scan`` (no file was received),
            or the stored bytes no longer match their hash.
        """
        row = self.catalogue.scan_by_id(scan_id)
        if row is None:
            raise DatabaseError(f"{self.path}: no scan {scan_id!r}.")
        f = self.catalogue.files_of(row["num"]).get("evidence")
        if f is None:
            raise DatabaseError(f"scan {scan_id!r} was added as an in-memory scan; no evidence file was stored.")
        data = (self.path / f["path"]).read_bytes()
        if sha256_bytes(data) != f["sha256"]:
            raise DatabaseError(f"{self.path / f['path']}: evidence file of {scan_id!r} was altered.")
        return data
