"""Every safety limit of the scan readers, in one place.

The readers look the limits up when they are called, not when they are imported, so a
change to :data:`LIMITS` (or a :class:`Limits` passed to :func:`ballistics.read_scan`)
takes effect at once::

    from ballistics.reading import LIMITS, Limits
    LIMITS.max_file_bytes = 8 * 1024**3                       # for the whole process
    read_scan(path, limits=LIMITS.replace(max_expansion=1e4))  # for one trusted file

The limits exist so that a damaged or hostile file (a zip bomb, an image header that
promises billions of pixels, a matrix size edited to 10^12 points, a few hundred
kilobytes that decode to gigabytes) is refused with a
:class:`~ballistics.errors.ScanTooLargeError` before memory is spent on it. Every such
error names the limit that was hit and how to raise it.

This module is part of the base layer: :mod:`ballistics.scan` reads
``max_abs_height_m`` from it, :mod:`ballistics.reading` everything else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ScanTooLargeError

__all__ = ["LIMITS", "Limits", "current_limits", "limit_error", "check_expansion"]


@dataclass
class Limits:
    """Safety limits of the scan readers.

    Attributes
    ----------
    max_file_bytes : int
        Largest file accepted, bytes (default 2 GiB).
    max_member_bytes : int
        Largest uncompressed member of an x3p archive, bytes (default 4 GiB).
    max_total_uncompressed_bytes : int
        Largest sum of the uncompressed sizes of all members of an x3p archive, as
        declared in its directory, bytes (default 4.5 GiB). Checked before any member is
        unpacked, so a zip bomb is refused without inflating it.
    max_xml_bytes : int
        Largest ``main.xml`` accepted, bytes (default 256 MiB; heights stored as text
        in the XML can make it large).
    max_pixels : int
        Largest surface (x3p, al3d), points (default 400 million, 3.2 GB as float64).
        Checked from ``main.xml`` or the al3d header before any point is decoded.
    max_image_pixels : int
        Largest PNG/TIFF image, pixels (default 200 million). Checked from the image
        header before decoding. Pillow's own decompression-bomb guard (which this
        library never changes) also applies, so images above Pillow's
        ``2 * Image.MAX_IMAGE_PIXELS`` are refused too.
    max_expansion : float
        Largest ratio of the decoded surface's bytes (8 bytes per point, float64) to the
        file's bytes (default 256). Compressed formats (x3p, PNG, deflated TIFF) can
        promise a surface thousands of times larger than the file: a few hundred
        kilobytes that decode to gigabytes. Real scans decode to 2 to 14 times their file
        size (the bundled sample and the shared collection: x3p 2.2 to 5.0, NBIDE PNG
        13.8). Checked from the header before decoding.
    expansion_floor_bytes : int
        Surfaces up to this many decoded bytes are never refused by ``max_expansion``
        (default 64 MiB, 8 million points), so small, very uniform files stay readable.
    max_abs_height_m : float
        Largest magnitude of a height accepted, metres (default 0.1 m). Instruments
        record an absolute stage position, so heights of a few millimetres occur
        (Alicona files); a tenth of a metre does not exist on a cartridge case.
    """

    max_file_bytes: int = 2 * 1024**3
    max_member_bytes: int = 4 * 1024**3
    max_total_uncompressed_bytes: int = 4 * 1024**3 + 512 * 1024**2
    max_xml_bytes: int = 256 * 1024**2
    max_pixels: int = 400_000_000
    max_image_pixels: int = 200_000_000
    max_expansion: float = 256.0
    expansion_floor_bytes: int = 64 * 1024**2
    max_abs_height_m: float = 0.1

    def replace(self, **changes: Any) -> Limits:
        """A copy with some limits changed, e.g. ``LIMITS.replace(max_pixels=10**9)``."""
        return dataclasses.replace(self, **changes)


#: The limits every reader uses unless it is given others. Change its attributes to
#: change the limits for the whole process.
LIMITS = Limits()


def current_limits(limits: Limits | None = None) -> Limits:
    """The limits to apply now: ``limits`` if given, else the module-wide :data:`LIMITS`."""
    return limits if limits is not None else LIMITS


def limit_error(path: object, what: str, name: str, limit: float, hint: str = "") -> ScanTooLargeError:
    """A :class:`ScanTooLargeError` that names the limit and how to raise it.

    Parameters
    ----------
    path : path-like or str
        The file, named first in the message.
    what : str
        What is too large, with its size (``"4000 x 4000 points"``).
    name : str
        The :class:`Limits` field that was exceeded.
    limit : float
        Its current value.
    hint : str, optional
        A sentence on what else can be done (crop, subsample).
    """
    shown = f"{limit:,}" if isinstance(limit, int) else f"{limit:g}"
    return ScanTooLargeError(
        f"{path}: {what} exceeds Limits.{name} = {shown} (ballistics.reading.LIMITS.{name}). "
        + (hint + " " if hint else "")
        + f"If the file is trusted, raise the limit: read_scan(path, limits=LIMITS.replace({name}=...)).")


def check_expansion(path: object, points: int, file_bytes: int, limits: Limits) -> None:
    """Refuse a surface that would decode to far more bytes than its file holds.

    Parameters
    ----------
    path : path-like or str
        The file, for the message.
    points : int
        Number of points (pixels) the header promises.
    file_bytes : int
        Size of the file, bytes.
    limits : Limits
        ``max_expansion`` and ``expansion_floor_bytes`` are applied.

    Raises
    ------
    ScanTooLargeError
        ``8 * points`` exceeds both ``expansion_floor_bytes`` and
        ``max_expansion * file_bytes``.
    """
    decoded = 8 * int(points)
    if decoded <= limits.expansion_floor_bytes:
        return
    if decoded > limits.max_expansion * max(int(file_bytes), 1):
        ratio = decoded / max(int(file_bytes), 1)
        raise limit_error(path, f"{points:,} points ({decoded / 1e6:,.1f} MB as float64) from a file of "
                                f"{file_bytes:,} bytes (expansion {ratio:,.0f} x)", "max_expansion",
                          limits.max_expansion, "Real scans decode to at most about 15 times their size; "
                          "this file is a decompression bomb or damaged.")
