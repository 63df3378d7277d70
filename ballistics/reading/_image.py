"""2-D optical images (PNG, TIFF) of cartridge cases, read with Pillow.

Reflectance images are not heights: the scan's ``kind`` is ``"intensity"``. The pixel
spacing comes from the file's resolution tag (PNG ``pHYs``, TIFF ``XResolution``) when
present, else it must be given by the caller.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScanFormatError, ScanTooLargeError, UnitsError

logger = logging.getLogger(__name__)

#: Largest image accepted, pixels.
MAX_IMAGE_PIXELS = 200_000_000


def read_image_arrays(path: Path, raw: bytes, spacing: float | tuple[float, float] | None) -> dict[str, Any]:
    """Decode an image file into an intensity array and its spacing in metres.

    Parameters
    ----------
    path : pathlib.Path
        File name, for messages.
    raw : bytes
        The file's bytes.
    spacing : float or (float, float) or None
        Pixel spacing in metres, overriding the file's resolution tag.

    Returns
    -------
    dict
        ``data``, ``spacing`` ``(dy, dx)`` metres, ``metadata``, ``fixes``, ``reader``.
    """
    import PIL
    from PIL import Image

    fixes: list[str] = []
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ScanTooLargeError(f"{path}: image is larger than {MAX_IMAGE_PIXELS:,} pixels "
                                "(ballistics.reading.MAX_IMAGE_PIXELS); crop it first.") from exc
    except Exception as exc:  # Pillow raises many types for damaged files
        raise ScanFormatError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc}); the "
                              "file is truncated, corrupt or not an image.") from exc
    info = dict(img.info)
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
    if arr.ndim != 2:
        raise ScanFormatError(f"{path}: expected a 2-D image, got shape {arr.shape}.")
    if spacing is None:
        dpi = info.get("dpi")
        if dpi and dpi[0] and dpi[0] > 1.0 and dpi[1] and dpi[1] > 1.0:
            dx, dy = 0.0254 / float(dpi[0]), 0.0254 / float(dpi[1])
            if not (1e-8 <= dx <= 1e-3):
                raise UnitsError(f"{path}: the resolution tag gives {dx:g} m per pixel, which is not "
                                 "a microscope image; pass spacing=... in metres.")
            spacing_t = (dy, dx)
        else:
            raise UnitsError(f"{path}: the image has no resolution tag, so its pixel size is unknown; "
                             "pass spacing=<metres per pixel> (CLI: --spacing).")
    elif np.isscalar(spacing):
        spacing_t = (float(spacing), float(spacing))  # type: ignore[arg-type]
    else:
        spacing_t = (float(spacing[0]), float(spacing[1]))  # type: ignore[index]
    metadata = {"format": img.format, "mode": mode,
                "software": info.get("Software") or info.get("software")}
    return {"data": arr, "spacing": spacing_t, "metadata": metadata, "fixes": fixes,
            "reader": f"Pillow {PIL.__version__}"}
