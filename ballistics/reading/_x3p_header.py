"""What ``main.xml`` promises, checked before a single point is unpacked.

From the safe parse of ``main.xml`` (defusedxml, no DOCTYPE or entities) this module
reads the matrix size, the three axes (type, data type, increment, offset) and the
names of the binary members, and checks them against the archive directory and the
limits:

* points (``max_pixels``) and the expansion from file bytes to decoded bytes
  (``max_expansion``), so a small file cannot promise gigabytes;
* the declared (directory) size of the point-data and validity members against what
  the matrix and the data types need, so nothing is inflated for a file whose sizes
  disagree;
* an incremental z axis is refused (ISO 25178-72 requires an absolute z axis; see
  ``ballistics/reading/README.md``);
* a negative lateral increment is a repair: the axis is reversed so that the surface
  keeps its handedness (:func:`orient`), and the provenance says so.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScanFormatError
from ..limits import Limits, check_expansion, limit_error

#: Bytes per stored value of each ISO 25178-72 data type code.
ITEM_BYTES = {"I": 2, "L": 4, "F": 4, "D": 8}


def local(tag: str) -> str:
    """Local name of an XML tag, without namespace or prefix."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _find(el: Any, name: str) -> Any:
    return next((c for c in el.iter() if local(str(c.tag)) == name), None)


def _child(el: Any, name: str) -> Any:
    return next((c for c in el if local(str(c.tag)) == name), None) if el is not None else None


def _text(el: Any) -> str:
    return (el.text or "").strip() if el is not None else ""


@dataclass
class Axis:
    """One axis of ``Record1/Axes``: ``type`` ``"A"``/``"I"``, data type code, increment, offset."""

    type: str = "A"
    data_type: str = ""
    increment: float = 1.0
    offset: float = 0.0


@dataclass
class Header:
    """The sizes and axes ``main.xml`` declares (``size`` None when it has no matrix)."""

    size: tuple[int, int, int] | None = None
    axes: dict[str, Axis] = field(default_factory=dict)
    point_data: str | None = None
    valid_points: str | None = None


def _number(text: str, what: str, path: Path, default: float) -> float:
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        raise ScanFormatError(f"{path}: main.xml gives {what} = {text[:40]!r}, not a number.") from None
    if not math.isfinite(v):
        raise ScanFormatError(f"{path}: main.xml gives {what} = {text[:40]!r}, not a finite number.")
    return v


def declared_size(root: Any, path: Path) -> tuple[int, int, int] | None:
    """``(SizeX, SizeY, SizeZ)`` of ``Record3/MatrixDimension``; None when there is none.

    Raises :class:`ScanFormatError` when a size is not a non-negative integer or one is
    missing.
    """
    dims = _find(root, "MatrixDimension")
    if dims is None:
        return None
    sizes: dict[str, int] = {}
    for el in dims:
        key = local(str(el.tag))
        if key in ("SizeX", "SizeY", "SizeZ"):
            text = _text(el)
            if not re.fullmatch(r"[0-9]{1,18}", text):
                raise ScanFormatError(f"{path}: main.xml gives {key} = {text[:40]!r}, not a matrix size.")
            sizes[key] = int(text)
    if len(sizes) < 3:
        raise ScanFormatError(f"{path}: main.xml's MatrixDimension lacks "
                              f"{sorted({'SizeX', 'SizeY', 'SizeZ'} - set(sizes))}.")
    return sizes["SizeX"], sizes["SizeY"], sizes["SizeZ"]


def read_header(root: Any, path: Path) -> Header:
    """The :class:`Header` of a parsed ``main.xml`` (root element)."""
    head = Header(size=declared_size(root, path))
    axes = _find(root, "Axes")
    for name in ("CX", "CY", "CZ"):
        el = _child(axes, name)
        if el is None:
            continue
        head.axes[name] = Axis(type=_text(_child(el, "AxisType")).upper()[:1] or "A",
                               data_type=_text(_child(el, "DataType")).upper()[:1],
                               increment=_number(_text(_child(el, "Increment")), f"{name} Increment", path, 1.0),
                               offset=_number(_text(_child(el, "Offset")), f"{name} Offset", path, 0.0))
    link = _find(root, "DataLink")
    if link is not None:
        head.point_data = _text(_child(link, "PointDataLink")) or None
    valid = _find(root, "ValidPointsLink")
    if valid is not None:
        head.valid_points = _text(valid) or None
    return head


