"""LR systems as checksummed JSON: write, read (size- and depth-capped), verify.

``content_sha256`` is the SHA-256 of every other field in canonical JSON
(:func:`ballistics._json.canonical_hash`), so any later edit of a file -- fitted state,
bounds, metrics, domain -- is detected on load; ``training_checksum`` is re-computed
from the stored training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_write_bytes
from .._json import canonical_hash, canonical_json, jsonable, loads_bounded
from ..errors import CalibrationError
from ._domain import Domain

if TYPE_CHECKING:
    from ._model import LRSystem

__all__ = ["SYSTEM_FORMAT", "FORMAT_VERSION", "training_checksum", "content_sha256", "system_to_dict",
           "system_from_dict", "save_system", "load_system", "MAX_SYSTEM_BYTES"]

#: Marker and version of the JSON file format.
SYSTEM_FORMAT = "openbreech-lr-system"
FORMAT_VERSION = 2
#: Largest LR-system file read (bytes).
MAX_SYSTEM_BYTES = 64 * 1024 * 1024


def training_checksum(scores: Any, same_source: Any, groups: Any) -> str:
    """SHA-256 of the training data (scores, labels, firearm pairs) in canonical JSON.

    Parameters
    ----------
    scores : array_like
    same_source : array_like of bool
    groups : sequence of (str, str)

    Returns
    -------
    str
        64 hex digits; equal data give equal checksums on every platform.
    """
    payload = {"scores": np.asarray(scores, dtype=float).tolist(), "same": [bool(v) for v in np.asarray(same_source)],
               "groups": [[str(a), str(b)] for a, b in groups]}
    return canonical_hash(payload)


def content_sha256(d: dict[str, Any]) -> str:
    """SHA-256 of a system dict without its ``content_sha256`` field."""
    return canonical_hash({k: v for k, v in d.items() if k != "content_sha256"})


def system_to_dict(s: LRSystem) -> dict[str, Any]:
    """JSON-able dict of a system (format :data:`SYSTEM_FORMAT`), with ``content_sha256``."""
    d = jsonable({
        "format": SYSTEM_FORMAT, "format_version": FORMAT_VERSION,
        "name": s.name, "system_version": s.system_version, "library_version": s.library_version,
        "created": s.created, "method": s.method, "params": s.params, "state": s.state,
        "elub": list(s.elub), "score_column": s.score_column, "reference": s.reference,
        "domain": s.domain.to_dict() if s.domain else None, "validation_bar": s.validation_bar,
        "training_checksum": s.training_checksum, "cross_validation": s.cross_validation,
        "training_metrics": s.training_metrics, "bootstrap": s.bootstrap, "training": s.training,
    })
    d["content_sha256"] = content_sha256(d)
    return d


def save_system(s: LRSystem, path: str | os.PathLike) -> Path:
    """Write a system as JSON, atomically (temporary file, fsync, rename).

    Returns
    -------
    Path
    """
    p = Path(path)
    try:
        return atomic_write_bytes(p, canonical_json(system_to_dict(s)).encode("utf-8"))
    except OSError as exc:
        raise CalibrationError(f"cannot write the LR system to {p}: {exc}") from exc


def _verify(d: dict[str, Any], source: str) -> None:
    if d.get("format") != SYSTEM_FORMAT:
        raise CalibrationError(f"{source} is not an openbreech LR-system file (no format marker {SYSTEM_FORMAT!r})")
    try:
        version = int(d.get("format_version", 0))
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{source}: format_version {d.get('format_version')!r} is not a number") from exc
    if version > FORMAT_VERSION:
        raise CalibrationError(f"{source} has format version {version}, this library reads up to "
                               f"{FORMAT_VERSION}; upgrade openbreech")
    if "content_sha256" in d and content_sha256(d) != d["content_sha256"]:
        raise CalibrationError(f"{source}: the content does not match its content_sha256; the file was altered "
                               "after it was written (refit or restore the original)")
    tr = d.get("training")
    if tr and d.get("training_checksum"):
        if training_checksum(tr["scores"], tr["same"], tr["groups"]) != d["training_checksum"]:
            raise CalibrationError(f"{source}: the stored training data do not match the training checksum; "
                                   "the file was altered")


def system_from_dict(d: dict[str, Any], source: str = "dict") -> LRSystem:
    """Rebuild a system from :func:`system_to_dict` output, checking format and checksums."""
    from ._model import LRSystem

    if not isinstance(d, dict):
        raise CalibrationError(f"{source} is not an openbreech LR-system file (not a JSON object)")
    try:
        _verify(d, source)
        _check_types(d, source)
        dom = d.get("domain")
        system = LRSystem(name=d["name"], method=d["method"], params=d["params"], state=d["state"],
                        elub=tuple(d["elub"]), score_column=d.get("score_column", "score"),
                        reference=d.get("reference", {}), training_checksum=d.get("training_checksum", ""),
                        system_version=str(d.get("system_version", "1")),
                        library_version=d.get("library_version", ""), created=d.get("created", ""),
                        cross_validation=d.get("cross_validation", {}),
                        training_metrics=d.get("training_metrics", {}), bootstrap=d.get("bootstrap", {}),
                        training=d.get("training"), domain=Domain.from_dict(dom) if dom else None,
                        validation_bar=d.get("validation_bar") or {})
        _trial(system)
        return system
    except CalibrationError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CalibrationError(f"{source} is not a valid LR-system file: {type(exc).__name__}: {exc}") from exc


def load_system(path: str | os.PathLike) -> LRSystem:
    """Read a system file written by :func:`save_system` (never pickle; size and depth capped)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise CalibrationError(f"LR-system file {p} does not exist") from exc
    except OSError as exc:
        raise CalibrationError(f"cannot read LR-system file {p}: {exc}") from exc
    d = loads_bounded(data, what=f"LR-system file {p}", max_bytes=MAX_SYSTEM_BYTES, error=CalibrationError,
                      expect=dict)
    return system_from_dict(d, source=str(p))


