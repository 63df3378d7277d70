"""Per-scan data computed at ingest for the verification stages of search.

:func:`ingest_blobs` names the byte blobs that :class:`~ballistics.database.CaseDatabase`
computes from each extracted surface when it is added, and stores with the scan.  Stage
2 of search (:mod:`._verify_sift`) reads them back instead of recomputing SIFT for
every candidate.
"""

from __future__ import annotations

from collections.abc import Callable

from ..scan import Scan
from ._verify_sift import VERIFY_VERSION, blob

#: Name of the stage-2 blob (includes the version: a new version is a new blob).
SIFT_BLOB = f"stage2:{VERIFY_VERSION}"


def ingest_blobs() -> dict[str, Callable[[Scan], bytes]]:
    """Name -> function of an extracted surface returning the bytes to store with it.

    Returns
    -------
    dict
        ``{SIFT_BLOB: blob}``: the 500 strongest SIFT key points of the breech face
        (positions, orientations, ``uint8`` descriptors; about 69 kB per scan), see
        :func:`ballistics.retrieval._verify_sift.keypoints`.
    """
    return {SIFT_BLOB: blob}
