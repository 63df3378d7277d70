"""Durable files of a batch run: the package's atomic writer and streamed hashing.

The batch engine writes its manifest and tile files with
:func:`ballistics._io.atomic_write_bytes` (temporary file beside the target, fsync,
rename, directory fsync; the umask is read, never changed).  A run killed mid-write
leaves a hidden temporary file named ``.<target>.<random>.tmp``, which a rerun removes
(:data:`TMP_SUFFIX`).
"""

from __future__ import annotations

from .._io import atomic_write_bytes as atomic_write
from .._io import sha256_file

__all__ = ["TMP_SUFFIX", "atomic_write", "sha256_file"]

#: Suffix of the temporary files :func:`atomic_write` leaves behind when killed.
TMP_SUFFIX = ".tmp"
