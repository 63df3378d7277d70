"""Durable files of a batch run: the package's atomic writer and streamed hashing.

The batch engine writes its manifest and tile files with
:func:`ballistics._io.atomic_write_bytes` (temporary file beside the target, fsync,
rename, directory fsync; the umask is read, never changed).  A run killed mid-write
leaves a hidden temporary file named ``.<target>.<random>.tmp``, which a rerun removes
(:data:`TMP_SUFFIX`).
"""

from __future__ import annotations

__all__ = ["TMP_SUFFIX"]

#: Suffix of the temporary files :func:`ballistics._io.atomic_write_bytes` leaves behind when killed.
TMP_SUFFIX = ".tmp"
