"""Atomic, durable file writes and file checksums for the batch engine.

A file is written to a temporary name in its own directory, flushed, ``fsync``-ed and
renamed over the target (atomic on POSIX), then the directory is ``fsync``-ed: a reader
sees either no file or the complete file, even if the process is killed half-way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["TMP_SUFFIX", "atomic_write", "sha256_file"]

#: Suffix of the temporary files; leftovers of a killed run are removed on resume.
TMP_SUFFIX = ".partial"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    """The process umask, read from /proc without changing it (0o022 where unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename).

    Parameters
    ----------
    path : str or path-like
        Target file; its directory must exist.
    data : bytes
        The complete content.

    Returns
    -------
    pathlib.Path
        The written file.  On failure the temporary file is removed and an existing
        ``path`` is left unchanged.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=TMP_SUFFIX, dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp gives 0600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)
    return p
