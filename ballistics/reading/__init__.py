"""Reading and writing scans: ``read_scan`` and ``write_x3p``.

Formats are recognised by their content, not their file name:

* ISO 25178-72 **x3p** (zip archive) through ``x3pio``, with repairs of the deviations
  real files carry (see :mod:`ballistics.reading._x3p`);
* **PNG / TIFF** optical images through Pillow (``kind == "intensity"``);
* Alicona **.al3d** depth files (small reader of our own, checked against the vendor's x3p).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptyScanError, ScanFormatError, ScanReadError, ScanTooLargeError
from ..scan import Provenance, Scan, _jsonable
from ._al3d import read_al3d_arrays
from ._image import MAX_IMAGE_PIXELS, read_image_arrays
from ._x3p import MAX_FILE_BYTES, MAX_MEMBER_BYTES, MAX_PIXELS, read_x3p_arrays, write_x3p_file

__all__ = ["read_scan", "write_x3p", "file_sha256", "MAX_FILE_BYTES", "MAX_MEMBER_BYTES",
           "MAX_PIXELS", "MAX_IMAGE_PIXELS"]

logger = logging.getLogger(__name__)

_MARKER = "ballistics-provenance:"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_scan(
    path: str | os.PathLike[str],
    *,
    spacing: float | tuple[float, float] | None = None,
    case_id: str | None = None,
    exhibit_id: str | None = None,
    allow_empty: bool = False,
) -> Scan:
    """Read a cartridge-case scan from an x3p file or a PNG/TIFF image.

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

    Returns
    -------
    Scan
        Heights in metres (NaN where not measured) or image intensity, with the file's
        SHA-256, the reader and every repair applied recorded in ``scan.provenance``.

    Raises
    ------
    ScanReadError
        The file is missing, empty, truncated, corrupt or of an unknown kind.
    ScanTooLargeError
        The file exceeds :data:`MAX_FILE_BYTES` / :data:`MAX_PIXELS`.
    UnitsError
        Spacing or heights are in units that cannot be determined.
    EmptyScanError
        The scan holds no measured value (unless ``allow_empty``).

    References
    ----------
    ISO 25178-72:2017, Geometrical product specifications -- Surface texture: Areal --
    Part 72: XML file format x3p.
    """
    p = Path(path)
    if not p.exists():
        raise ScanReadError(f"{p}: no such file.")
    if p.is_dir():
        raise ScanReadError(f"{p}: is a directory, not a scan file.")
    size = p.stat().st_size
    if size == 0:
        raise ScanReadError(f"{p}: the file is empty (0 bytes); copy it again from its source.")
    if size > MAX_FILE_BYTES:
        raise ScanTooLargeError(f"{p}: {size / 1e9:.1f} GB exceeds the {MAX_FILE_BYTES / 1e9:.1f} GB limit "
                                "(ballistics.reading.MAX_FILE_BYTES).")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScanReadError(f"{p}: cannot read the file ({exc}).") from exc
    sha = hashlib.sha256(raw).hexdigest()
    head = raw[:16]
    if head.startswith(b"PK"):
        parts = read_x3p_arrays(p, raw)
        kind = "height"
    elif head.startswith(b"\x89PNG") or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        parts = read_image_arrays(p, raw, spacing)
        kind = "intensity"
    elif head.startswith(b"AliconaImaging"):
        parts = read_al3d_arrays(p, raw, MAX_PIXELS)
        kind = "height"
    else:
        raise ScanFormatError(f"{p}: not a scan file this engine reads (expected ISO 25178-72 x3p, PNG"
                              f", TIFF or Alicona al3d; the file starts with {head[:8]!r}).")
    meta = parts["metadata"]
    prov = Provenance(source=p.name, sha256=sha, reader=parts["reader"], fixes=parts["fixes"])
    region = None
    comment = meta.get("comment") or ""
    if _MARKER in comment:  # written by write_x3p: restore identifiers and history
        try:
            saved = json.loads(comment.split(_MARKER, 1)[1])
            prov.steps = saved.get("steps", [])
            prov.fixes = saved.get("fixes", []) + prov.fixes
            prov.steps.append({"step": "read", "source_of_history": saved.get("source", ""),
                               "source_sha256_of_history": saved.get("sha256", "")})
            case_id = case_id or saved.get("case_id")
            exhibit_id = exhibit_id or saved.get("exhibit_id")
            region = saved.get("region")
            if saved.get("kind") == "intensity":
                kind = "intensity"
        except (ValueError, AttributeError):
            logger.warning("%s: ignoring an unreadable ballistics provenance record", p)
    scan = Scan(data=parts["data"], spacing=parts["spacing"], kind=kind, metadata=meta,  # type: ignore[arg-type]
                case_id=case_id, exhibit_id=exhibit_id or p.stem, provenance=prov, region=region)
    if not allow_empty and not scan.mask.any():
        raise EmptyScanError(f"{p}: every point of the scan is missing (all NaN); there is nothing to "
                             "compare. Check the measurement.")
    return scan


def write_x3p(scan: Scan, path: str | os.PathLike[str], *, dtype: str = "float64") -> Path:
    """Write a scan to an ISO 25178-72 x3p file, atomically.

    Heights are written in metres with NaN for missing points; identifiers, the region
    geometry and the whole provenance are kept in ``Record2/Comment`` as JSON so that
    :func:`read_scan` restores them. The file is first written beside ``path`` and then
    renamed, so an existing file is never left half-written.

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
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".x3p", dir=p.parent)
    os.close(fd)
    try:
        write_x3p_file(scan.data, scan.spacing, scan.metadata, comment, Path(tmp), dtype)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def scan_from_array(data: Any, spacing: float | tuple[float, float], *, kind: str = "height",
                    name: str = "array", **ids: Any) -> Scan:
    """Wrap an in-memory array as a :class:`Scan` (heights in metres)."""
    sp = (float(spacing), float(spacing)) if np.isscalar(spacing) else tuple(spacing)  # type: ignore[arg-type]
    return Scan(data=np.asarray(data, dtype=np.float64), spacing=sp, kind=kind,  # type: ignore[arg-type]
                provenance=Provenance(source=name, reader="array"), **ids)
