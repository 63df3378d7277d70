"""All pairs, one against many, listed pairs: the batch engine's public calls.

Each call checks its arguments, checksums its inputs, builds the run's
:class:`~ballistics.batch.Manifest` and hands it to :func:`._execute.execute`.  What is
computed is given by a :class:`~ballistics.comparison.CompareParams` (or a preset
name) and the method; how, by :class:`~ballistics.batch.BatchOptions` (or its fields
as keyword arguments).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..comparison import METHODS, PRESETS, CompareParams
from ..errors import ParameterError
from ..scan import Scan
from ._cluster import check_cluster_args
from ._execute import BatchSummary, execute
from ._manifest import Manifest, ScanRef, resolve_scans
from ._options import BatchOptions
from ._tiles import Tile, all_pairs_tiles, count_all_pairs_tiles, listed_tiles

__all__ = ["all_pairs", "auto_tile_size", "compare_spec", "one_vs_many", "pairs"]

#: A scan given to the batch functions: a file path (read by the workers) or an in-memory Scan.
ScanInput = str | os.PathLike[str] | Scan


def auto_tile_size(n_scans: int) -> int:
    """Default scans per block: ``ceil(n / 8)`` clamped to 1..64.

    Depends only on the number of scans, so a rerun picks the same tiling.  Small runs
    get many small tiles (load balance), large runs blocks of 64 (4,096 pairs, a
    few minutes each; each scan prepared once per tile).
    """
    return max(1, min(64, math.ceil(n_scans / 8)))


def compare_spec(params: CompareParams | str | None, method: str) -> dict[str, Any]:
    """What the workers compute, as recorded in the manifest.

    Parameters
    ----------
    params : CompareParams, str or None
        The comparison's parameters, or the name of a preset (None: ``"default"``).
    method : str
        One of :data:`ballistics.comparison.METHODS`.

    Returns
    -------
    dict
        ``{"method", "preset", "params"}``: the preset's name (``"custom"`` for other
        parameters) and ``CompareParams.to_dict()``; workers rebuild the parameters with
        :meth:`CompareParams.from_dict`.

    Raises
    ------
    ParameterError
        An unknown method or preset, or parameters that are not a CompareParams.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ParameterError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if params is None:
        params = "default"
    if isinstance(params, str):
        if params not in PRESETS:
            raise ParameterError(f"Unknown preset {params!r}; choose one of {', '.join(PRESETS)}.")
        return {"method": method, "preset": params, "params": PRESETS[params].to_dict()}
    if not isinstance(params, CompareParams):
        raise ParameterError(f"params must be a CompareParams or a preset name, got {type(params).__name__}; "
                             "build one with PRESETS['default'].replace(...).")
    name = next((k for k, v in PRESETS.items() if v == params), "custom")
    return {"method": method, "preset": name, "params": params.to_dict()}


def _options(options: BatchOptions | None, client: Any, option_kw: dict[str, Any]) -> BatchOptions:
    if options is not None and not isinstance(options, BatchOptions):
        raise ParameterError(f"options must be a BatchOptions, got {type(options).__name__}.")
    opts = (options or BatchOptions()).replace(**option_kw) if option_kw else (options or BatchOptions())
    check_cluster_args(opts.scheduler, client, opts.n_workers)
    return opts


def _finish(kind: str, refs: list[ScanRef], objects: dict[int, Scan], pair_list: list[list[int]] | None,
            tiles: Callable[[], Iterable[Tile]], n_pairs: int, n_tiles: int, size: int, spec: dict[str, Any],
            output: Any, opts: BatchOptions, client: Any) -> BatchSummary:
    manifest = Manifest(kind=kind, scans=refs, tile_size=size, n_pairs=n_pairs, n_tiles=n_tiles,
                        pairs=pair_list, keep_json=opts.keep_json, compare=spec)
    return execute(manifest, tiles, objects, output, opts, client)


def all_pairs(scans: Sequence[ScanInput], output: str | os.PathLike[str],
              params: CompareParams | str | None = None, *, method: str = "convergence",
              options: BatchOptions | None = None, client: Any = None, **option_kw: Any) -> BatchSummary:
    """Compare every pair ``i < j`` of ``scans`` on a cluster; results stream to ``output``.

    Parameters
    ----------
    scans : sequence of path or Scan
        Extracted surfaces (e.g. 6.25 um breech faces).  Paths are checksummed here and
        read by the workers themselves; Scans are sent to them.
    output : path
        Folder of the run: ``manifest.json`` (written first) and one Parquet file per
        tile.  An existing run with the same manifest is resumed (finished tiles are
        skipped); a different one is refused.
    params : CompareParams or str, optional
        The comparison's parameters, or a preset name (default ``"default"``); recorded
        in full in the manifest.
    method : str
        Decision rule, as :func:`ballistics.comparison.compare`.
    options : BatchOptions, optional
        Tiling, cluster, progress (see :class:`BatchOptions`).
    client : distributed.Client, optional
        An existing client to run on (left open).
    **option_kw
        Fields of :class:`BatchOptions` (``tile_size``, ``n_workers``, ``scheduler``,
        ``max_tiles``, ``cache_size``, ``keep_json``, ``progress``) applied to ``options``.

    Returns
    -------
    BatchSummary
        Read the pairs with :func:`ballistics.batch.read_results`.

    Raises
    ------
    ParameterError
        Fewer than 2 scans, a file listed twice, unknown method/preset/option, parameters
        that are not a CompareParams, bad tiling or cluster arguments, or ``output``
        holding another run.
    ScanReadError
        An input file is missing or unreadable.

    Notes
    -----
    A pair whose comparison fails (e.g. different pixel spacing) is stored with its
    ``error`` and the run goes on.  ``n (n - 1) / 2`` pairs.
    """
    opts = _options(options, client, option_kw)
    spec = compare_spec(params, method)
    refs, objects = resolve_scans(scans)
    if len(refs) < 2:
        raise ParameterError(f"all_pairs needs at least 2 scans, got {len(refs)}.")
    n = len(refs)
    size = opts.tile_size or auto_tile_size(n)
    return _finish("all_pairs", refs, objects, None, lambda: all_pairs_tiles(n, size), n * (n - 1) // 2,
                   count_all_pairs_tiles(n, size), size, spec, output, opts, client)


