"""Guarded access to the zip container of an x3p file.

Every call into :mod:`zipfile` on a file's bytes goes through this module, so that a
damaged archive becomes a :class:`~ballistics.errors.ScanFormatError` naming the file
and the member, never a bare ``zipfile.BadZipFile`` or ``zlib.error``. Sizes are taken
from the archive directory and checked against :class:`~ballistics.reading.Limits`
before anything is unpacked (zip bombs); members are unpacked with their CRC-32
checked by :mod:`zipfile`. Member names must stay inside the archive (no ``..``,
absolute paths, drive letters or backslashes) and be unique, ``main.xml`` included.

:func:`rewrite_main` is the one place that rewrites ``main.xml`` of an archive and
refreshes its MD5 (used by the repairs, the tests and the fuzzing harness).
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import ScanFormatError, ScanTooLargeError
from ..limits import Limits, limit_error

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
            raise limit_error(path, f"archive member {info.filename!r} unpacks to {info.file_size:,} bytes, which",
                              "max_member_bytes", limits.max_member_bytes)
        total += info.file_size
    if total > limits.max_total_uncompressed_bytes:
        raise limit_error(path, f"the archive unpacks to {total:,} bytes in all (possibly a zip bomb), which",
                          "max_total_uncompressed_bytes", limits.max_total_uncompressed_bytes)
    check_names(path, infos)
    return zf


def _unsafe(name: str) -> str | None:
    """Why a member name leaves the archive root, or None when it stays inside."""
    if "\\" in name:
        return "contains a backslash"
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "starts with a drive letter"
    if any(part == ".." for part in name.split("/")):
        return "climbs out of the archive with '..'"
    return None


def check_names(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse member names outside the archive root and duplicate names.

    Raises
    ------
    ScanFormatError
        A name is absolute, has a drive letter, a backslash, a NUL or a ``..``
        component; or two members have the same name (case-insensitive), or two
        members are called ``main.xml`` in any folder.
    """
    seen: dict[str, str] = {}
    mains: list[str] = []
    for info in infos:
        name = info.filename
        why = _unsafe(name)
        if why is not None:
            raise ScanFormatError(f"{path}: archive member {name[:200]!r} {why}; an x3p archive keeps every "
                                  "member inside its root, so the file is refused.")
        key = name.lower()
        if key in seen:
            raise ScanFormatError(f"{path}: the archive holds two members named {name[:200]!r}"
                                  f"{'' if seen[key] == name else f' and {seen[key]!r}'}; which one is meant is "
                                  "ambiguous, so the file is refused.")
        seen[key] = name
        if key.rsplit("/", 1)[-1] == "main.xml" and "__macosx" not in key:
            mains.append(name)
    if len(mains) > 1:
        raise ScanFormatError(f"{path}: the archive holds {len(mains)} main.xml members ({mains[:4]!r}); which "
                              "one describes the surface is ambiguous, so the file is refused.")


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
                                f"above the limit of {max_bytes:,} (ballistics.reading.LIMITS.max_xml_bytes "
                                "for main.xml); if the file is trusted, raise it: "
                                "read_scan(path, limits=LIMITS.replace(max_xml_bytes=...)).")
    try:
        data = zf.read(info)
    except ZIP_ERRORS as exc:
        raise ScanFormatError(f"{path}: archive member {name!r} cannot be unpacked "
                              f"({type(exc).__name__}: {exc}); the file is damaged.") from exc
    if len(data) != info.file_size:
        raise ScanFormatError(f"{path}: archive member {name!r} unpacks to {len(data)} bytes, its "
                              f"directory says {info.file_size}; the file is damaged.")
    return data


def md5_line(main: bytes) -> bytes:
    """Content of ``md5checksum.hex`` for ``main`` (the digest and ``md5sum``'s file name)."""
    return (hashlib.md5(main).hexdigest() + " *main.xml\n").encode()


def rewrite_main(archive: bytes | zipfile.ZipFile, main: bytes | Callable[[bytes], bytes], *,
                 refresh_md5: bool = True, compression: int = zipfile.ZIP_STORED,
                 path: Path | str = "<archive>") -> bytes:
    """An x3p archive with ``main.xml`` replaced and (by default) its MD5 refreshed.

    Every other member is copied (unpacked with its CRC-32 checked, re-packed), in the
    same order; folders are dropped.

    Parameters
    ----------
    archive : bytes or zipfile.ZipFile
        The x3p archive.
    main : bytes or callable
        The new ``main.xml``, or a function from the old bytes to the new.
    refresh_md5 : bool, default True
        Write the new digest into ``md5checksum.hex``; False leaves the stored digest
        as it was (a stale checksum, as damage or tampering would leave it).
    compression : int
        :mod:`zipfile` compression of the new archive (default stored).
    path : path-like or str
        Name of the file, for messages.

    Returns
    -------
    bytes
        The new archive.

    Raises
    ------
    ScanFormatError
        The archive or a member cannot be read, or it has no ``main.xml``.
    """
    p = Path(path)
    try:
        zf = archive if isinstance(archive, zipfile.ZipFile) else zipfile.ZipFile(io.BytesIO(archive))
        infos = zf.infolist()
    except ZIP_ERRORS as exc:
        raise ScanFormatError(f"{p}: the zip container is truncated or corrupt ({type(exc).__name__}: {exc}).") from exc
    main_name = member_name(zf, "main.xml")
    if main_name is None:
        raise ScanFormatError(f"{p}: the archive holds no main.xml, so it is not an x3p file.")
    new_main = main(read_member(p, zf, main_name)) if callable(main) else main
    md5_name = member_name(zf, "md5checksum.hex")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as out:
        for info in infos:
            if info.is_dir():
                continue
            if info.filename == main_name:
                out.writestr(info.filename, new_main)
            elif info.filename == md5_name and refresh_md5:
                out.writestr(info.filename, md5_line(new_main))
            else:
                out.writestr(info.filename, read_member(p, zf, info.filename))
    return buf.getvalue()


def repack(path: Path, zf: zipfile.ZipFile, main: bytes, original_main: bytes, fixes: list[str]) -> bytes:
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
    return rewrite_main(zf, main, path=path)