#: Top-level fields of a system file and the JSON types they must have.
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "method": (str,), "params": (dict,), "state": (dict,), "elub": (list,),
    "score_column": (str, list), "reference": (dict, str), "training_checksum": (str,),
    "system_version": (str, int), "library_version": (str,), "created": (str,),
    "cross_validation": (dict,), "training_metrics": (dict,), "bootstrap": (dict,),
    "training": (dict, type(None)), "domain": (dict, type(None)), "validation_bar": (dict, type(None)),
}

#: Scores at which a loaded system is tried once: any failure there means a damaged file.
_TRIAL_SCORES = (-50.0, -1.0, 0.0, 1.0, 50.0)


def _check_types(d: dict[str, Any], source: str) -> None:
    """Refuse fields of the wrong JSON type before anything is built from them."""
    for key, types in _TYPES.items():
        if key in d and not isinstance(d[key], types):
            raise CalibrationError(f"{source} is not a valid LR-system file: {key!r} is a "
                                   f"{type(d[key]).__name__}, expected {' or '.join(t.__name__ for t in types)}")
    elub = d.get("elub")
    if not (isinstance(elub, list) and len(elub) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in elub)
            and elub[0] <= elub[1]):
        raise CalibrationError(f"{source} is not a valid LR-system file: 'elub' must be two finite numbers "
                               f"low <= high, got {elub!r}")


def _trial(system: LRSystem) -> None:
    """Apply a freshly loaded system once (LRs, intervals, verbal scale, summary): a file
    whose state is damaged fails here, at load, with a CalibrationError, and never later
    in a comparison."""
    try:
        llr = np.asarray(system.llr(np.array(_TRIAL_SCORES)), dtype=float)
        if llr.shape != (len(_TRIAL_SCORES),) or not np.all(np.isfinite(llr)):
            raise ValueError(f"LRs at trial scores are {llr!r}")
        for x in (_TRIAL_SCORES[0], _TRIAL_SCORES[2], _TRIAL_SCORES[-1]):
            system.interval(x)
            system.verbal(x)
        system.summary()
        system.describe()
    except CalibrationError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged state is a refusal
        raise CalibrationError(f"{system.name!r} is not a usable LR system: applying it failed "
                               f"({type(exc).__name__}: {exc})") from exc
