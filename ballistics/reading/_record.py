"""The ballistics record in an x3p file's comment: written by ``write_x3p``, read as untrusted.

``write_x3p`` keeps what x3p has no field for -- the processing history, the repairs,
the writer of the file the data was first read from, the region geometry -- as JSON
after :data:`~ballistics.reading._provenance.MARKER` in ``Record2/Comment``. Anyone can
write that text, so reading it follows three rules:

* it is parsed with :func:`ballistics._json.loads_bounded` (size and nesting capped);
  a record that is too large, too deep, not JSON or of the wrong shape is ignored and
  the provenance says so in ``fixes`` (never a ``RecursionError``, never a failure to
  read the surface);
* it can never set the scan's ``kind``, ``case_id``, ``exhibit_id`` or
  ``handedness_hint``: identifiers and the kind come from the caller, the hint is
  computed from the writer record by :func:`~ballistics.reading.handedness_hint`. What
  the record claims for them is kept, marked unverified, in the ``"read"`` step;
* history entries of the wrong type are dropped with the whole record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .._json import canonical_json, jsonable, loads_bounded
from ..errors import ScanFormatError
from ..scan import Provenance, Scan
from ._provenance import MARKER, clean_text, clean_writer, handedness_hint

logger = logging.getLogger(__name__)

#: Largest record accepted, bytes of JSON.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: Deepest nesting of objects and arrays accepted in a record.
MAX_RECORD_DEPTH = 32
#: Fields whose recorded value is kept only as an unverified claim.
CLAIMS = ("case_id", "exhibit_id", "kind", "handedness_hint")


def make_comment(scan: Scan) -> str:
    """``Record2/Comment`` text for ``scan``: a human sentence, the marker and the JSON record."""
    record = {"case_id": scan.case_id, "exhibit_id": scan.exhibit_id, "kind": scan.kind,
              "region": scan.region, **scan.provenance.to_dict()}
    return f"Written by ballistics. {MARKER}" + canonical_json(jsonable(record))


def _region(v: Any) -> dict[str, Any] | None:
    """A flat region record (names to numbers, text, None or short lists of numbers), else None."""
    if not isinstance(v, dict):
        return None

    def scalar(x: Any) -> bool:
        return x is None or (isinstance(x, (int, float, str)) and not isinstance(x, bool))

    def ok(x: Any) -> bool:
        return scalar(x) or (isinstance(x, list) and len(x) <= 16 and all(scalar(e) for e in x))

    if not all(isinstance(k, str) and ok(x) for k, x in v.items()):
        return None
    return dict(v)


def _parse(comment: str, path: Path) -> dict[str, Any]:
    """The record's JSON object; :class:`ScanFormatError` when it is unusable."""
    saved = loads_bounded(comment.split(MARKER, 1)[1], what=f"{path}: the ballistics record in Record2/Comment",
                          max_bytes=MAX_RECORD_BYTES, max_depth=MAX_RECORD_DEPTH, error=ScanFormatError,
                          expect=dict)
    steps, fixes = saved.get("steps", []), saved.get("fixes", [])
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ScanFormatError(f"{path}: the ballistics record's steps are not a list of objects")
    if not isinstance(fixes, list) or not all(isinstance(f, str) for f in fixes):
        raise ScanFormatError(f"{path}: the ballistics record's fixes are not a list of text")
    return saved


def restore_record(comment: str, prov: Provenance, file_writer: dict[str, Any],
                   path: Path) -> dict[str, Any] | None:
    """Restore history and origin from the record in ``comment`` into ``prov``.

    Parameters
    ----------
    comment : str
        ``Record2/Comment`` of the file.
    prov : Provenance
        The provenance being built; ``steps``, ``fixes``, ``writer`` and
        ``handedness_hint`` are updated in place.
    file_writer : dict
        The writer record of the file itself (from ``Record2``).
    path : pathlib.Path
        The file, for messages.

    Returns
    -------
    dict or None
        The region geometry the record holds (validated later with the scan), or None.
        Nothing else of the record reaches the scan outside its provenance.
    """
    if MARKER not in comment:
        return None
    try:
        saved = _parse(comment, path)
    except ScanFormatError as exc:
        note = f"ignored the ballistics record in Record2/Comment: {str(exc).split(': ', 2)[-1][:200]}"
        prov.fixes.append(note)
        logger.warning("%s: %s", path, note)
        return None
    prov.steps = [dict(s) for s in saved.get("steps", [])]
    prov.fixes = list(saved.get("fixes", [])) + prov.fixes
    read_step: dict[str, Any] = {"step": "read", "source_of_history": clean_text(saved.get("source")) or "",
                                 "source_sha256_of_history": clean_text(saved.get("sha256")) or ""}
    origin = clean_writer(saved.get("writer"))
    if origin is not None:  # the writer of the file the data was first read from
        prov.writer = dict(origin)
        read_step["file_written_by"] = file_writer.get("software") or file_writer.get("creator")
        read_step["file_written_on"] = file_writer.get("date")
    elif saved.get("writer"):
        logger.warning("%s: ignoring an unreadable writer record in the ballistics provenance", path)
    prov.handedness_hint = handedness_hint(prov.writer)  # computed, never taken from the record
    claims = {k: saved[k] for k in CLAIMS if isinstance(saved.get(k), str) and saved[k]}
    if claims:
        read_step["unverified_record"] = {k: v[:200] for k, v in claims.items()}
    prov.steps.append(read_step)
    return _region(saved.get("region"))


def claimed_kind(comment: str) -> str | None:
    """The kind the record claims (``"intensity"``/``"height"``), without trusting it; None if unreadable."""
    if MARKER not in comment:
        return None
    try:
        kind = _parse(comment, Path("record")).get("kind")
    except ScanFormatError:
        return None
    return kind if kind in ("height", "intensity") else None