def _member(zf: zipfile.ZipFile, link: str) -> zipfile.ZipInfo | None:
    """The archive member a link names (exactly, or case-insensitively, or in one folder)."""
    want = link.replace("\\", "/").lstrip("./").lower()
    infos = [i for i in zf.infolist() if not i.is_dir() and "__macosx" not in i.filename.lower()]
    exact = [i for i in infos if i.filename.lower() == want]
    if exact:
        return exact[0]
    nested = [i for i in infos if i.filename.lower().endswith("/" + want)]
    return nested[0] if len(nested) == 1 else None


def check_header(path: Path, head: Header, zf: zipfile.ZipFile, file_bytes: int, limits: Limits) -> None:
    """Check what ``main.xml`` promises before anything is decoded.

    Raises
    ------
    ScanTooLargeError
        More points than ``limits.max_pixels``, or a decoded surface more than
        ``limits.max_expansion`` times the file's size.
    ScanFormatError
        An incremental z axis, an unknown data type, or a data or validity member whose
        size in the archive directory is not what the matrix needs.
    """
    cz = head.axes.get("CZ")
    if cz is not None and cz.type == "I":
        raise ScanFormatError(
            f"{path}: main.xml declares the z axis incremental (CZ AxisType 'I'). ISO 25178-72 requires the "
            "z axis of a surface to be absolute: an incremental axis stores no values (its coordinates are "
            "Offset + index x Increment), so the file holds no heights that can be read without guessing. "
            "Have it re-exported with CZ AxisType 'A' (heights = stored value x Increment).")
    if head.size is None:
        return
    nx, ny, nz = head.size
    count = nx * ny * max(nz, 1)
    if count > limits.max_pixels:
        raise limit_error(path, f"a matrix of {nx} x {ny} x {max(nz, 1)} = {count:,} points", "max_pixels",
                          limits.max_pixels, "Crop or subsample the scan first.")
    check_expansion(path, count, file_bytes, limits)
    if head.point_data is None:
        return
    item = 0
    for name in ("CX", "CY", "CZ"):
        ax = head.axes.get(name)
        if ax is None or ax.type == "I":
            continue
        if ax.data_type not in ITEM_BYTES:
            raise ScanFormatError(f"{path}: main.xml gives {name} the data type {ax.data_type!r}; x3p knows "
                                  "I, L, F and D.")
        item += ITEM_BYTES[ax.data_type]
    data = _member(zf, head.point_data)
    if data is not None and item and data.file_size != count * item:
        raise ScanFormatError(f"{path}: the point data {data.filename!r} declares {data.file_size:,} bytes in the "
                              f"archive directory, but {count:,} points of {item} bytes need {count * item:,}; the "
                              "file is damaged.")
    valid = _member(zf, head.valid_points) if head.valid_points else None
    if valid is not None and valid.file_size != (count + 7) // 8:
        raise ScanFormatError(f"{path}: the validity mask {valid.filename!r} declares {valid.file_size:,} bytes, "
                              f"but {count:,} points need {(count + 7) // 8:,}; the file is damaged.")


def orient(z: np.ndarray, head: Header, fixes: list[str]) -> np.ndarray:
    """Reverse the axes whose increment is negative, so that both increase with the index.

    A negative ``CX`` (``CY``) increment means x (y) decreases along the columns (rows).
    Taking the magnitude alone would mirror the surface; reversing the columns (rows)
    keeps its handedness. Each reversal is recorded in ``fixes``; a negative ``CZ``
    increment needs nothing (heights are the stored values times it, as the standard
    defines) and is recorded too.
    """
    cx, cy, cz = (head.axes.get(n) for n in ("CX", "CY", "CZ"))
    if cx is not None and cx.increment < 0:
        z = z[:, ::-1]
        fixes.append(f"CX increment {cx.increment:g} is negative (x decreases along the columns): columns "
                     "reversed so x increases; the surface keeps its handedness")
    if cy is not None and cy.increment < 0:
        z = z[::-1, :]
        fixes.append(f"CY increment {cy.increment:g} is negative (y decreases along the rows): rows reversed "
                     "so y increases; the surface keeps its handedness")
    if cz is not None and cz.increment < 0 and cz.type == "A":
        fixes.append(f"CZ increment {cz.increment:g} is negative: heights are the stored values times it, as "
                     "ISO 25178-72 defines")
    return np.ascontiguousarray(z)
