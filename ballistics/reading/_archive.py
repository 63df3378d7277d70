"""Guarded access to the zip container of an x3p file.

Every call into :mod:`zipfile` on a file's bytes goes through this module, so that a
damaged archive becomes a :class:`~ballistics.errors.ScanFormatError` naming the file
and the member, never a bare ``zipfile.BadZipFile`` or ``zlib.error``. Sizes are taken
from the archive directory and checked against :class:`~ballistics.reading.Limits`
before anything is unpacked (zip bombs); members are unpacked with their CRC-32
checked by :mod:`zipfile`.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import ScanFormatError, ScanTooLargeError
from ._limits import Limits

#: What :mod:`zipfile` and :mod:`zlib` raise on damaged archives: bad headers
#: (``BadZipFile``, ``struct.error``), bad compressed streams (``zlib.error``), short
#: reads (``EOFError``), encryption or unknown compression methods (``RuntimeError``,
#: ``NotImplementedError``), garbled names (``UnicodeDecodeError``, a ``ValueError``)
#: and offsets outside the file (``OSError``, ``OverflowError``).
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
    struct.error, NotImplementedError, RuntimeError, OverflowError, KeyError, IndexError,
)


def open_archive(path: Path, fh: BinaryIO, limits: Limits) -> zipfile.ZipFile:
    """Open the zip directory of ``fh`` and check the declared sizes against ``limits``.

    Raises
    ------
    ScanFormatError
        The directory is truncated or corrupt.
    ScanTooLargeError
        A member, or all members together, unpack to more than the limits allow.
    """
    try:
        zf = zipfile.ZipFile(fh)
        infos = zf.infolist()
    except ZIP_ERRORS as exc:
        raise ScanFormatError(f"{path}: the zip container is truncated or corrupt "
                              f"({type(exc).__name__}: {exc}); copy the file again from its source.") from exc
    total = 0
    for info in infos:
        if info.file_size > limits.max_member_bytes:
            raise ScanTooLargeError(f"{path}: archive member {info.filename!r} unpacks to "
                                    f"{info.file_size / 1e9:.1f} GB, above the "
                                    f"{limits.max_member_bytes / 1e9:.1f} GB limit "
                                    "(ballistics.reading.LIMITS.max_member_bytes).")
        total += info.file_size
    if total > limits.max_total_uncompressed_bytes:
        raise ScanTooLargeError(f"{path}: the archive unpacks to {total / 1e9:.1f} GB in all, above the "
                                f"{limits.max_total_uncompressed_bytes / 1e9:.1f} GB limit "
                                "(ballistics.reading.LIMITS.max_total_uncompressed_bytes); "
                                "possibly a zip bomb.")
    return zf


def member_name(zf: zipfile.ZipFile, wanted: str) -> str | None:
    """Name of the archive member whose base name is ``wanted`` (case-insensitive)."""
    hits = [n for n in zf.namelist()
            if n.rsplit("/", 1)[-1].lower() == wanted.lower() and "__MACOSX" not in n]
    return min(hits, key=len) if hits else None


def read_member(path: Path, zf: zipfile.ZipFile, name: str, max_bytes: int | None = None) -> bytes:
    """Unpack one member (CRC-32 checked), turning every failure into ScanFormatError."""
    try:
        info = zf.getinfo(name)
    except KeyError as exc:
        raise ScanFormatError(f"{path}: the archive has no member {name!r}.") from exc
    if max_bytes is not None and info.file_size > max_bytes:
        raise ScanTooLargeError(f"{path}: archive member {name!r} unpacks to {info.file_size:,} bytes, "
                                f"above the limit of {max_bytes:,} (ballistics.reading.LIMITS).")
    try:
        data = zf.read(info)
    except ZIP_ERRORS as exc:
        raise ScanFormatError(f"{path}: archive member {name!r} cannot be unpacked "
                              f"({type(exc).__name__}: {exc}); the file is damaged.") from exc
    if len(data) != info.file_size:
        raise ScanFormatError(f"{path}: archive member {name!r} unpacks to {len(data)} bytes, its "
                              f"directory says {info.file_size}; the file is damaged.")
    return data


def repack(path: Path, zf: zipfile.ZipFile, main_name: str, main: bytes, original_main: bytes,
           fixes: list[str]) -> bytes:
    """Rebuild the archive in memory with a repaired ``main.xml`` and its new checksum.

    The stored MD5 of ``main.xml`` is verified against the original bytes first, so a
    damaged file is reported as damaged rather than "repaired". Other members are
    copied unpacked and re-packed, their CRC-32 checked on the way.
    """
    md5_name = member_name(zf, "md5checksum.hex")
    if md5_name is not None:
        text = read_member(path, zf, md5_name, max_bytes=4096)
        stored = text.decode("ascii", "replace").strip().split()[:1]
        if stored and re.fullmatch(r"[0-9a-fA-F]{32}", stored[0]):
            if stored[0].lower() != hashlib.md5(original_main).hexdigest():
                raise ScanFormatError(f"{path}: main.xml does not match its MD5 checksum: the file was "
                                      "altered or damaged after it was written.")
            fixes.append("md5checksum.hex recomputed for the repaired main.xml "
                         "(original checksum verified first)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if info.filename == main_name:
                out.writestr(info.filename, main)
            elif info.filename == md5_name:
                out.writestr(info.filename, (hashlib.md5(main).hexdigest() + " *main.xml\n").encode())
            else:
                out.writestr(info.filename, read_member(path, zf, info.filename))
    return buf.getvalue()
