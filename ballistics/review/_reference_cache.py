"""On-disk cache of reference scores, keyed so that it never outlives a change.

The key covers the library version, a SHA-256 of the comparison code (package and
kernels, so an edit without a version bump still invalidates it), the method, the
comparison parameters and the checksums of the scans.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._json import canonical_hash
from .._version import __version__

__all__ = ["cache_dir", "cache_key", "read_cached", "write_cached"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$BALLISTICS_CACHE``, else ``~/.cache/openbreech``."""
    d = os.environ.get("BALLISTICS_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "openbreech"


def _engine_fingerprint() -> str:
    """SHA-256 (16 hex digits) of the comparison package's and the kernels' source files."""
    from .. import comparison, kernels

    h = hashlib.sha256()
    for pkg in (comparison, kernels):
        for f in sorted(Path(str(pkg.__file__)).parent.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _default_method(method: str | None) -> str | None:
    """``None`` and the explicit default method name are the same computation."""
    from ..comparison import compare

    default = inspect.signature(compare).parameters["method"].default
    return None if method == default else method


def cache_key(method: str | None, compare_kwargs: Mapping[str, Any], checksums: Sequence[str]) -> str:
    """20 hex digits identifying one reference computation."""
    return canonical_hash({"v": __version__, "engine": _engine_fingerprint(), "method": _default_method(method),
                           "kw": {k: str(v) if not isinstance(v, (int, float, str, bool, list, tuple, dict))
                                  else v for k, v in dict(compare_kwargs).items()},
                           "scans": sorted(checksums)})[:20]


def _path(key: str) -> Path:
    return cache_dir() / f"reference_{key}.json"


def read_cached(key: str) -> dict[str, Any] | None:
    """The cached dict, or None when absent or unreadable (logged)."""
    path = _path(key)
    if not path.exists():
        return None
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable reference cache %s: %s", path, exc)
        return None
    return out if isinstance(out, dict) else None


def write_cached(key: str, data: bytes) -> None:
    """Store ``data`` atomically; a failure is logged, never raised (the cache is optional)."""
    from .._io import atomic_write_bytes

    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        log.warning("could not cache reference scores in %s: %s", path, exc)
