"""``read_scan``: one entry point for every format, recognised from the content."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._io import sha256_file, sha256_stream
from ..errors import (
    BallisticsError,
    EmptyScanError,
    ParameterError,
    ScanFormatError,
    ScanReadError,
    ScanValidationError,
    UnitsError,
)
from ..limits import Limits, current_limits, limit_error
from ..scan import Provenance, Scan
from ._al3d import read_al3d_arrays
from ._image import read_image_arrays
from ._provenance import handedness_hint
from ._record import claimed_kind, restore_record
from ._x3p import read_x3p_arrays

__all__ = ["file_sha256", "read_scan", "scan_from_array"]

logger = logging.getLogger(__name__)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB chunks."""
    return sha256_file(path)


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"PK"):
        return "x3p"
    if head.startswith(b"\x89PNG") or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image"
    if head.startswith(b"AliconaImaging"):
        return "al3d"
    return None


def _decode(p: Path, fh: BinaryIO, fmt: str, spacing: float | tuple[float, float] | None,
            limits: Limits, kind: str) -> dict[str, Any]:
    if fmt == "x3p":
        return read_x3p_arrays(p, fh, limits, kind)
    if fmt == "image":
        return read_image_arrays(p, fh, spacing, limits)
    return read_al3d_arrays(p, fh, limits)


def read_scan(
    path: str | os.PathLike[str],
    *,
    spacing: float | tuple[float, float] | None = None,
    case_id: str | None = None,
    exhibit_id: str | None = None,
    allow_empty: bool = False,
    limits: Limits | None = None,
    kind: str | None = None,
) -> Scan:
    """Read a cartridge-case scan from an x3p, al3d or PNG/TIFF file.

    Parameters
    ----------
    path : str or path-like
        The file. Its kind is recognised from its content.
    spacing : float or (float, float), optional
        Pixel spacing ``(dy, dx)`` in **metres** for images without a resolution tag
        (ignored for x3p, which always carries its spacing).
    case_id, exhibit_id : str, optional
        Identifiers to attach to the scan. The exhibit id defaults to the file's stem;
        identifiers recorded inside a file are never used (they are kept, marked
        unverified, in the provenance's ``"read"`` step).
    allow_empty : bool, default False
        Accept a scan without any measured value instead of raising.
    limits : Limits, optional
        Safety limits (sizes, pixels, expansion, heights); default the process-wide
        :data:`ballistics.reading.LIMITS`, looked up at call time.
    kind : {"height", "intensity"}, optional
        What the values are. Default: heights for x3p and al3d, intensity for PNG/TIFF.
        An x3p file holding an image written by :func:`write_x3p` must be read with
        ``kind="intensity"``: the record in the file says so but is not trusted.

    Returns
    -------
    Scan
        Heights in metres (NaN where not measured) or image intensity, with the file's
        SHA-256, the reader and every repair applied recorded in ``scan.provenance``;
        it has passed :meth:`Scan.validate`.

    Raises
    ------
    ScanReadError
        The file is missing, empty, truncated, corrupt or of an unknown kind
        (:class:`ScanFormatError` for damaged content, including a checksum mismatch
        or values that break :meth:`Scan.validate`).
    ScanTooLargeError
        The file, an archive member, the surface or its expansion from the file's bytes
        exceeds ``limits``; the message names the limit and how to raise it.
    ParameterError
        ``kind`` is not ``"height"``, ``"intensity"`` or None, or ``"height"`` for an image.
    UnitsError
        Spacing or heights are in units that cannot be determined.
    EmptyScanError
        The scan holds no measured value (unless ``allow_empty``).

    References
    ----------
    ISO 25178-72:2017, Geometrical product specifications -- Surface texture: Areal --
    Part 72: XML file format x3p.
    """
    lim = current_limits(limits)
    if kind not in (None, "height", "intensity"):
        raise ParameterError(f"kind must be 'height', 'intensity' or None, got {kind!r}")
    p = Path(path)
    _check_regular(p)
    try:
        fh = open(p, "rb")  # noqa: SIM115  (closed by the with-block below)
    except OSError as exc:
        raise ScanReadError(f"{p}: cannot open the file ({exc}).") from exc
    with fh:
        sha, head = _hash_and_head(p, fh, lim)
        fmt = _sniff(head)
        if fmt is None:
            raise ScanFormatError(f"{p}: not a scan file this engine reads (expected ISO 25178-72 x3p, PNG"
                                  f", TIFF or Alicona al3d; the file starts with {head[:8]!r}).")
        if fmt == "image" and kind == "height":
            raise ParameterError(f"{p}: a PNG/TIFF image holds intensity, not heights; leave kind unset.")
        parts = _decode(p, fh, fmt, spacing, lim, kind or "height")
    return _assemble(p, parts, sha, fmt, kind, case_id, exhibit_id, allow_empty, lim)


