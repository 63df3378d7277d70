"""A scan prepared for storage: its extracted surfaces, signatures and stage-2 blobs.

:func:`prepare_entry` is the expensive, lock-free half of
:meth:`~ballistics.database.CaseDatabase.add` (reading, extraction, signatures, the
per-scan blobs of :func:`ballistics.retrieval.ingest_blobs`); it is a module-level
function so that ``ballistics db add --jobs N`` can run it in worker processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BallisticsError, DatabaseError
from ..retrieval import signature
from ..scan import Scan

logger = logging.getLogger(__name__)

PARTS = ("breech_face", "firing_pin")


@dataclass
class PreparedEntry:
    """A scan ready to be stored: its surfaces, signatures and blobs (picklable).

    Attributes
    ----------
    scan : Scan
        The scan as given (whole primer, or an extracted surface with ``preprocess=False``).
    surfaces : dict of str to Scan
        Extracted surface per part (``"breech_face"`` always, ``"firing_pin"`` optional).
    signatures : dict of str to ndarray
        Signature per part (float32).
    preprocess : bool
        Whether the surfaces were extracted from ``scan``.
    notes : dict
        Non-fatal problems (e.g. no firing pin found).
    blobs : dict of str to bytes
        Per-scan data of the search's verification stages, by name
        (:func:`ballistics.retrieval.ingest_blobs`), computed from the breech face.
    evidence : bytes or None
        The evidence file exactly as received, when the scan was read from a file.
    """

    scan: Scan
    surfaces: dict[str, Scan]
    signatures: dict[str, np.ndarray]
    preprocess: bool
    notes: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    evidence: bytes | None = None


def load_scan_input(scan: Scan | str | os.PathLike[str]) -> tuple[Scan, bytes | None]:
    """The scan, and the bytes of its file when ``scan`` is a path."""
    if isinstance(scan, Scan):
        return scan, None
    if isinstance(scan, (str, os.PathLike)):
        from ..errors import ScanReadError
        from ..reading import read_scan
        s = read_scan(scan)
        try:
            with open(scan, "rb") as fh:
                raw = fh.read()
        except OSError as exc:  # pragma: no cover - read_scan just read it
            raise ScanReadError(f"{scan}: cannot read ({exc})") from exc
        return s, raw
    raise BallisticsError(f"expected a ballistics.Scan or a file path, got {type(scan).__name__}")


def _default_extractors() -> dict[str, Callable[[Scan], Scan]]:
    try:
        from ..features import extract_breech_face, extract_firing_pin
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise BallisticsError("preprocess=True needs ballistics.features.extract_breech_face, which this "
                              "installation lacks; pass already extracted surfaces with preprocess=False.") from exc
    return {"breech_face": extract_breech_face, "firing_pin": extract_firing_pin}


def compute_blobs(surface: Scan) -> dict[str, bytes]:
    """The stage-2 blobs of one extracted breech face (:func:`ballistics.retrieval.ingest_blobs`)."""
    from ..retrieval import _stage2

    out: dict[str, bytes] = {}
    for name, fn in _stage2.ingest_blobs().items():
        try:
            data = fn(surface)
        except BallisticsError:
            raise
        except Exception as exc:  # a stage-2 function's bug must not surface as a bare traceback
            raise DatabaseError(f"{surface.name}: stage-2 blob {name!r} could not be computed "
                                f"({type(exc).__name__}: {exc}); nothing was stored.") from exc
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BallisticsError(f"stage-2 blob {name!r} must be bytes, got {type(data).__name__}")
        out[str(name)] = bytes(data)
    return out


def prepare_entry(scan: Scan | str | os.PathLike[str], preprocess: bool = True,
                  extractors: dict[str, Callable[[Scan], Scan]] | None = None) -> PreparedEntry:
    """Read (if a path), extract (if ``preprocess``), sign a scan and compute its blobs.

    Parameters
    ----------
    scan : Scan or path
        A whole-primer scan (``preprocess=True``) or an extracted breech face
        (``preprocess=False``).  A file's bytes are kept as the evidence file.
    preprocess : bool
        Extract the breech face (required) and the firing pin (optional: a failure is
        logged and recorded) before computing signatures.
    extractors : dict, optional
        ``{"breech_face": f, "firing_pin": g}`` replacing the default
        :func:`ballistics.extract_breech_face` / :func:`ballistics.extract_firing_pin`.

    Returns
    -------
    PreparedEntry
    """
    s, raw = load_scan_input(scan)
    s.require_valid(0.0, "scan")
    notes: dict[str, Any] = {}
    if preprocess:
        ex = extractors or _default_extractors()
        surfaces = {"breech_face": ex["breech_face"](s)}
        if "firing_pin" in ex:
            try:
                surfaces["firing_pin"] = ex["firing_pin"](s)
            except BallisticsError as exc:
                logger.warning("%s: no firing pin signature (%s)", s.name, exc)
                notes["firing_pin_error"] = str(exc)
    else:
        surfaces = {"breech_face": s}
    sigs = {}
    for part, surf in surfaces.items():
        try:
            sigs[part] = signature(surf)
        except BallisticsError as exc:
            if part == "breech_face":
                raise
            logger.warning("%s: no %s signature (%s)", s.name, part, exc)
            notes[f"{part}_error"] = str(exc)
    surfaces = {p: v for p, v in surfaces.items() if p in sigs}
    blobs = compute_blobs(surfaces["breech_face"])
    return PreparedEntry(scan=s, surfaces=surfaces, signatures=sigs, preprocess=bool(preprocess), notes=notes,
                         blobs=blobs, evidence=raw)
