"""Per-scan data computed at ingest for the verification stages of search (issue 10).

:func:`ingest_blobs` names the byte blobs that :class:`~ballistics.index.CaseDatabase`
computes from each extracted surface when it is added, and stores with the scan.
"""

from __future__ import annotations

from typing import Callable

from ..scan import Scan


def ingest_blobs() -> dict[str, Callable[[Scan], bytes]]:
    """Name -> function of an extracted surface returning the bytes to store with it."""
    return {}
