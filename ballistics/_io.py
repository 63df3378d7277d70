"""Durable, atomic file writes and streamed checksums.

A file written through :func:`atomic_open` or :func:`atomic_write_bytes` is either the
complete new content or the old file, never a mixture, even if the process is killed
or the machine loses power half-way:

1. a temporary file is created with :func:`tempfile.mkstemp` in the target's own
   directory (so the final rename never crosses a file system);
2. its permission bits are set explicitly with :func:`os.fchmod` -- the process
   umask is read but never changed (changing it races with other threads);
3. the content is written, flushed and ``fsync``-ed;
4. :func:`os.replace` renames it over the target (atomic on POSIX);
5. the directory is ``fsync``-ed so that the rename itself survives a crash.

On any failure the temporary file is removed and the old file is left as it was.

References
----------
POSIX.1-2017, ``rename()`` and ``fsync()``; T. Ts'o, "Don't fear the fsync!" (2009).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "check_output",
    "default_file_mode",
    "fsync_dir",
    "sha256_file",
    "sha256_stream",
]

_CHUNK = 1 << 20


def sha256_stream(fh: BinaryIO, chunk: int = _CHUNK) -> str:
    """SHA-256 hex digest of a binary stream, read in chunks from its current position.

    Parameters
    ----------
    fh : binary file object
        Read to its end; the position is left there.
    chunk : int
        Bytes per read (default 1 MiB), so memory use does not grow with the file.

    Returns
    -------
    str
        64 lower-case hex digits (FIPS 180-4 SHA-256).
    """
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(chunk), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, streamed (see :func:`sha256_stream`)."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def _umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; 0o022 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            m = re.search(r"^Umask:\s*([0-7]+)", fh.read(), re.MULTILINE)
        if m:
            return int(m.group(1), 8)
    except OSError:
        pass
    return 0o022


def default_file_mode(path: str | os.PathLike[str]) -> int:
    """Permission bits for a new version of ``path``.

    The existing file's bits if it exists (a rewrite keeps them), else ``0o666`` less
    the process umask, as :func:`open` would give.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """``fsync`` a directory so that renames and new entries in it are durable.

    Silently does nothing where directories cannot be opened (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for an atomic, durable binary write.

    Parameters
    ----------
    path : str or path-like
        The target. Its parent directory is created if missing.
    mode : int, optional
        Permission bits of the new file; default :func:`default_file_mode`.

    Yields
    ------
    binary file object
        Write the whole content to it. When the ``with`` block ends normally the file
        is flushed, fsync-ed and renamed over ``path``, and the directory is fsync-ed;
        if the block raises, the temporary file is deleted and ``path`` is untouched.

    Examples
    --------
    >>> with atomic_open("out.bin") as fh:          # doctest: +SKIP
    ...     fh.write(b"payload")
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    bits = default_file_mode(p) if mode is None else mode
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), bits)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_open`).

    Parameters
    ----------
    path : str or path-like
        The target file.
    data : bytes
        The complete new content.
    mode : int, optional
        Permission bits; default keeps an existing file's bits, else ``0o666 & ~umask``.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    with atomic_open(path, mode=mode) as fh:
        fh.write(data)
    return Path(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _database_root(p: Path) -> Path | None:
    """The case database directory ``p`` lies in (a directory holding ``catalogue.sqlite``)."""
    for d in [p.parent, *p.parent.parents]:
        if (d / "catalogue.sqlite").exists():
            return d
    return None


def check_output(path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str], ...] = (),
                 force: bool = False, what: str = "output") -> Path:
    """Refuse an output path that would destroy data; return it as a ``Path``.

    Parameters
    ----------
    path : str or path-like
        Where a command is about to write a file.
    inputs : tuple of paths
        The operation's inputs: the output may be none of them (also through links).
    force : bool
        Allow replacing an existing file that is not an input and not inside a database.
    what : str
        What the output is (``"report"``), for the message.

    Raises
    ------
    OutputError
        The target is an input, lies inside a case database, is a directory, lies under a
        file, or already exists and ``force`` is false.
    """
    p = Path(path)
    for src in inputs:
        if _same_file(p, Path(src)):
            raise OutputError(f"{what} {p} is also an input; choose another output path")
    db = _database_root(p.absolute())
    if db is not None:
        raise OutputError(f"{what} {p} lies inside the case database {db}; write it elsewhere")
    if p.is_dir():
        raise OutputError(f"{what} {p} is a directory; give a file name")
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{what} {p} lies under {parent}, which is not a directory")
            break
    if p.exists() and not force:
        raise OutputError(f"{what} {p} already exists; remove it or pass --force to replace it")
    return p
