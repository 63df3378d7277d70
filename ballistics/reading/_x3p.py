"""ISO 25178-72 x3p through ``x3pio``, with repairs for the deviations real files carry.

x3pio parses the container and the XML (through defusedxml, so no entity expansion).
It rejects some deviations that real instruments and converters write.  Instead of a
parser of our own, the archive is inspected here, the offending bytes of ``main.xml``
are corrected in memory and the repaired archive is handed to x3pio.  Every repair is
returned as a sentence for the scan's provenance:

* revision written ``ISO5436-2000`` (no spaces; DFSC / Cadre TopMatch exports);
* a root element other than ``ISO5436_2`` (some writers use their own name);
* lateral increments or heights stored in micrometres where metres are mandated
  (DFSC SR9-J files) -- detected from physically impossible values;

The MD5 of ``main.xml`` is checked against the file's own checksum before it is
repaired, then recomputed, so a damaged file is still reported as damaged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScanFormatError, ScanReadError, ScanTooLargeError, UnitsError

logger = logging.getLogger(__name__)

#: Largest x3p file accepted, bytes.
MAX_FILE_BYTES = 2 * 1024**3
#: Largest uncompressed archive member accepted, bytes (guards against zip bombs).
MAX_MEMBER_BYTES = 4 * 1024**3
#: Largest surface accepted, pixels (8 GB as float64).
MAX_PIXELS = 400_000_000

_REVISION_RE = re.compile(rb"(<(?:\w+:)?Revision>)\s*([^<]*?)\s*(</(?:\w+:)?Revision>)")
_ROOT_RE = re.compile(rb"<(?!\?|!)([\w.-]+:)?([\w.-]+)([\s>/])")


def _member_name(names: list[str], wanted: str) -> str | None:
    """Name of the archive member whose base name is ``wanted`` (case-insensitive)."""
    hits = [n for n in names if n.rsplit("/", 1)[-1].lower() == wanted.lower() and "__MACOSX" not in n]
    return min(hits, key=len) if hits else None


def _repair_main(main: bytes, fixes: list[str]) -> bytes:
    """Correct known deviations of ``main.xml`` in place; append a sentence per fix."""
    if b"<!DOCTYPE" in main or b"<!ENTITY" in main:
        raise ScanFormatError("main.xml declares a DOCTYPE or entities, which x3p never needs; "
                              "refusing to parse it (possible XML entity attack).")
    m = _REVISION_RE.search(main)
    if m:
        text = m.group(2).decode("utf-8", "replace")
        norm = re.sub(r"\s*[-\u2010-\u2015]\s*", "-", text.strip())
        if norm == "ISO5436-2000" and text.strip() != "ISO5436 - 2000":
            main = main[: m.start(2)] + b"ISO5436 - 2000" + main[m.end(2):]
            fixes.append(f"revision {text.strip()!r} read as 'ISO5436 - 2000' (ISO 25178-72:2017)")
    root = _ROOT_RE.search(main)
    if root and root.group(2) != b"ISO5436_2":
        old = (root.group(1) or b"") + root.group(2)
        if b"Record1" not in main or b"Record3" not in main:
            raise ScanFormatError(f"main.xml has root element <{old.decode()}> and no Record1/Record3: "
                                  "this is not an x3p description.")
        new = (root.group(1) or b"") + b"ISO5436_2"
        main = main[: root.start()] + b"<" + new + main[root.end() - 1:]
        closing = b"</" + old + b">"
        idx = main.rfind(closing)
        if idx >= 0:
            main = main[:idx] + b"</" + new + b">" + main[idx + len(closing):]
        fixes.append(f"root element <{old.decode()}> read as <ISO5436_2>")
    return main


def _repack(zf: zipfile.ZipFile, main_name: str, main: bytes, original_main: bytes,
            fixes: list[str]) -> bytes:
    """Rebuild the archive in memory with a repaired ``main.xml`` and its new checksum."""
    names = zf.namelist()
    md5_name = _member_name(names, "md5checksum.hex")
    if md5_name is not None:
        stored = zf.read(md5_name).decode("ascii", "replace").strip().split()[:1]
        if stored and re.fullmatch(r"[0-9a-fA-F]{32}", stored[0]):
            if stored[0].lower() != hashlib.md5(original_main).hexdigest():
                raise ScanFormatError("main.xml does not match its MD5 checksum: the file was altered "
                                      "or damaged after it was written.")
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
                out.writestr(info.filename, zf.read(info.filename))
    return buf.getvalue()


def _fix_spacing(spacing: tuple[float, float], fixes: list[str], path: str) -> tuple[float, float]:
    """Detect lateral increments stored in micrometres where x3p mandates metres."""
    dy, dx = spacing
    if dx > 1e-3 or dy > 1e-3:
        if 1e-3 <= dx <= 1e3 and 1e-3 <= dy <= 1e3:
            fixes.append(f"lateral increments ({dy:g}, {dx:g}) are not plausible in metres; "
                         "read as micrometres and converted to metres")
            dy, dx = dy * 1e-6, dx * 1e-6
        else:
            raise UnitsError(f"{path}: lateral increments ({dy:g}, {dx:g}) are neither metres nor "
                             "micrometres; fix the file's Record1/Axes increments.")
    return dy, dx


def _fix_heights(z: np.ndarray, fixes: list[str], path: str) -> np.ndarray:
    """Detect heights stored in micrometres where x3p mandates metres."""
    finite = z[np.isfinite(z)]
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99.5])
        span = float(hi - lo)
        # A cartridge-case primer is a few hundred micrometres deep at most: a central
        # height range above 5 mm cannot be metres, and values between 1e-3 and 1e4 are
        # what micrometres look like.
        if span > 5e-3:
            if span < 1e4:
                fixes.append(f"height range {span:g} is not plausible in metres; read as micrometres "
                             "and converted to metres")
                z = z * 1e-6
            else:
                raise UnitsError(f"{path}: height range {span:g} cannot be metres or micrometres; "
                                 "check the z axis of the file.")
    return z


def read_x3p_arrays(path: Path, raw: bytes) -> dict[str, Any]:
    """Read an x3p file's bytes into heights, spacing and metadata (metres).

    Parameters
    ----------
    path : pathlib.Path
        File name, used in messages only.
    raw : bytes
        The whole file.

    Returns
    -------
    dict
        ``data`` (2-D float64, metres, NaN missing), ``spacing`` ``(dy, dx)`` in metres,
        ``metadata`` dict, ``fixes`` list of str, ``reader`` str.
    """
    import x3pio

    fixes: list[str] = []
    if not raw.startswith(b"PK"):
        raise ScanFormatError(f"{path}: not an x3p file (x3p is a zip archive; this file does not "
                              "start with a zip header). Check the file type.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ScanFormatError(f"{path}: the zip container is truncated or corrupt ({exc}); "
                              "copy the file again from its source.") from exc
    total = 0
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise ScanTooLargeError(f"{path}: archive member {info.filename!r} unpacks to "
                                    f"{info.file_size / 1e9:.1f} GB, above the {MAX_MEMBER_BYTES / 1e9:.0f} GB "
                                    "limit (ballistics.reading.MAX_MEMBER_BYTES).")
        total += info.file_size
    names = zf.namelist()
    main_name = _member_name(names, "main.xml")
    if main_name is None:
        raise ScanFormatError(f"{path}: the archive holds no main.xml, so it is not an x3p file.")
    try:
        original = zf.read(main_name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ScanFormatError(f"{path}: main.xml cannot be unpacked ({exc}); the file is damaged.") from exc
    size = re.search(rb"<SizeX>\s*(\d+)\s*</SizeX>.*?<SizeY>\s*(\d+)\s*</SizeY>", original, re.S)
    if size and int(size.group(1)) * int(size.group(2)) > MAX_PIXELS:
        raise ScanTooLargeError(f"{path}: {int(size.group(1))} x {int(size.group(2))} points exceed the "
                                f"limit of {MAX_PIXELS:,} (ballistics.reading.MAX_PIXELS); crop or "
                                "subsample the scan first.")
    main = _repair_main(original, fixes)
    payload: bytes | io.BytesIO = raw
    if main != original:
        payload = _repack(zf, main_name, main, original, fixes)
    try:
        with np.errstate(invalid="ignore"):
            x3p = x3pio.read(io.BytesIO(payload))
    except x3pio.X3pChecksumError as exc:
        raise ScanFormatError(f"{path}: checksum mismatch, the file was altered or damaged after it "
                              f"was written ({exc}).") from exc
    except x3pio.X3pError as exc:
        raise ScanFormatError(f"{path}: not a readable x3p file: {exc}") from exc
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise ScanFormatError(f"{path}: the archive is truncated or corrupt ({exc}).") from exc
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
    sx, sy = layer.spacing  # x3pio gives (x, y)
    spacing = _fix_spacing((abs(float(sy)), abs(float(sx))), fixes, str(path))
    if b'"kind":"intensity"' not in original:  # images stored by write_x3p are not heights
        z = _fix_heights(z, fixes, str(path))
    md = x3p.metadata
    metadata: dict[str, Any] = {}
    if md is not None:
        metadata = {
            "date": md.date.isoformat() if md.date else None,
            "creator": md.creator,
            "instrument": " ".join(filter(None, [md.instrument.manufacturer, md.instrument.model]))
            if md.instrument else None,
            "instrument_serial": md.instrument.serial if md.instrument else None,
            "instrument_version": md.instrument.version if md.instrument else None,
            "comment": md.comment,
        }
    for fix in fixes:
        logger.info("%s: %s", path, fix)
    return {"data": z, "spacing": spacing, "metadata": metadata, "fixes": fixes,
            "reader": f"x3pio {x3pio.__version__}"}


def write_x3p_file(data: np.ndarray, spacing: tuple[float, float], metadata: dict[str, Any],
                   comment: str, path: Path, dtype: str = "float64") -> None:
    """Write heights (metres, NaN missing) with spacing ``(dy, dx)`` in metres through x3pio."""
    import datetime as _dt

    import x3pio

    from .._version import __version__

    z_type = {"float64": x3pio.DataType.FLOAT64, "float32": x3pio.DataType.FLOAT32}[dtype]
    surface = x3pio.Surface.from_array(np.asarray(data, dtype=np.float64), x_scale=float(spacing[1]),
                                       y_scale=float(spacing[0]), z_type=z_type)
    instrument = str(metadata.get("instrument") or "")
    surface.metadata = x3pio.Metadata(
        date=_dt.datetime.now(_dt.timezone.utc),
        creator=str(metadata.get("creator") or "ballistics"),
        instrument=x3pio.Instrument(manufacturer=instrument or "ballistics", model=instrument or "ballistics",
                                    serial=str(metadata.get("instrument_serial") or ""),
                                    version=str(metadata.get("instrument_version") or __version__)),
        probing_system=x3pio.ProbingSystem(type=x3pio.ProbingType.SOFTWARE,
                                           identification=f"ballistics {__version__}"),
        comment=comment,
    )
    surface.save(str(path))