def one_vs_many(query: ScanInput, scans: Sequence[ScanInput], output: str | os.PathLike[str],
                params: CompareParams | str | None = None, *, method: str = "convergence",
                options: BatchOptions | None = None, client: Any = None, **option_kw: Any) -> BatchSummary:
    """Compare ``query`` (as ``a``, index 0) with each of ``scans`` (indices 1..n) on a cluster.

    Parameters
    ----------
    query : path or Scan
        The reference surface of every pair.
    scans : sequence of path or Scan
        The surfaces it is compared with (``b``); the query must not be among them.
    output : path
        Folder of the run (see :func:`all_pairs`).
    params, method, options, client, **option_kw
        As :func:`all_pairs`; here a tile is the query x a block of ``tile_size`` scans
        (default :func:`auto_tile_size` of ``len(scans)``).

    Returns
    -------
    BatchSummary
        Pairs ``(0, j)`` for ``j = 1..n``; read them with :func:`read_results`.

    Raises
    ------
    ParameterError, ScanReadError
        As :func:`all_pairs`; also for an empty ``scans``.
    """
    opts = _options(options, client, option_kw)
    spec = compare_spec(params, method)
    if isinstance(scans, (str, os.PathLike, Scan)) or not hasattr(scans, "__len__"):
        raise ParameterError(f"scans must be a list of file paths or Scan objects, got {type(scans).__name__}.")
    if not len(scans):
        raise ParameterError("one_vs_many needs at least one scan to compare the query with.")
    refs, objects = resolve_scans([query, *scans], what="query and scans")
    size = opts.tile_size or auto_tile_size(len(scans))
    plist = [(0, j) for j in range(1, len(refs))]
    tiles = listed_tiles(plist, size)
    return _finish("one_vs_many", refs, objects, None, lambda: tiles, len(plist), len(tiles), size, spec, output,
                   opts, client)


def _check_index_pairs(index_pairs: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The listed pairs as ints; each once, in range, never a scan with itself."""
    plist: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    try:
        items = list(index_pairs)
    except TypeError as exc:
        raise ParameterError("index_pairs must be a list of (i, j) index pairs.") from exc
    if not items:
        raise ParameterError("index_pairs is empty: nothing to compare.")
    for k, p in enumerate(items):
        try:
            i, j = p
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"index_pairs[{k}] must be a pair (i, j), got {p!r}.") from exc
        if any(isinstance(x, bool) or not isinstance(x, int) and not hasattr(x, "__index__") for x in (i, j)):
            raise ParameterError(f"index_pairs[{k}] must hold integers, got {p!r}.")
        i, j = int(i), int(j)
        if not (0 <= i < n and 0 <= j < n):
            raise ParameterError(f"index_pairs[{k}] = {p!r} is out of range for {n} scans (0..{n - 1}).")
        if i == j:
            raise ParameterError(f"index_pairs[{k}] compares scan {i} with itself.")
        if (i, j) in seen:
            raise ParameterError(f"index_pairs[{k}] = {p!r} is listed twice.")
        seen.add((i, j))
        plist.append((i, j))
    return plist


def pairs(scans: Sequence[ScanInput], index_pairs: Sequence[tuple[int, int]], output: str | os.PathLike[str],
          params: CompareParams | str | None = None, *, method: str = "convergence",
          options: BatchOptions | None = None, client: Any = None, **option_kw: Any) -> BatchSummary:
    """Compare the listed pairs ``(i, j)`` of ``scans`` (``scans[i]`` as ``a``) on a cluster.

    Parameters
    ----------
    scans : sequence of path or Scan
    index_pairs : sequence of (int, int)
        Indices into ``scans``; each pair once, ``i != j``.  The list is recorded in the
        manifest (its SHA-256 is part of the run's identity).
    output : path
        Folder of the run (see :func:`all_pairs`).
    params, method, options, client, **option_kw
        As :func:`all_pairs`; pairs are tiled by ``(i // tile_size, j // tile_size)``.

    Returns
    -------
    BatchSummary

    Raises
    ------
    ParameterError
        As :func:`all_pairs`; also for an empty list, indices out of range, a scan
        paired with itself or a pair listed twice.
    ScanReadError
        An input file is missing or unreadable.
    """
    opts = _options(options, client, option_kw)
    spec = compare_spec(params, method)
    refs, objects = resolve_scans(scans)
    n = len(refs)
    plist = _check_index_pairs(index_pairs, n)
    size = opts.tile_size or auto_tile_size(n)
    tiles = listed_tiles(plist, size)
    return _finish("pairs", refs, objects, [list(p) for p in plist], lambda: tiles, len(plist), len(tiles), size,
                   spec, output, opts, client)
