"""What runs inside a worker process: read, prepare (cached) and compare one tile.

Each worker process keeps a small LRU cache of prepared scans (:func:`prepared`), keyed
by the scan's checksum and the preparation settings, so a scan is read and prepared once
per worker for all the pairs of a tile (and for the next tile sharing its block).  A
failure of one scan or one pair is returned as text in the pair's ``error`` field; it
never aborts the tile.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import BallisticsError, ScanReadError
from ..scan import Scan

log = logging.getLogger(__name__)

__all__ = ["PREPARE_KEYS", "clear_cache", "map_one", "prepared", "run_tile"]

#: Comparison parameters that are preparation settings (passed to ``prepare`` as well).
PREPARE_KEYS = ("cell_grid", "min_valid")

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Empty this process's cache of prepared scans."""
    with _LOCK:
        _CACHE.clear()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BallisticsError):
        return f"{type(exc).__name__}: {exc}"
    # not an error the library raises on purpose: keep where it happened
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _read(ref: dict[str, Any], obj: Scan | None) -> Scan:
    if obj is not None:
        return obj
    from ..reading import read_scan
    scan = read_scan(ref["path"], exhibit_id=ref["name"])
    got = scan.provenance.sha256
    if got and got != ref["sha256"]:
        raise ScanReadError(f"{ref['path']!r} changed since the run started (SHA-256 {got[:12]}..., "
                            f"manifest {ref['sha256'][:12]}...); start a new run for the new file.")
    return scan


def prepared(ref: dict[str, Any], obj: Scan | None, prep_kw: dict[str, Any], cache_size: int) -> Any:
    """The prepared scan of ``ref`` (from this process's LRU cache when there).

    Returns the :class:`~ballistics.comparison.PreparedScan`, or the exception raised by
    reading or preparing it (cached too, so a bad scan is tried once per worker).
    """
    from ..comparison import prepare
    key = (ref["sha256"], ref["checksum_of"], ref.get("path"), json.dumps(prep_kw, sort_keys=True))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        value: Any = prepare(_read(ref, obj), **prep_kw)
    except Exception as exc:  # noqa: BLE001 - recorded per pair, see module docstring
        value = exc
    with _LOCK:
        _CACHE[key] = value
        while len(_CACHE) > max(1, cache_size):
            _CACHE.popitem(last=False)
    return value


def _flat(res: dict[str, Any]) -> dict[str, Any]:
    d = res.get("directions", {})
    mc = res.get("method_counts", {})
    tr = res.get("translation_m") or [None, None]
    return {
        "cmc_count": res.get("cmc_count"), "score": res.get("score"),
        "rotation_deg": res.get("rotation_deg"), "translation_dy_m": tr[0], "translation_dx_m": tr[1],
        "correlation": res.get("correlation"),
        "cmc_a_to_b": d.get("a_to_b", {}).get("cmc_count"), "cmc_b_to_a": d.get("b_to_a", {}).get("cmc_count"),
        "count_original": mc.get("original"), "count_high": mc.get("high"),
        "count_convergence": mc.get("convergence"), "elapsed_s": res.get("elapsed_s"),
    }


def _compare_args(spec: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """Method, preset (a name, or the rebuilt CompareParams) and ``prepare``'s settings of a run."""
    from ..comparison import PRESETS, CompareParams
    params = CompareParams.from_dict(spec["params"])
    name = spec.get("preset")
    preset: Any = name if isinstance(name, str) and PRESETS.get(name) == params else params
    return spec["method"], preset, {k: getattr(params, k) for k in PREPARE_KEYS}


def run_tile(tile_id: str, pairs: list[tuple[int, int]], refs: dict[int, dict[str, Any]],
             objects: dict[int, Scan], spec: dict[str, Any], cache_size: int,
             keep_json: bool = True) -> list[dict[str, Any]]:
    """Compare every pair of one tile; one row (dict) per pair, in the order of ``pairs``.

    Parameters
    ----------
    tile_id : str
    pairs : list of (int, int)
        Scan indices ``(i, j)``; ``i`` is compared as ``a`` (reference), ``j`` as ``b``.
    refs : dict
        Index -> :class:`~ballistics.batch._manifest.ScanRef` as a dict.
    objects : dict
        Index -> in-memory Scan (inputs given as Scans rather than paths).
    spec : dict
        The manifest's ``compare``: ``method``, ``preset`` (name) and ``params``
        (``CompareParams.to_dict()``).
    cache_size : int
        Prepared scans kept per worker process.
    keep_json : bool
        Return the full result as JSON (``result_json``); False keeps only the flat columns.
    """
    from ..comparison import compare
    worker = f"{socket.gethostname()}:{os.getpid()}"
    method, preset, prep_kw = _compare_args(spec)
    rows = []
    for i, j in pairs:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"tile": tile_id, "i": i, "j": j, "worker": worker, "error": None, "result_json": None}
        try:
            pa = prepared(refs[i], objects.get(i), prep_kw, cache_size)
            if isinstance(pa, BaseException):
                raise pa
            pb = prepared(refs[j], objects.get(j), prep_kw, cache_size)
            if isinstance(pb, BaseException):
                raise pb
            res = compare(pa, pb, method, preset=preset).to_dict()
            row.update(_flat(res))
            if keep_json:
                row["result_json"] = json.dumps(res, separators=(",", ":"))
        except Exception as exc:  # noqa: BLE001 - a pair's failure is data, not a crash of the run
            row["error"] = _describe(exc)
            row["elapsed_s"] = time.perf_counter() - t0
            log.warning("tile %s pair (%d, %d): %s", tile_id, i, j, row["error"])
        rows.append(row)
    return rows


def map_one(func: Callable[..., Any], item: Any, name: str, read: bool,
            catch: bool) -> tuple[Any, str | None, float, str]:
    """Apply ``func`` to one scan (read here when ``read``); ``(value, error, seconds, worker)``.

    With ``catch=False`` an exception propagates (Dask re-raises it in the client).
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        if read and not isinstance(item, Scan):
            from ..reading import read_scan
            item = read_scan(item, exhibit_id=name)
        return func(item), None, time.perf_counter() - t0, worker
    except Exception as exc:
        if not catch:
            raise
        return None, _describe(exc), time.perf_counter() - t0, worker

