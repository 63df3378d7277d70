"""Alicona ``.al3d`` depth files (focus-variation microscopes).

The format is a fixed ASCII header (``AliconaImaging``, then tags of a 20-byte key and
a 30-byte value, each ending in CR LF) followed by the depth image as little-endian
float32 in metres, one row after another; rows may be padded to a multiple of 8
columns. Points that were not measured hold ``InvalidPixelValue``. No well-kept Python
library reads this format, so this small reader exists; it was checked against the
vendor's own x3p export of the same measurement (correlation 0.99996, same
orientation, same NaN pattern within 0.2 %: ``tests/test_reading.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ScanFormatError
from ..limits import Limits, limit_error
from ._provenance import empty_writer

#: Header tags that describe the image layout, not who wrote it.
_LAYOUT_TAGS = frozenset({"Version", "TagCount", "Cols", "Rows", "IconOffset", "DepthImageOffset",
                          "TextureImageOffset", "InvalidPixelValue", "PixelSizeXMeter", "PixelSizeYMeter",
                          "NumberOfPlanes", "TexturePtr", "DepthImageOffsetHigh", "TextureImageOffsetHigh"})

_MAGIC = b"AliconaImaging"
_TAG = 52
_MAX_TAGS = 200
_HEADER_BYTES = len(_MAGIC) + 3 + (_MAX_TAGS + 2) * _TAG


def read_al3d_arrays(path: Path, fh: BinaryIO, limits: Limits) -> dict[str, Any]:
    """Decode an ``.al3d`` file into heights (metres, NaN missing) and spacing.

    Parameters
    ----------
    path : pathlib.Path
        File name, for messages.
    fh : binary file object
        The open file, seekable; only the header and the depth image are read.
    limits : Limits
        ``max_pixels`` is enforced before the depth image is read.

    Returns
    -------
    dict
        ``data`` (metres, NaN missing), ``spacing`` ``(dy, dx)`` metres, ``metadata``,
        ``fixes``, ``reader``, ``writer`` (the header's ``Version`` and any tag that is not
        part of the image layout; the format names no software, creator or date).
    """
    max_pixels = limits.max_pixels
    file_size = fh.seek(0, 2)
    fh.seek(0)
    raw = fh.read(_HEADER_BYTES)
    if not raw.startswith(_MAGIC):
        raise ScanFormatError(f"{path}: not an Alicona al3d file.")
    tags: dict[str, str] = {}
    off = len(_MAGIC) + 3  # magic, NUL, CR LF
    while off + _TAG <= len(raw):
        block = raw[off:off + _TAG]
        key = block[:20].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        if not key:
            break
        tags[key] = block[20:50].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        off += _TAG
        if len(tags) > _MAX_TAGS:
            raise ScanFormatError(f"{path}: al3d header has no end; the file is corrupt.")
    try:
        rows, cols = int(tags["Rows"]), int(tags["Cols"])
        depth_off = int(tags["DepthImageOffset"])
        dx, dy = float(tags["PixelSizeXMeter"]), float(tags["PixelSizeYMeter"])
        invalid = float(tags.get("InvalidPixelValue", "nan"))
    except (KeyError, ValueError) as exc:
        raise ScanFormatError(f"{path}: al3d header lacks or garbles a required tag ({exc}).") from exc
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        raise ScanFormatError(f"{path}: al3d header gives pixel sizes ({dx!r}, {dy!r}) m, which are not "
                              "positive numbers.")
    if rows <= 0 or cols <= 0 or depth_off <= 0:
        raise ScanFormatError(f"{path}: al3d header gives an empty depth image ({rows} x {cols}).")
    if rows * cols > max_pixels:
        raise limit_error(path, f"a depth image of {rows} x {cols} points", "max_pixels", max_pixels,
                          "Crop or subsample the scan first.")
    fixes: list[str] = []
    stride = cols
    if depth_off + rows * cols * 4 > file_size:
        raise ScanFormatError(f"{path}: the depth image is truncated ({max(file_size - depth_off, 0)} bytes "
                              f"for {rows} x {cols} float32 values).")
    padded = cols + (-cols) % 8
    if padded != cols and depth_off + rows * padded * 4 <= file_size:
        stride = padded
    fh.seek(depth_off)
    body = fh.read(rows * stride * 4)
    if len(body) != rows * stride * 4:
        raise ScanFormatError(f"{path}: the depth image is truncated (the file shrank while it was read).")
    z = np.frombuffer(body, dtype="<f4").reshape(rows, stride)
    with np.errstate(invalid="ignore"):  # NaN payloads of float32 warn when widened
        z = z[:, :cols].astype(np.float64)
    bad = ~np.isfinite(z)
    if np.isfinite(invalid):
        bad |= np.abs(z) >= 0.5 * abs(invalid) if abs(invalid) > 1 else z == invalid
    z[bad] = np.nan
    meta = {"instrument": "Alicona", "al3d_version": tags.get("Version"),
            "texture_present": tags.get("TextureImageOffset", "0") != "0"}
    writer = empty_writer("al3d")
    writer["instrument"] = "Alicona"  # the format is Alicona's own; the header names no instrument
    if tags.get("Version"):
        writer["format_version"] = tags["Version"][:40]
    other = {k: v for k, v in tags.items() if k not in _LAYOUT_TAGS and v}
    if other:
        writer["header_tags"] = "; ".join(f"{k}={v}" for k, v in sorted(other.items()))[:2000]
    return {"data": z, "spacing": (dy, dx), "metadata": meta, "fixes": fixes,
            "reader": "ballistics al3d reader", "writer": writer}
