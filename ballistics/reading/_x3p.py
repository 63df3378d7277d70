"""ISO 25178-72 x3p through ``x3pio``, with repairs for the deviations real files carry.

x3pio parses the container and the XML (through defusedxml, so no entity expansion)
and verifies the MD5 checksums of ``main.xml`` (``md5checksum.hex``) and of the binary
point data (``Record3/DataLink/MD5ChecksumPointData``) and validity mask whenever the
file carries them; :mod:`zipfile` checks every member's CRC-32. Before x3pio sees the
file, this module:

1. opens the archive through :mod:`ballistics.reading._archive`, which checks the
   declared member sizes and their total against the limits (zip bombs);
2. parses ``main.xml`` with defusedxml (DOCTYPE and entities refused) and checks what
   it declares before anything is unpacked (:mod:`ballistics.reading._x3p_header`):
   points, expansion from file bytes to decoded bytes, the sizes of the binary
   members, an incremental z axis (refused);
3. corrects the known deviations (:mod:`ballistics.reading._repair`) in memory and
   re-packs the archive, after verifying the original ``main.xml`` checksum.

Every repair is returned as a sentence for the scan's provenance; every failure is a
:class:`~ballistics.errors.ScanReadError` subclass that names the file.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ScanFormatError
from ..limits import Limits
from ._archive import ZIP_ERRORS, member_name, open_archive, read_member, repack
from ._provenance import MARKER, join_instrument, x3p_writer
from ._repair import fix_heights, fix_spacing, refuse_dtd, repair_main
from ._x3p_header import check_header, orient, read_header

logger = logging.getLogger(__name__)


def parse_main(main: bytes, path: Path) -> Any:
    """Root element of ``main.xml`` from a safe parse (defusedxml, no DOCTYPE or entities).

    Raises :class:`ScanFormatError` when ``main.xml`` is not well-formed.
    """
    from defusedxml import ElementTree as DefusedET
    from defusedxml.common import DefusedXmlException

    refuse_dtd(main, str(path))
    try:
        return DefusedET.fromstring(main, forbid_dtd=True)
    except (DefusedXmlException, SyntaxError, ValueError) as exc:  # ParseError is a SyntaxError
        raise ScanFormatError(f"{path}: main.xml is not well-formed XML ({exc}); the file is damaged.") from exc


def read_x3p_arrays(path: Path, fh: BinaryIO, limits: Limits, kind: str = "height") -> dict[str, Any]:
    """Read an x3p file into heights, spacing and metadata (metres).

    Parameters
    ----------
    path : pathlib.Path
        File name, used in messages only.
    fh : binary file object
        The open file, seekable.
    limits : Limits
        Size limits to enforce.
    kind : {"height", "intensity"}
        What the caller says the values are; the micrometre repair of heights is
        skipped for ``"intensity"``.

    Returns
    -------
    dict
        ``data`` (2-D float64, metres, NaN missing), ``spacing`` ``(dy, dx)`` in metres,
        ``metadata`` dict, ``fixes`` list of str, ``reader`` str, ``writer``
        (:class:`~ballistics.reading.WriterInfo` from ``Record2`` and the zip directory).
    """
    import x3pio

    fixes: list[str] = []
    fh.seek(0)
    if fh.read(2) != b"PK":
        raise ScanFormatError(f"{path}: not an x3p file (x3p is a zip archive; this file does not "
                              "start with a zip header). Check the file type.")
    zf = open_archive(path, fh, limits)
    main_name = member_name(zf, "main.xml")
    if main_name is None:
        raise ScanFormatError(f"{path}: the archive holds no main.xml, so it is not an x3p file.")
    original = read_member(path, zf, main_name, max_bytes=limits.max_xml_bytes)
    root = parse_main(original, path)
    head = read_header(root, path)
    size = head.size
    file_bytes = fh.seek(0, 2)
    check_header(path, head, zf, file_bytes, limits)
    writer = x3p_writer(root, zf.infolist(), MARKER)
    main = repair_main(original, fixes, str(path))
    if main != original:
        payload = repack(path, zf, main, original, fixes)
    else:
        fh.seek(0)
        try:
            payload = fh.read()
        except OSError as exc:
            raise ScanFormatError(f"{path}: cannot read the file ({exc}).") from exc
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            x3p = x3pio.read(io.BytesIO(payload))
    except x3pio.X3pChecksumError as exc:
        raise ScanFormatError(f"{path}: checksum mismatch, the file was altered or damaged after it "
                              f"was written ({exc}).") from exc
    except x3pio.X3pError as exc:
        raise ScanFormatError(f"{path}: not a readable x3p file: {exc}") from exc
    except ZIP_ERRORS as exc:
        raise ScanFormatError(f"{path}: the archive is truncated or corrupt "
                              f"({type(exc).__name__}: {exc}).") from exc
    if type(x3p).__name__ != "Surface":
        raise ScanFormatError(f"{path}: holds a {type(x3p).__name__}, but a cartridge-case scan must be "
                              "a surface on a regular grid.")
    if len(x3p.layers) != 1:
        fixes.append(f"file holds {len(x3p.layers)} layers; the first is used")
    layer = x3p.layers[0]
    if not layer.is_regular_grid:
        raise ScanFormatError(f"{path}: the surface is not on a regular grid; resample it first.")
    z = np.asarray(layer.z, dtype=np.float64)
    if z.ndim != 2:
        raise ScanFormatError(f"{path}: expected a 2-D surface, got shape {z.shape}.")
    if size is not None and z.shape != (size[1], size[0]):
        raise ScanFormatError(f"{path}: the surface has {z.shape[0]} x {z.shape[1]} points, main.xml "
                              f"declares {size[1]} x {size[0]}.")
    sx, sy = layer.spacing  # type: ignore[attr-defined]  # x3pio gives (x, y)
    z = orient(z, head, fixes)  # negative increments: axes reversed, never just made positive
    spacing = fix_spacing((abs(float(sy)), abs(float(sx))), fixes, str(path))
    if kind != "intensity":  # image values stored in x3p are not heights in any unit
        z = fix_heights(z, fixes, str(path))
    metadata = _metadata(x3p.metadata, writer)
    for fix in fixes:
        logger.info("%s: %s", path, fix)
    return {"data": z, "spacing": spacing, "metadata": metadata, "fixes": fixes,
            "reader": f"x3pio {x3pio.__version__}", "writer": writer}


def _metadata(md: Any, writer: Mapping[str, Any]) -> dict[str, Any]:
    """Instrument, creator, date and comment of ``Record2`` as the scan's metadata."""
    metadata: dict[str, Any] = {}
    if md is not None:
        metadata = {
            "date": md.date.isoformat() if md.date else None,
            "creator": md.creator,
            "instrument": join_instrument(md.instrument.manufacturer, md.instrument.model)
            if md.instrument else None,
            "instrument_serial": md.instrument.serial if md.instrument else None,
            "instrument_version": md.instrument.version if md.instrument else None,
            "comment": md.comment,
        }
    for key in ("calibration_date", "probing_system"):
        if writer.get(key):
            metadata[key] = writer.get(key)
    return metadata
