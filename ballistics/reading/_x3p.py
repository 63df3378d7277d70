"""ISO 25178-72 x3p through ``x3pio``, with repairs for the deviations real files carry.

x3pio parses the container and the XML (through defusedxml, so no entity expansion)
and verifies the MD5 checksums of ``main.xml`` (``md5checksum.hex``) and of the binary
point data (``Record3/DataLink/MD5ChecksumPointData``) and validity mask whenever the
file carries them; :mod:`zipfile` checks every member's CRC-32. Before x3pio sees the
file, this module:

1. opens the archive through :mod:`ballistics.reading._archive`, which checks the
   declared member sizes and their total against the limits (zip bombs);
2. parses ``main.xml`` with defusedxml (DOCTYPE and entities refused) and checks the
   matrix size it declares against ``LIMITS.max_pixels``;
3. corrects the known deviations (:mod:`ballistics.reading._repair`) in memory and
   re-packs the archive, after verifying the original ``main.xml`` checksum.

Every repair is returned as a sentence for the scan's provenance; every failure is a
:class:`~ballistics.errors.ScanReadError` subclass that names the file.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ScanFormatError, ScanTooLargeError
from ._archive import ZIP_ERRORS, member_name, open_archive, read_member, repack
from ._limits import Limits
from ._provenance import MARKER, join_instrument, x3p_writer
from ._repair import fix_heights, fix_spacing, refuse_dtd, repair_main

logger = logging.getLogger(__name__)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


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


def declared_size(main: bytes | Any, path: Path) -> tuple[int, int, int] | None:
    """``(SizeX, SizeY, SizeZ)`` of ``Record3/MatrixDimension`` from a safe XML parse.

    ``main`` is the bytes of ``main.xml`` or its root element from :func:`parse_main`.
    Returns None when the file has no matrix dimension (x3pio then reports what is
    missing); raises :class:`ScanFormatError` when ``main.xml`` is not well-formed or
    a size is not a non-negative integer.
    """
    root = parse_main(main, path) if isinstance(main, bytes) else main
    dims = next((el for el in root.iter() if _local(el.tag) == "MatrixDimension"), None)
    if dims is None:
        return None
    sizes: dict[str, int] = {}
    for el in dims:
        key = _local(el.tag)
        if key in ("SizeX", "SizeY", "SizeZ"):
            text = (el.text or "").strip()
            if not re.fullmatch(r"[0-9]{1,18}", text):
                raise ScanFormatError(f"{path}: main.xml gives {key} = {text[:40]!r}, not a matrix size.")
            sizes[key] = int(text)
    if len(sizes) < 3:
        raise ScanFormatError(f"{path}: main.xml's MatrixDimension lacks "
                              f"{sorted({'SizeX', 'SizeY', 'SizeZ'} - set(sizes))}.")
    return sizes["SizeX"], sizes["SizeY"], sizes["SizeZ"]


def read_x3p_arrays(path: Path, fh: BinaryIO, limits: Limits) -> dict[str, Any]:
    """Read an x3p file into heights, spacing and metadata (metres).

    Parameters
    ----------
    path : pathlib.Path
        File name, used in messages only.
    fh : binary file object
        The open file, seekable.
    limits : Limits
        Size limits to enforce.

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
    size = declared_size(root, path)
    writer = x3p_writer(root, zf.infolist(), MARKER)
    if size is not None:
        nx, ny, nz = size
        if nx * ny * max(nz, 1) > limits.max_pixels:
            raise ScanTooLargeError(f"{path}: {nx} x {ny} points exceed the limit of {limits.max_pixels:,} "
                                    "(ballistics.reading.LIMITS.max_pixels); crop or subsample the scan first.")
    main = repair_main(original, fixes, str(path))
    if main != original:
        payload = repack(path, zf, main_name, main, original, fixes)
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
    z = np.array(layer.z, dtype=np.float64)
    if z.ndim != 2:
        raise ScanFormatError(f"{path}: expected a 2-D surface, got shape {z.shape}.")
    if size is not None and z.shape != (size[1], size[0]):
        raise ScanFormatError(f"{path}: the surface has {z.shape[0]} x {z.shape[1]} points, main.xml "
                              f"declares {size[1]} x {size[0]}.")
    sx, sy = layer.spacing  # type: ignore[attr-defined]  # x3pio gives (x, y)
    spacing = fix_spacing((abs(float(sy)), abs(float(sx))), fixes, str(path))
    if b'"kind":"intensity"' not in original:  # images stored by write_x3p are not heights
        z = fix_heights(z, fixes, str(path))
    md = x3p.metadata
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
    for fix in fixes:
        logger.info("%s: %s", path, fix)
    return {"data": z, "spacing": spacing, "metadata": metadata, "fixes": fixes,
            "reader": f"x3pio {x3pio.__version__}", "writer": writer}


def write_x3p_file(data: np.ndarray, spacing: tuple[float, float], metadata: dict[str, Any],
                   comment: str, fh: BinaryIO, dtype: str = "float64",
                   writer: dict[str, Any] | None = None) -> None:
    """Write heights (metres, NaN missing) with spacing ``(dy, dx)`` in metres to ``fh``.

    ``Record2`` names the creator, the instrument (manufacturer and model kept apart
    when ``writer`` knows them) and its calibration date as the scan's ``metadata`` and
    ``writer`` give them; its Date is the time of writing and its ProbingSystem says
    the surface was written by this library (Type ``Software``). The source's own
    writer record travels in full in the JSON of ``comment``.
    """
    import datetime as _dt

    import x3pio

    from .._version import __version__

    w = writer or {}
    z_type = {"float64": x3pio.DataType.FLOAT64, "float32": x3pio.DataType.FLOAT32}[dtype]
    surface = x3pio.Surface.from_array(np.asarray(data, dtype=np.float64), x_scale=float(spacing[1]),
                                       y_scale=float(spacing[0]), z_type=z_type)
    instrument = str(metadata.get("instrument") or w.get("instrument") or "")
    man = str(w.get("instrument_manufacturer") or "")
    mod = str(w.get("instrument_model") or "")
    if join_instrument(man, mod) != (instrument or None):  # the metadata was edited: it wins
        man, mod = instrument, ""
    cal = None
    cal_text = str(metadata.get("calibration_date") or w.get("calibration_date") or "")
    if cal_text:
        try:
            cal = _dt.datetime.fromisoformat(cal_text.replace("Z", "+00:00"))
        except ValueError:
            cal = None
    surface.metadata = x3pio.Metadata(
        date=_dt.datetime.now(_dt.timezone.utc),
        creator=str(metadata.get("creator") or w.get("creator") or "ballistics"),
        instrument=x3pio.Instrument(manufacturer=man or "ballistics", model=mod or man or "ballistics",
                                    serial=str(metadata.get("instrument_serial") or ""),
                                    version=str(metadata.get("instrument_version") or __version__)),
        calibration_date=cal,
        probing_system=x3pio.ProbingSystem(type=x3pio.ProbingType.SOFTWARE,
                                           identification=f"ballistics {__version__}"),
        comment=comment,
    )
    surface.save(fh)
