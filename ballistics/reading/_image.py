"""2-D optical images (PNG, TIFF) of cartridge cases, read with Pillow.

Reflectance images are not heights: the scan's ``kind`` is ``"intensity"``. The pixel
spacing comes from the file's resolution tag (PNG ``pHYs``, TIFF ``XResolution``) when
present, else it must be given by the caller.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ScanFormatError, ScanTooLargeError, UnitsError
from ..limits import Limits, check_expansion, limit_error

logger = logging.getLogger(__name__)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_crcs(path: Path, fh: BinaryIO) -> str | None:
    """Verify the CRC-32 of every PNG chunk up to ``IEND`` (ISO/IEC 15948:2004, 5.3).

    Pillow checks the CRCs of the header chunks but not of the image data, so a damaged
    ``IDAT`` can decode to other pixel values without an error; this walk makes any
    damage an error. ``fh`` is positioned after the signature. Returns the ``tIME``
    chunk (time of the last modification, UTC) as ISO text, or None (no such chunk or
    impossible values); Pillow does not read it.
    """
    modified: str | None = None
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise ScanFormatError(f"{path}: cannot decode the image: the PNG file is truncated "
                                  "(no IEND chunk).")
        length = int.from_bytes(head[:4], "big")
        if length > 0x7FFFFFFF:
            raise ScanFormatError(f"{path}: PNG chunk {head[4:8]!r} declares {length} bytes; the file is damaged.")
        crc = zlib.crc32(head[4:8])
        left = length
        first = b""
        while left:
            block = fh.read(min(left, 1 << 20))
            if not block:
                raise ScanFormatError(f"{path}: cannot decode the image: the PNG file is truncated "
                                      f"inside chunk {head[4:8]!r}.")
            crc = zlib.crc32(block, crc)
            left -= len(block)
            first = first or block[:7]
        stored = fh.read(4)
        if len(stored) < 4 or int.from_bytes(stored, "big") != crc:
            raise ScanFormatError(f"{path}: PNG chunk {head[4:8]!r} fails its CRC-32 check; the file was "
                                  "damaged after it was written.")
        if head[4:8] == b"tIME" and length == 7:
            modified = _png_time(first)
        if head[4:8] == b"IEND":
            return modified


def _png_size(path: Path, fh: BinaryIO) -> tuple[int, int]:
    """Width and height from the PNG ``IHDR`` chunk; ``fh`` is positioned after the signature
    and left there."""
    pos = fh.tell()
    head = fh.read(16)
    fh.seek(pos)
    if len(head) < 16 or head[4:8] != b"IHDR":
        raise ScanFormatError(f"{path}: cannot decode the image: the PNG file does not start with IHDR.")
    return int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big")


def _check_size(path: Path, w: int, h: int, file_bytes: int, limits: Limits) -> None:
    """Refuse an image whose header promises too many pixels or too much expansion."""
    if w * h > limits.max_image_pixels:
        raise limit_error(path, f"an image of {w} x {h} pixels", "max_image_pixels", limits.max_image_pixels,
                          "Crop it first.")
    check_expansion(path, w * h, file_bytes, limits)


def _png_time(b: bytes) -> str | None:
    """ISO text of a ``tIME`` chunk's 7 bytes, None if the values are impossible."""
    y, mo, d, h, mi, s = int.from_bytes(b[:2], "big"), b[2], b[3], b[4], b[5], b[6]
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+00:00"


#: PNG text keys (ISO/IEC 15948 11.3.4.2) and TIFF tags (TIFF 6.0) naming the writer.
_PNG_KEYS = {"Software": "software", "Author": "creator", "Creation Time": "date",
             "Source": "instrument", "Comment": "comment", "Description": "comment", "Title": "title"}
_TIFF_TAGS = {305: "software", 306: "date", 315: "creator", 271: "instrument_manufacturer",
              272: "instrument_model", 270: "comment", 33432: "copyright"}


def _image_writer(img: Any, fmt: str, png_time: str | None) -> dict[str, Any]:
    """Writer record of a PNG (text chunks, ``tIME``) or TIFF (tags) image."""
    from ._provenance import clean_text, empty_writer, join_instrument

    w: dict[str, Any] = dict(empty_writer(fmt))
    if fmt == "png":
        text = getattr(img, "text", None) or {}
        for key, name in _PNG_KEYS.items():
            val = clean_text(text.get(key)) if isinstance(text.get(key), str) else None
            if val and not w.get(name):
                w[name] = val
        if png_time:
            w["modified"] = png_time
            if not w.get("date"):
                w["date"] = png_time
    else:
        tags = getattr(img, "tag_v2", None)
        for tag, name in _TIFF_TAGS.items():
            try:
                val = tags.get(tag) if tags is not None else None
            except Exception:  # noqa: BLE001  (a damaged tag: nothing to record)
                val = None
            if isinstance(val, bytes):
                val = val.decode("latin-1", "replace")
            val = clean_text(val) if isinstance(val, str) else None
            if val:
                w[name] = val
        if w.get("instrument_manufacturer") or w.get("instrument_model"):
            w["instrument"] = join_instrument(w.get("instrument_manufacturer"), w.get("instrument_model"))
    return w


