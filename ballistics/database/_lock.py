"""The writer lock of a case database: one writer at a time, across processes.

A :class:`filelock.FileLock` on ``PATH/write.lock`` (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows, both released by the operating system when the holding
process dies, so a killed writer never leaves a stale lock).  The lock only orders
writers; readers never take it (SQLite's WAL gives them a consistent snapshot).

Network file systems (NFS, SMB/CIFS) are not supported for a database directory: their
advisory locks are emulated or dropped, SQLite's WAL needs shared memory (the ``-shm``
file mapped by every process on one host), and ``fsync`` may return before the server
has the data.  See ``ballistics/database/README.md``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from ..errors import DatabaseError

LOCK_NAME = "write.lock"


class WriterLock:
    """Exclusive, process-wide writer lock of one database directory.

    Parameters
    ----------
    directory : path-like
        The database directory (the lock file is ``directory/write.lock``).
    timeout : float
        Seconds :meth:`hold` waits for another writer before raising
        :class:`~ballistics.errors.DatabaseError`.

    Notes
    -----
    Threads of one process are serialised by a :class:`threading.RLock` first, so two
    threads sharing a :class:`~ballistics.database.CaseDatabase` take turns too; the
    lock is re-entrant within one thread.
    """

    def __init__(self, directory: str | Path, timeout: float = 600.0) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.timeout = float(timeout)
        self._thread_lock = threading.RLock()
        self._file_lock = filelock.FileLock(str(self.path), thread_local=False)

    @contextlib.contextmanager
    def hold(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for the ``with`` block.

        Yields True when the lock is held; with ``wait=False`` yields False at once if
        another writer holds it.
        """
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout if wait else 0):
            if not wait:
                yield False
                return
            raise DatabaseError(f"{self.path.parent}: another thread has been writing for more than "
                                f"{self.timeout:.0f} s; try again later.")
        try:
            try:
                self._file_lock.acquire(timeout=max(0.0, deadline - time.monotonic()) if wait else 0,
                                        poll_interval=0.05)
            except filelock.Timeout:
                if not wait:
                    yield False
                    return
                raise DatabaseError(f"{self.path.parent}: another process has been writing for more than "
                                    f"{self.timeout:.0f} s; try again later.") from None
            except OSError as exc:
                raise DatabaseError(f"{self.path}: cannot take the writer lock ({exc}).") from exc
            try:
                yield True
            finally:
                self._file_lock.release()
        finally:
            self._thread_lock.release()
