"""The file store of a case database: surfaces and evidence files named by SHA-256.

``PATH/scans/ab/abcdef....x3p`` holds a surface (the scan as given, or an extracted
breech face / firing pin) named by the SHA-256 of its height array
(:attr:`ballistics.Scan.checksum`); ``PATH/scans/ab/abcdef....<ext>.evidence`` holds an
evidence file byte for byte as it was received, named by the SHA-256 of its bytes.
Every file is written to a temporary name, fsynced, renamed into place and its
directory fsynced (:func:`ballistics._io.atomic_open`), so a crash leaves either the
whole file or none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, fsync_dir, sha256_file
from ..errors import BallisticsError, DatabaseError
from ..scan import Scan

__all__ = ["EvidenceStore", "sha256_bytes"]


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


class EvidenceStore:
    """Content-addressed files under ``root/scans``.

    Parameters
    ----------
    root : path-like
        The database directory.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def surface_relpath(checksum: str) -> str:
        """Relative path of the surface whose height-array SHA-256 is ``checksum``."""
        return f"scans/{checksum[:2]}/{checksum}.x3p"

    @staticmethod
    def evidence_relpath(sha: str, suffix: str) -> str:
        """Relative path of an evidence file (SHA-256 of its bytes, original extension)."""
        ext = "".join(c for c in suffix.lower() if c.isalnum())[:8] or "bin"
        return f"scans/{sha[:2]}/{sha}.{ext}.evidence"

    def path(self, rel: str) -> Path:
        """Absolute path of a stored file."""
        return self.root / rel

    def put_surface(self, scan: Scan) -> tuple[str, str]:
        """Write a surface as x3p (unless already there); ``(checksum, relative path)``."""
        from ..reading import write_x3p

        sha = scan.checksum
        rel = self.surface_relpath(sha)
        p = self.root / rel
        if not (p.exists() and p.stat().st_size > 0):
            write_x3p(scan, p)  # atomic and durable (temporary file, fsync, rename)
            fsync_dir(p.parent)
        return sha, rel

    def put_evidence(self, data: bytes, source: str | None) -> tuple[str, str]:
        """Write an evidence file byte for byte (unless already there); ``(sha256, relative path)``."""
        sha = sha256_bytes(data)
        rel = self.evidence_relpath(sha, Path(source or "").suffix)
        p = self.root / rel
        if not (p.exists() and p.stat().st_size == len(data)):
            atomic_write_bytes(p, data)
        return sha, rel

    def read_surface(self, rel: str, sha: str, what: str, row: dict[str, Any] | None = None) -> Scan:
        """Read a stored surface back and check its height-array hash.

        ``row`` (the scan's catalogue row) gives the surface its case and exhibit ids:
        the catalogue, not the file, is the record of who a scan belongs to.

        Raises
        ------
        DatabaseError
            The file is missing, unreadable, or no longer matches ``sha``.
        """
        from ..reading import read_scan

        p = self.root / rel
        try:
            s = read_scan(p)
        except (BallisticsError, OSError) as exc:
            raise DatabaseError(f"{p}: stored {what} is unreadable ({exc}).") from exc
        if s.checksum != sha:
            raise DatabaseError(f"{p}: stored {what} was altered (its hash no longer matches the catalogue).")
        if row is not None:
            s = dataclasses.replace(s, case_id=row.get("case_id"), exhibit_id=row.get("exhibit_id") or row["scan_id"])
        return s

    def read_evidence(self, rel: str, sha: str, what: str) -> bytes:
        """An evidence file's bytes, checked against their SHA-256."""
        p = self.root / rel
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise DatabaseError(f"{p}: {what} cannot be read ({exc}).") from exc
        if sha256_bytes(data) != sha:
            raise DatabaseError(f"{p}: {what} was altered.")
        return data

    def file_sha256(self, rel: str) -> str:
        """SHA-256 of a stored file's bytes (streamed)."""
        return sha256_file(self.root / rel)

    def files(self) -> set[str]:
        """Relative paths of every stored file (temporary files excluded)."""
        d = self.root / "scans"
        if not d.is_dir():
            return set()
        return {p.relative_to(self.root).as_posix() for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")}

