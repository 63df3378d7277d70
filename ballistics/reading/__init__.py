"""Reading and writing scans: ``read_scan`` and ``write_x3p``.

Formats are recognised by their content, not their file name:

* ISO 25178-72 **x3p** (zip archive) through ``x3pio``, with repairs of the deviations
  real files carry (see :mod:`ballistics.reading._repair`); the zip CRC-32s and the
  MD5 checksums of ``main.xml`` and of the point data are verified;
* **PNG / TIFF** optical images through Pillow (``kind == "intensity"``); PNG chunk
  CRCs are verified;
* Alicona **.al3d** depth files (small reader of our own, checked against the vendor's x3p).

Every failure is a :class:`~ballistics.errors.BallisticsError` subclass whose message
names the file; every scan returned has passed :meth:`~ballistics.Scan.validate`.
Size limits (zip bombs, huge images, absurd matrix sizes) are in :data:`LIMITS`
(:class:`Limits`), looked up at call time.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._io import atomic_open, sha256_file, sha256_stream
from ..errors import (
    BallisticsError,
    EmptyScanError,
    ScanFormatError,
    ScanReadError,
    ScanTooLargeError,
    ScanValidationError,
    UnitsError,
)
from ..scan import Provenance, Scan, _jsonable
from ._al3d import read_al3d_arrays
from ._image import read_image_arrays
from ._limits import LIMITS, Limits, current_limits
from ._provenance import MARKER as _MARKER
from ._provenance import WriterInfo, clean_writer, handedness_hint
from ._x3p import read_x3p_arrays, write_x3p_file

__all__ = ["LIMITS", "Limits", "WriterInfo", "file_sha256", "handedness_hint", "read_scan", "scan_from_array",
           "write_x3p"]

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


def _decode(p: Path, fh: BinaryIO, kind: str, spacing: float | tuple[float, float] | None,
            limits: Limits) -> dict[str, Any]:
    if kind == "x3p":
        return read_x3p_arrays(p, fh, limits)
    if kind == "image":
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
        Identifiers to attach to the scan. The exhibit id defaults to the file's stem.
    allow_empty : bool, default False
        Accept a scan without any measured value instead of raising.
    limits : Limits, optional
        Safety limits (sizes, pixels, heights); default the process-wide
        :data:`ballistics.reading.LIMITS`, looked up at call time.

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
        The file, an archive member or the surface exceeds ``limits``.
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
    p = Path(path)
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
    try:
        fh = open(p, "rb")  # noqa: SIM115  (closed by the with-block below)
    except OSError as exc:
        raise ScanReadError(f"{p}: cannot open the file ({exc}).") from exc
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise ScanReadError(f"{p}: the file is empty (0 bytes); copy it again from its source.")
            if size > lim.max_file_bytes:
                raise ScanTooLargeError(f"{p}: {size / 1e9:.1f} GB exceeds the {lim.max_file_bytes / 1e9:.1f} GB "
                                        "limit (ballistics.reading.LIMITS.max_file_bytes).")
            sha = sha256_stream(fh)
            fh.seek(0)
            head = fh.read(16)
        except OSError as exc:
            if isinstance(exc, BallisticsError):
                raise
            raise ScanReadError(f"{p}: cannot read the file ({exc}).") from exc
        kind_of_file = _sniff(head)
        if kind_of_file is None:
            raise ScanFormatError(f"{p}: not a scan file this engine reads (expected ISO 25178-72 x3p, PNG"
                                  f", TIFF or Alicona al3d; the file starts with {head[:8]!r}).")
        parts = _decode(p, fh, kind_of_file, spacing, lim)
    kind = "intensity" if kind_of_file == "image" else "height"
    if np.isinf(parts["data"]).any():
        raise ScanFormatError(f"{p}: the file holds infinite values; missing points must be NaN "
                              "(or invalid), so the file is damaged.")
    meta = parts["metadata"]
    file_writer = dict(parts.get("writer") or {})
    prov = Provenance(source=p.name, sha256=sha, reader=parts["reader"], fixes=parts["fixes"],
                      writer=file_writer, handedness_hint=handedness_hint(file_writer))
    region = None
    comment = meta.get("comment") or ""
    if _MARKER in comment:  # written by write_x3p: restore identifiers and history
        try:
            saved = json.loads(comment.split(_MARKER, 1)[1])
            steps = list(saved.get("steps", []))
            fixes = list(saved.get("fixes", []))
            if not all(isinstance(s, dict) for s in steps) or not all(isinstance(f, str) for f in fixes):
                raise ValueError("history entries of the wrong type")
            prov.steps = steps
            prov.fixes = fixes + prov.fixes
            read_step: dict[str, Any] = {"step": "read", "source_of_history": saved.get("source", ""),
                                         "source_sha256_of_history": saved.get("sha256", "")}
            origin = clean_writer(saved.get("writer"))
            if origin is not None:  # the writer of the file the data was first read from
                prov.writer = dict(origin)
                read_step["file_written_by"] = file_writer.get("software") or file_writer.get("creator")
                read_step["file_written_on"] = file_writer.get("date")
            elif "writer" in saved and saved.get("writer"):
                logger.warning("%s: ignoring an unreadable writer record in the ballistics provenance", p)
            hint = saved.get("handedness_hint", ...)
            if hint is ... or not (hint is None or isinstance(hint, str)):
                hint = handedness_hint(prov.writer)
            prov.handedness_hint = hint
            prov.steps.append(read_step)
            case_id = case_id or _text_or_none(saved.get("case_id"))
            exhibit_id = exhibit_id or _text_or_none(saved.get("exhibit_id"))
            region = saved.get("region") if isinstance(saved.get("region"), dict) else None
            if saved.get("kind") == "intensity":
                kind = "intensity"
        except (ValueError, AttributeError, TypeError):
            logger.warning("%s: ignoring an unreadable ballistics provenance record", p)
    if prov.handedness_hint:
        logger.info("%s: %s", p, prov.handedness_hint)
    try:
        scan = Scan(data=parts["data"], spacing=parts["spacing"], kind=kind,  # type: ignore[arg-type]
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


def _text_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def write_x3p(scan: Scan, path: str | os.PathLike[str], *, dtype: str = "float64") -> Path:
    """Write a scan to an ISO 25178-72 x3p file, atomically and durably.

    Heights are written in metres with NaN for missing points; identifiers, the region
    geometry and the whole provenance (the source's writer record and handedness hint
    included) are kept in ``Record2/Comment`` as JSON so that :func:`read_scan`
    restores them. The file is written to a temporary file beside
    ``path``, fsync-ed and renamed (:func:`ballistics._io.atomic_open`), so an existing
    file is never left half-written; the process umask is never changed.

    Parameters
    ----------
    scan : Scan
        The scan to store.
    path : str or path-like
        Destination, conventionally ending in ``.x3p``.
    dtype : {"float64", "float32"}
        Storage type of the heights; float64 (default) round-trips exactly.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    p = Path(path)
    record = {"case_id": scan.case_id, "exhibit_id": scan.exhibit_id, "kind": scan.kind,
              "region": scan.region, **scan.provenance.to_dict()}
    comment = f"Written by ballistics. {_MARKER}" + json.dumps(_jsonable(record), separators=(",", ":"))
    with atomic_open(p) as fh:
        write_x3p_file(scan.data, scan.spacing, scan.metadata, comment, fh, dtype, writer=scan.provenance.writer)
    return p


def scan_from_array(data: Any, spacing: float | tuple[float, float], *, kind: str = "height",
                    name: str = "array", **ids: Any) -> Scan:
    """Wrap an in-memory array as a :class:`Scan` (heights in metres)."""
    sp = (float(spacing), float(spacing)) if np.isscalar(spacing) else tuple(spacing)  # type: ignore[arg-type]
    return Scan(data=np.asarray(data, dtype=np.float64), spacing=sp, kind=kind,  # type: ignore[arg-type]
                provenance=Provenance(source=name, reader="array"), **ids)