def _check_regular(p: Path) -> None:
    """Refuse a missing file, a directory, a pipe or a device before opening it."""
    try:
        st = p.stat()
    except FileNotFoundError as exc:
        raise ScanReadError(f"{p}: no such file.") from exc
    except (OSError, ValueError) as exc:  # permissions, loops, NUL bytes in the name
        raise ScanReadError(f"{p}: cannot access the file ({exc}).") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ScanReadError(f"{p}: is a directory, not a scan file.")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise ScanReadError(f"{p}: is not a regular file (a pipe, socket or device); copy the scan "
                            "to a file first.")


def _hash_and_head(p: Path, fh: BinaryIO, lim: Limits) -> tuple[str, bytes]:
    """SHA-256 of the open file and its first 16 bytes, after the size checks."""
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise ScanReadError(f"{p}: the file is empty (0 bytes); copy it again from its source.")
        if size > lim.max_file_bytes:
            raise limit_error(p, f"a file of {size:,} bytes", "max_file_bytes", lim.max_file_bytes)
        sha = sha256_stream(fh)
        fh.seek(0)
        return sha, fh.read(16)
    except OSError as exc:
        if isinstance(exc, BallisticsError):
            raise
        raise ScanReadError(f"{p}: cannot read the file ({exc}).") from exc


def _assemble(p: Path, parts: dict[str, Any], sha: str, fmt: str, kind: str | None, case_id: str | None,
              exhibit_id: str | None, allow_empty: bool, lim: Limits) -> Scan:
    """The validated :class:`Scan` of what a reader decoded, with its provenance."""
    kind_read = kind or ("intensity" if fmt == "image" else "height")
    if np.isinf(parts["data"]).any():
        raise ScanFormatError(f"{p}: the file holds infinite values; missing points must be NaN "
                              "(or invalid), so the file is damaged.")
    meta = parts["metadata"]
    file_writer = dict(parts.get("writer") or {})
    prov = Provenance(source=p.name, sha256=sha, reader=parts["reader"], fixes=parts["fixes"],
                      writer=file_writer, handedness_hint=handedness_hint(file_writer))
    comment = meta.get("comment") or ""
    if kind is None and fmt == "x3p" and claimed_kind(comment) == "intensity":
        raise ScanFormatError(f"{p}: the file's ballistics record says it holds image intensity, which x3p "
                              "cannot mark and the record cannot prove; if the file is trusted, read it with "
                              "read_scan(path, kind='intensity').")
    region = restore_record(comment, prov, file_writer, p) if fmt == "x3p" else None
    if prov.handedness_hint:
        logger.info("%s: %s", p, prov.handedness_hint)
    try:
        scan = Scan(data=parts["data"], spacing=parts["spacing"], kind=kind_read,  # type: ignore[arg-type]
                    metadata=meta, case_id=case_id, exhibit_id=exhibit_id or p.stem, provenance=prov,
                    region=region)
        scan.validate(max_abs_height_m=lim.max_abs_height_m)
    except ScanValidationError as exc:
        raise ScanFormatError(f"{p}: the values read break the scan model ({exc}); the file is damaged "
                              "or not what it claims to be.") from exc
    except (UnitsError, EmptyScanError) as exc:  # raised by Scan() without the file's name
        raise type(exc)(f"{p}: {exc}") from exc
    if not allow_empty and not scan.mask.any():
        raise EmptyScanError(f"{p}: every point of the scan is missing (all NaN); there is nothing to "
                             "compare. Check the measurement.")
    return scan


def scan_from_array(data: Any, spacing: float | tuple[float, float], *, kind: str = "height",
                    name: str = "array", **ids: Any) -> Scan:
    """Wrap an in-memory array as a :class:`Scan` (heights in metres)."""
    sp = (float(spacing), float(spacing)) if np.isscalar(spacing) else tuple(spacing)  # type: ignore[arg-type]
    return Scan(data=np.asarray(data, dtype=np.float64), spacing=sp, kind=kind,  # type: ignore[arg-type]
                provenance=Provenance(source=name, reader="array"), **ids)
