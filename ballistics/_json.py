"""One JSON story for the whole engine: JSON-friendly copies, canonical text and its
hash, and bounded parsing of untrusted JSON.

* :func:`jsonable` turns NumPy scalars and arrays, tuples and datetimes into plain JSON
  values (NaN and infinities become ``None``: strict JSON has no NaN).
* :func:`canonical_json` is the one canonical serialisation (sorted keys, no spaces,
  no NaN) and :func:`canonical_hash` its SHA-256; every recorded parameter set, model
  checksum and audit entry is hashed through them, so equal content always hashes equal.
* :func:`loads_bounded` parses JSON that came from outside (bundles, files' comments,
  LR-system files, catalogues): it refuses text over a size cap and nesting over a depth
  cap *before* handing it to :mod:`json`, so a hostile document can neither exhaust
  memory nor the interpreter's recursion limit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any

import numpy as np

from .errors import BallisticsError

__all__ = ["jsonable", "canonical_json", "canonical_hash", "loads_bounded", "MAX_JSON_BYTES", "MAX_JSON_DEPTH"]

#: Default cap on the size of untrusted JSON text (bytes).
MAX_JSON_BYTES = 64 * 1024 * 1024
#: Default cap on the nesting depth of untrusted JSON (objects and arrays).
MAX_JSON_DEPTH = 64


def jsonable(obj: Any) -> Any:
    """A JSON-friendly copy of ``obj``.

    NumPy scalars and arrays become Python numbers and lists, tuples become lists,
    datetimes ISO 8601 text, non-finite floats ``None``; dict keys become strings.
    Other objects are returned unchanged (``json`` decides whether it can write them).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: :func:`jsonable`, sorted keys, no whitespace.

    Raises
    ------
    BallisticsError
        ``obj`` holds a value JSON cannot represent.
    """
    try:
        return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BallisticsError(f"value cannot be written as JSON: {exc}") from exc


def canonical_hash(obj: Any) -> str:
    """SHA-256 (64 hex digits) of :func:`canonical_json` of ``obj``, UTF-8 encoded."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def _depth(text: str) -> int:
    """Maximum nesting of ``[``/``{`` outside strings, in one linear pass."""
    depth = best = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
        elif ch in "]}":
            depth -= 1
    return best


def loads_bounded(data: str | bytes, *, what: str, max_bytes: int = MAX_JSON_BYTES,
                  max_depth: int = MAX_JSON_DEPTH, error: type[BallisticsError] = BallisticsError,
                  expect: type | None = None) -> Any:
    """Parse untrusted JSON with size and depth caps.

    Parameters
    ----------
    data : str or bytes
        The JSON text (bytes are decoded as UTF-8).
    what : str
        What the text is (``"bundle manifest"``), for the error message.
    max_bytes, max_depth : int
        Caps on the encoded size (bytes) and the nesting depth.
    error : type
        The :class:`BallisticsError` subclass to raise.
    expect : type, optional
        The type the top-level value must have (e.g. ``dict``).

    Returns
    -------
    Any
        The parsed value. ``NaN``/``Infinity`` literals are refused (strict JSON).

    Raises
    ------
    BallisticsError
        (of class ``error``) too large, too deep, not UTF-8, not JSON, or not ``expect``.
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > max_bytes:
        raise error(f"{what}: {size} bytes of JSON is more than the limit of {max_bytes}")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise error(f"{what}: JSON is not valid UTF-8 ({exc})") from exc
    depth = _depth(text)
    if depth > max_depth:
        raise error(f"{what}: JSON nested {depth} deep, more than the limit of {max_depth}")

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in strict JSON")

    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what}: not valid JSON ({exc})") from exc
    if expect is not None and not isinstance(value, expect):
        raise error(f"{what}: expected a JSON {expect.__name__}, got {type(value).__name__}")
    return value
