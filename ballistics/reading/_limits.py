"""Every safety limit of the readers, in one place.

The readers look the limits up when they are called, not when they are imported, so a
change to :data:`LIMITS` (or a :class:`Limits` passed to :func:`ballistics.read_scan`)
takes effect at once::

    from ballistics.reading import LIMITS
    LIMITS.max_file_bytes = 8 * 1024**3      # accept larger files from now on

The limits exist so that a damaged or hostile file (a zip bomb, an image header that
promises billions of pixels, a matrix size edited to 10^12 points) is refused with a
:class:`~ballistics.errors.ScanTooLargeError` before memory is spent on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["LIMITS", "Limits", "current_limits"]


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
    max_image_pixels : int
        Largest PNG/TIFF image, pixels (default 200 million). Checked from the image
        header before decoding. Pillow's own decompression-bomb guard (which this
        library never changes) also applies, so images above Pillow's
        ``2 * Image.MAX_IMAGE_PIXELS`` are refused too.
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
    max_abs_height_m: float = 0.1

    def replace(self, **changes: float) -> Limits:
        """A copy with some limits changed, e.g. ``LIMITS.replace(max_pixels=10**9)``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


#: The limits every reader uses unless it is given others. Change its attributes to
#: change the limits for the whole process.
LIMITS = Limits()


def current_limits(limits: Limits | None = None) -> Limits:
    """The limits to apply now: ``limits`` if given, else the module-wide :data:`LIMITS`."""
    return limits if limits is not None else LIMITS