def read_image_arrays(path: Path, fh: BinaryIO, spacing: float | tuple[float, float] | None,
                      limits: Limits) -> dict[str, Any]:
    """Decode an image file into an intensity array and its spacing in metres.

    The image size is read from the header and checked against
    ``limits.max_image_pixels`` and ``limits.max_expansion`` before any pixel is
    decoded. Pillow's process-wide
    ``Image.MAX_IMAGE_PIXELS`` is never changed; its decompression-bomb error and
    warning are caught here.

    Parameters
    ----------
    path : pathlib.Path
        File name, for messages.
    fh : binary file object
        The open file, seekable.
    spacing : float or (float, float) or None
        Pixel spacing in metres, overriding the file's resolution tag.
    limits : Limits
        Size limits.

    Returns
    -------
    dict
        ``data``, ``spacing`` ``(dy, dx)`` metres, ``metadata``, ``fixes``, ``reader``,
        ``writer`` (PNG text chunks and ``tIME``; TIFF Software, DateTime, Artist, Make,
        Model, ImageDescription tags).
    """
    import PIL
    from PIL import Image

    fixes: list[str] = []
    file_bytes = fh.seek(0, 2)
    fh.seek(0)
    png_time = None
    if fh.read(8) == _PNG_SIGNATURE:
        _check_size(path, *_png_size(path, fh), file_bytes, limits)  # before Pillow sees the file
        png_time = _check_png_crcs(path, fh)
    fh.seek(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Our own limit is checked from the header; Pillow's bomb warning is noise then.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(fh)  # lazy: reads the header only
            w, h = img.size
            _check_size(path, w, h, file_bytes, limits)
            if w <= 0 or h <= 0:
                raise ScanFormatError(f"{path}: the image header gives {w} x {h} pixels.")
            img.load()
            info = dict(img.info)
            fmt = str(img.format or "image").lower()
            writer = _image_writer(img, fmt, png_time)
            arr = _to_array(img, fixes, path)
        except (ScanTooLargeError, ScanFormatError):
            raise
        except Image.DecompressionBombError as exc:
            raise ScanTooLargeError(f"{path}: the image is larger than Pillow's decompression-bomb guard "
                                    f"({exc}), which this library never changes; crop it first.") from exc
        except Exception as exc:  # Pillow raises many types for damaged files
            raise ScanFormatError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc}); the "
                                  "file is truncated, corrupt or not an image.") from exc
    for w_ in caught:  # damaged tags Pillow skipped: the provenance says so
        msg = f"Pillow warned while decoding: {w_.message}"
        if msg not in fixes:
            fixes.append(msg)
            logger.warning("%s: %s", path, msg)
    if arr.ndim != 2:
        raise ScanFormatError(f"{path}: expected a 2-D image, got shape {arr.shape}.")
    if spacing is None:
        dpi = info.get("dpi")
        if not (isinstance(dpi, tuple) and len(dpi) == 2):
            dpi = None
        if dpi and dpi[0] and dpi[0] > 1.0 and dpi[1] and dpi[1] > 1.0:
            dx, dy = 0.0254 / float(dpi[0]), 0.0254 / float(dpi[1])
            if not (1e-8 <= dx <= 1e-3 and 1e-8 <= dy <= 1e-3):
                raise UnitsError(f"{path}: the resolution tag gives ({dy:g}, {dx:g}) m per pixel, which is not "
                                 "a microscope image; pass spacing=... in metres.")
            spacing_t = (dy, dx)
        else:
            raise UnitsError(f"{path}: the image has no resolution tag, so its pixel size is unknown; "
                             "pass spacing=<metres per pixel> (CLI: --spacing).")
    elif np.isscalar(spacing):
        spacing_t = (float(spacing), float(spacing))  # type: ignore[arg-type]
    else:
        spacing_t = (float(spacing[0]), float(spacing[1]))  # type: ignore[index]
    metadata = {"format": img.format, "mode": img.mode,
                "software": info.get("Software") or info.get("software")}
    if not metadata["software"] and writer.get("software"):
        metadata["software"] = writer["software"]
    return {"data": arr, "spacing": spacing_t, "metadata": metadata, "fixes": fixes,
            "reader": f"Pillow {PIL.__version__}", "writer": writer}


def _to_array(img: Any, fixes: list[str], path: Path) -> np.ndarray:
    """Grey-level float64 array of the first frame; colour to luminance, alpha 0 to NaN."""
    if getattr(img, "n_frames", 1) > 1:
        fixes.append(f"image has {img.n_frames} frames; the first is used")
    mode = img.mode
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
    elif mode in ("RGB", "RGBA", "LA", "P", "CMYK", "YCbCr"):
        if mode in ("RGBA", "LA"):
            alpha = np.asarray(img.getchannel("A"), dtype=np.float64)
        else:
            alpha = None
        arr = np.asarray(img.convert("L"), dtype=np.float64)
        fixes.append(f"{mode} colour image converted to grey-level luminance (ITU-R 601)")
        if alpha is not None:
            arr[alpha == 0] = np.nan
            fixes.append("fully transparent pixels marked as not measured")
    else:
        raise ScanFormatError(f"{path}: image mode {mode!r} is not supported; save it as 8- or 16-bit "
                              "grey-level PNG or TIFF.")
    return arr
