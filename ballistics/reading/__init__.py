"""Reading and writing scans: ``read_scan`` and ``write_x3p``.

Formats are recognised by their content, not their file name:

* ISO 25178-72 **x3p** (zip archive) through ``x3pio``, with repairs of the deviations
  real files carry; the zip CRC-32s and the MD5 checksums of ``main.xml`` and of the
  point data are verified;
* **PNG / TIFF** optical images through Pillow (``kind == "intensity"``); PNG chunk
  CRCs are verified;
* Alicona **.al3d** depth files (small reader of our own, checked against the vendor's x3p).

Every failure is a :class:`~ballistics.errors.BallisticsError` subclass whose message
names the file; every scan returned has passed :meth:`~ballistics.Scan.validate`.
Size limits (zip bombs, huge images, absurd matrix sizes, small files that decode to
gigabytes) are in :data:`LIMITS` (:class:`Limits`, defined in :mod:`ballistics.limits`),
looked up at call time.
"""

from __future__ import annotations

from ..limits import LIMITS, Limits
from ._provenance import WriterInfo, handedness_hint
from ._read import file_sha256, read_scan, scan_from_array
from ._write import write_x3p

__all__ = ["LIMITS", "Limits", "WriterInfo", "file_sha256", "handedness_hint", "read_scan", "scan_from_array",
           "write_x3p"]
