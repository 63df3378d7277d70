"""Run a batch of comparisons tile by tile on a Dask cluster, streaming tiles to Parquet."""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import ParameterError
from ..scan import Scan
from ._cluster import check_cluster_args, cluster_client
from ._manifest import (
    MANIFEST_NAME,
    Manifest,
    ScanRef,
    canonical,
    check_compare_params,
    resolve_scans,
)
from ._table import remove_partial_files, tile_is_done, write_tile
from ._tiles import Tile, all_pairs_tiles, count_all_pairs_tiles, listed_tiles

log = logging.getLogger(__name__)

__all__ = ["BatchSummary", "MapResult", "all_pairs", "auto_tile_size", "map_scans", "one_vs_many", "pairs"]

#: A scan given to the batch functions: a file path (read by the workers) or an in-memory Scan.
ScanInput: TypeAlias = "str | os.PathLike[str] | Scan"


@dataclass
class BatchSummary:
    """What a call of :func:`all_pairs` / :func:`one_vs_many` / :func:`pairs` did.

    Attributes
    ----------
    output : str
        The run's folder.
    manifest_digest : str
        Identity of the run (see :class:`~ballistics.batch.Manifest`).
    n_pairs, n_tiles : int
        Of the whole run.
    tiles_skipped : int
        Already finished by an earlier call (resumed).
    tiles_computed : int
        Computed and written by this call.
    tiles_failed : dict
        Tile id -> why the cluster could not compute it (e.g. its worker died too
        often); rerun to retry them.
    pairs_computed : int
        Pairs computed by this call.
    pair_errors : int
        Pairs of this call whose comparison failed (see the ``error`` column).
    elapsed_s : float
        Wall-clock seconds of this call.
    complete : bool
        Every tile of the run is on disk.
    """

    output: str
    manifest_digest: str
    n_pairs: int
    n_tiles: int
    tiles_skipped: int = 0
    tiles_computed: int = 0
    tiles_failed: dict[str, str] = field(default_factory=dict)
    pairs_computed: int = 0
    pair_errors: int = 0
    elapsed_s: float = 0.0
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of every field."""
        return asdict(self)


def auto_tile_size(n_scans: int) -> int:
    """Default scans per block: ``ceil(n / 8)`` clamped to 1..64.

    Depends only on the number of scans, so a rerun picks the same tiling.  Small runs
    get many small tiles (load balance), large runs blocks of 64 (4,096 pairs, a
    few minutes each; each scan prepared once per tile).
    """
    return max(1, min(64, math.ceil(n_scans / 8)))


def _check_int(name: str, v: Any, minimum: int, allow_none: bool = True) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {v!r}.")


#: Lock file of a run folder: one writer at a time (released by the OS if the process dies).
LOCK_NAME = ".batch.lock"


def _open_output(output: Any, manifest: Manifest) -> tuple[Path, Any]:
    """Create the folder and write the manifest, or check that a rerun matches it.

    Returns the folder and the held lock (one run writes into a folder at a time).
    Every refusal happens before anything is created or changed.
    """
    from filelock import FileLock, Timeout
    if not isinstance(output, (str, os.PathLike)) or not str(output):
        raise ParameterError(f"output must be a folder path, got {output!r}.")
    folder = Path(output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"output {str(output)!r} exists and is not a folder.")

    def check_same() -> bool:
        if not (folder / MANIFEST_NAME).exists():
            return False
        old = Manifest.load(folder)
        if old.run_digest != manifest.digest:
            raise ParameterError(
                f"{str(output)!r} holds another batch run (it differs in {old.explain_difference(manifest)}); "
                "use a new output folder, or rerun with the same scans and parameters to resume it.")
        return True

    resuming = check_same()
    if not resuming and folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir()):
        raise ParameterError(f"output {str(output)!r} is not empty and holds no batch run; use a new or empty folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / LOCK_NAME), timeout=0)
        lock.acquire()
    except Timeout as exc:
        raise ParameterError(f"another batch run is writing into {str(output)!r}; wait for it to end.") from exc
    except OSError as exc:
        raise ParameterError(f"cannot create or lock the output folder {str(output)!r}: {exc}") from exc
    try:
        if check_same():  # (again, under the lock)
            n = remove_partial_files(folder)
            log.info("resuming the run in %s (%d partial files of a stopped run removed)", folder, n)
        else:
            manifest.write(folder)
    except OSError as exc:
        lock.release()
        raise ParameterError(f"cannot write the run's manifest into {str(output)!r}: {exc}") from exc
    except BaseException:
        lock.release()
        raise
    return folder, lock


def _compare_kw(method: str, preset: str, params: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(method, str) or not isinstance(preset, str):
        raise ParameterError("method and preset must be strings.")
    check_compare_params(method, preset, params)
    canonical(params)  # refuses values that cannot be recorded
    return {"method": method, "preset": preset, **params}


def _execute(manifest: Manifest, tiles: Callable[[], Iterable[Tile]], objects: dict[int, Scan], output: Any, *,
             scheduler: str | None, client: Any, n_workers: int | None, max_tiles: int | None,
             progress: bool, cache_size: int | None) -> BatchSummary:
    t0 = time.perf_counter()
    folder, lock = _open_output(output, manifest)
    try:
        return _execute_locked(manifest, tiles, objects, folder, t0, scheduler=scheduler, client=client,
                               n_workers=n_workers, max_tiles=max_tiles, progress=progress, cache_size=cache_size)
    finally:
        lock.release()


def _execute_locked(manifest: Manifest, tiles: Callable[[], Iterable[Tile]], objects: dict[int, Scan],
                    folder: Path, t0: float, *, scheduler: str | None, client: Any, n_workers: int | None,
                    max_tiles: int | None, progress: bool, cache_size: int | None) -> BatchSummary:
    summary = BatchSummary(str(folder), manifest.digest, manifest.n_pairs, manifest.n_tiles)
    refs = {r.index: asdict(r) for r in manifest.scans}
    compare_kw = dict(manifest.compare["params"], method=manifest.compare["method"],
                      preset=manifest.compare["preset"])
    cache = cache_size or 2 * manifest.tile_size + 2

    # first pass: which tiles are done (only files present are opened); second pass, lazily: the rest
    present = {p.name for p in folder.glob("tile-*.parquet")}
    done: set[str] = set()
    n_pending = n_pending_pairs = 0
    for tile in tiles():
        if tile.filename in present and tile_is_done(folder, tile, manifest):
            done.add(tile.id)
        elif max_tiles is None or n_pending < max_tiles:
            n_pending += 1
            n_pending_pairs += tile.n_pairs
    summary.tiles_skipped = len(done)
    log.info("%s: %d tiles done, %d to compute now (%d pairs)", folder, len(done), n_pending, n_pending_pairs)
    if n_pending:
        pending = itertools.islice((t for t in tiles() if t.id not in done), n_pending)
        _submit_all(pending, n_pending_pairs, refs, objects, compare_kw, cache, folder, manifest, summary,
                    scheduler=scheduler, client=client, n_workers=n_workers, progress=progress)
    summary.complete = summary.tiles_skipped + summary.tiles_computed == manifest.n_tiles
    summary.elapsed_s = time.perf_counter() - t0
    if summary.tiles_failed:
        log.error("%d tiles failed (rerun to retry): %s", len(summary.tiles_failed), summary.tiles_failed)
    return summary


def _window(c: Any, per_slot: int) -> int:
    """Tasks to keep in flight: ``per_slot`` per worker thread of the cluster now, plus one.

    Asked again after every completed task, so a cluster that grows is used.
    """
    try:
        slots = sum(c.nthreads().values())
    except Exception:  # noqa: BLE001 - a scheduler hiccup only slows submission
        slots = 1
    return per_slot * max(1, slots) + 1


def _submit_all(pending: Iterator[Tile], n_pairs: int, refs: dict, objects: dict[int, Scan], compare_kw: dict,
                cache: int, folder: Path, manifest: Manifest, summary: BatchSummary, *, scheduler, client,
                n_workers, progress: bool) -> None:
    from distributed import as_completed
    from tqdm.auto import tqdm

    from ._worker import run_tile
    run_id = uuid.uuid4().hex[:8]
    with cluster_client(scheduler, client, n_workers) as c:
        # in-memory scans (a few, by nature) are sent to the cluster once
        sent = c.scatter(dict(objects)) if objects else {}
        queue: Iterator[Tile] = pending
        by_future: dict[Any, Tile] = {}

        def submit(tile: Tile) -> Any:
            fut = c.submit(run_tile, tile.id, list(tile.pairs), {k: refs[k] for k in tile.scan_indices},
                           {k: sent[k] for k in tile.scan_indices if k in sent}, compare_kw, cache,
                           manifest.keep_json,
                           key=f"ballistics-tile-{tile.id}-{run_id}", pure=False)
            by_future[fut] = tile
            return fut

        first = [submit(t) for _, t in zip(range(_window(c, 2)), queue)]
        ac = as_completed(first)
        bar = tqdm(total=n_pairs, unit="pair", desc="comparing", disable=not progress, smoothing=0.1)
        try:
            for fut in ac:
                tile = by_future.pop(fut)
                try:
                    rows = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost tile is retried by the next run
                    summary.tiles_failed[tile.id] = f"{type(exc).__name__}: {exc}"
                    log.warning("tile %s failed: %s", tile.id, exc)
                else:
                    write_tile(folder, tile, rows, manifest)  # a disk error stops the run; done tiles stay
                    summary.tiles_computed += 1
                    summary.pairs_computed += len(rows)
                    summary.pair_errors += sum(r["error"] is not None for r in rows)
                finally:
                    fut.release()
                bar.update(tile.n_pairs)
                for _, nxt in zip(range(_window(c, 2) - len(by_future)), queue):
                    ac.add(submit(nxt))
        finally:
            bar.close()
            for fut in by_future:
                fut.cancel()


def _finish(kind: str, refs: list[ScanRef], objects: dict[int, Scan], pair_list: list[list[int]] | None,
            tiles: Callable[[], Iterable[Tile]], n_pairs: int, n_tiles: int, tile_size: int, compare_kw: dict,
            output: Any,
            keep_json: bool = True, **run_kw: Any) -> BatchSummary:
    params = {k: v for k, v in compare_kw.items() if k not in ("method", "preset")}
    if not isinstance(keep_json, bool):
        raise ParameterError(f"keep_json must be True or False, got {keep_json!r}.")
    manifest = Manifest(kind=kind, scans=refs, tile_size=tile_size, n_pairs=n_pairs, n_tiles=n_tiles,
                        pairs=pair_list, keep_json=keep_json,
                        compare={"method": compare_kw["method"], "preset": compare_kw["preset"], "params": params})
    return _execute(manifest, tiles, objects, output, **run_kw)


def _common_checks(tile_size: Any, max_tiles: Any, cache_size: Any, scheduler: Any, client: Any,
                   n_workers: Any) -> None:
    _check_int("tile_size", tile_size, 1)
    _check_int("max_tiles", max_tiles, 0)
    _check_int("cache_size", cache_size, 1)
    check_cluster_args(scheduler, client, n_workers)


def all_pairs(scans: Sequence[ScanInput], output: str | os.PathLike[str], *, method: str = "convergence",
              preset: str = "default", params: dict[str, Any] | None = None, tile_size: int | None = None,
              scheduler: str | None = None, client: Any = None, n_workers: int | None = None,
              max_tiles: int | None = None, progress: bool = False, cache_size: int | None = None,
              keep_json: bool = True) -> BatchSummary:
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
    method, preset : str
        As :func:`ballistics.comparison.compare`.
    params : dict, optional
        Further keyword parameters of ``compare`` (recorded in the manifest).
    tile_size : int, optional
        Scans per block of the pair matrix (default :func:`auto_tile_size`).
    scheduler : str, optional
        Address of a Dask scheduler (``"tcp://host:8786"``) to run on instead of a local cluster.
    client : distributed.Client, optional
        An existing client to run on (left open).
    n_workers : int, optional
        Processes of the local cluster (default: the cores available), 1 thread each.
    max_tiles : int, optional
        Compute at most this many unfinished tiles, then return (a partial run that a
        later call resumes).
    progress : bool
        Show a tqdm progress bar (pairs).
    cache_size : int, optional
        Prepared scans kept per worker (default ``2 * tile_size + 2``).
    keep_json : bool
        Keep each pair's full result (cells, curves, ...) as JSON in ``result_json``
        (~4 KB per pair compressed); False keeps only the flat columns, for very large runs.

    Returns
    -------
    BatchSummary
        Read the pairs with :func:`ballistics.batch.read_results`.

    Raises
    ------
    ParameterError
        Fewer than 2 scans, a file listed twice, unknown method/preset/parameter, bad
        tiling or cluster arguments, or ``output`` holding another run.
    ScanReadError
        An input file is missing or unreadable.

    Notes
    -----
    A pair whose comparison fails (e.g. different pixel spacing) is stored with its
    ``error`` and the run goes on.  ``n (n - 1) / 2`` pairs.
    """
    _common_checks(tile_size, max_tiles, cache_size, scheduler, client, n_workers)
    kw = _compare_kw(method, preset, dict(params or {}))
    refs, objects = resolve_scans(scans)
    if len(refs) < 2:
        raise ParameterError(f"all_pairs needs at least 2 scans, got {len(refs)}.")
    n = len(refs)
    size = tile_size or auto_tile_size(n)
    return _finish("all_pairs", refs, objects, None, lambda: all_pairs_tiles(n, size), n * (n - 1) // 2,
                   count_all_pairs_tiles(n, size), size, kw, output, scheduler=scheduler, client=client,
                   n_workers=n_workers, max_tiles=max_tiles, progress=progress, cache_size=cache_size,
                   keep_json=keep_json)


def one_vs_many(query: ScanInput, scans: Sequence[ScanInput], output: str | os.PathLike[str], *,
                method: str = "convergence", preset: str = "default", params: dict[str, Any] | None = None,
                tile_size: int | None = None, scheduler: str | None = None, client: Any = None,
                n_workers: int | None = None, max_tiles: int | None = None, progress: bool = False,
                cache_size: int | None = None, keep_json: bool = True) -> BatchSummary:
    """Compare ``query`` (as ``a``, index 0) with each of ``scans`` (indices 1..n) on a cluster.

    Parameters
    ----------
    query : path or Scan
        The reference surface of every pair.
    scans : sequence of path or Scan
        The surfaces it is compared with (``b``); the query must not be among them.
    output : path
        Folder of the run (see :func:`all_pairs`).
    method, preset, params, tile_size, scheduler, client, n_workers, max_tiles, progress, cache_size, keep_json
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
    _common_checks(tile_size, max_tiles, cache_size, scheduler, client, n_workers)
    kw = _compare_kw(method, preset, dict(params or {}))
    if isinstance(scans, (str, os.PathLike, Scan)) or not hasattr(scans, "__len__"):
        raise ParameterError(f"scans must be a list of file paths or Scan objects, got {type(scans).__name__}.")
    if not len(scans):
        raise ParameterError("one_vs_many needs at least one scan to compare the query with.")
    refs, objects = resolve_scans([query, *scans], what="query and scans")
    size = tile_size or auto_tile_size(len(scans))
    plist = [(0, j) for j in range(1, len(refs))]
    tiles = listed_tiles(plist, size)
    return _finish("one_vs_many", refs, objects, None, lambda: tiles, len(plist), len(tiles), size, kw, output,
                   scheduler=scheduler, client=client, n_workers=n_workers, max_tiles=max_tiles,
                   progress=progress, cache_size=cache_size,
                   keep_json=keep_json)


def pairs(scans: Sequence[ScanInput], index_pairs: Sequence[tuple[int, int]], output: str | os.PathLike[str], *,
          method: str = "convergence", preset: str = "default", params: dict[str, Any] | None = None,
          tile_size: int | None = None, scheduler: str | None = None, client: Any = None,
          n_workers: int | None = None, max_tiles: int | None = None, progress: bool = False,
          cache_size: int | None = None, keep_json: bool = True) -> BatchSummary:
    """Compare the listed pairs ``(i, j)`` of ``scans`` (``scans[i]`` as ``a``) on a cluster.

    Parameters
    ----------
    scans : sequence of path or Scan
    index_pairs : sequence of (int, int)
        Indices into ``scans``; each pair once, ``i != j``.  The list is recorded in the
        manifest (its SHA-256 is part of the run's identity).
    output : path
        Folder of the run (see :func:`all_pairs`).
    method, preset, params, tile_size, scheduler, client, n_workers, max_tiles, progress, cache_size, keep_json
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
    _common_checks(tile_size, max_tiles, cache_size, scheduler, client, n_workers)
    kw = _compare_kw(method, preset, dict(params or {}))
    refs, objects = resolve_scans(scans)
    n = len(refs)
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
    size = tile_size or auto_tile_size(n)
    tiles = listed_tiles(plist, size)
    return _finish("pairs", refs, objects, [list(p) for p in plist], lambda: tiles, len(plist), len(tiles), size, kw,
                   output, scheduler=scheduler, client=client, n_workers=n_workers, max_tiles=max_tiles,
                   progress=progress, cache_size=cache_size,
                   keep_json=keep_json)


@dataclass
class MapResult:
    """One scan's result of :func:`map_scans`.

    Attributes
    ----------
    index : int
    name : str
    value : Any
        What ``func`` returned (None on error).
    error : str or None
        ``"ErrorType: message"`` when ``func`` raised (``on_error="record"``).
    elapsed_s : float
        Seconds on the worker (reading included).
    worker : str
        ``host:pid`` of the worker process.
    """

    index: int
    name: str
    value: Any
    error: str | None
    elapsed_s: float
    worker: str


def map_scans(func: Callable[[Any], Any], scans: Sequence[ScanInput], *, read: bool = True,
              on_error: str = "raise", scheduler: str | None = None, client: Any = None,
              n_workers: int | None = None, progress: bool = False) -> list[MapResult]:
    """Apply ``func`` to every scan on the cluster (per-scan work, e.g. a database ingest).

    Parameters
    ----------
    func : callable
        Called on the worker with the :class:`~ballistics.Scan` (``read=True``; files
        are read by the worker) or with the path / Scan as given (``read=False``).  It
        must be picklable by cloudpickle and return something picklable.
    scans : sequence of path or Scan
    read : bool
        Read paths into Scans on the worker before calling ``func``.
    on_error : {"raise", "record"}
        ``"raise"``: the first failure is raised here with its original type and the
        remaining scans are cancelled; ``"record"``: kept as text in ``MapResult.error``.
    scheduler, client, n_workers, progress
        As :func:`all_pairs`.

    Returns
    -------
    list of MapResult
        In the order of ``scans``.

    Raises
    ------
    ParameterError
        Bad arguments; ScanReadError for a missing file.
    """
    from ._worker import map_one
    if not callable(func):
        raise ParameterError(f"func must be callable, got {type(func).__name__}.")
    if on_error not in ("raise", "record"):
        raise ParameterError(f"on_error must be 'raise' or 'record', got {on_error!r}.")
    check_cluster_args(scheduler, client, n_workers)
    if isinstance(scans, (str, os.PathLike, Scan)) or not hasattr(scans, "__len__"):
        raise ParameterError(f"scans must be a list of file paths or Scan objects, got {type(scans).__name__}.")
    items: list[Any] = []
    names: list[str] = []
    for k, s in enumerate(scans):
        if isinstance(s, Scan):
            items.append(s)
            names.append(s.name)
        elif isinstance(s, (str, os.PathLike)):
            p = Path(s).expanduser().resolve()
            if not p.is_file():
                from ..errors import ScanReadError
                raise ScanReadError(f"scans[{k}]: {str(s)!r} does not exist or is not a file.")
            items.append(str(p))
            names.append(p.stem)
        else:
            raise ParameterError(f"scans[{k}] must be a file path or a Scan, got {type(s).__name__}.")
    out: list[MapResult | None] = [None] * len(items)
    if not items:
        return []
    from distributed import as_completed
    from tqdm.auto import tqdm
    catch = on_error == "record"
    with cluster_client(scheduler, client, n_workers) as c:
        run_id = uuid.uuid4().hex[:8]
        queue = iter(range(len(items)))
        idx_of: dict[Any, int] = {}

        def submit(k: int) -> Any:
            fut = c.submit(map_one, func, items[k], names[k], read, catch, key=f"ballistics-map-{k}-{run_id}",
                           pure=False)
            idx_of[fut] = k
            return fut

        ac = as_completed([submit(k) for _, k in zip(range(_window(c, 4)), queue)])
        try:
            with tqdm(total=len(items), unit="scan", disable=not progress) as bar:
                for fut in ac:
                    k = idx_of.pop(fut)
                    value, err, dt, worker = fut.result()  # re-raises func's error when not caught
                    fut.release()
                    out[k] = MapResult(k, names[k], value, err, dt, worker)
                    bar.update(1)
                    for _, nxt in zip(range(_window(c, 4) - len(idx_of)), queue):
                        ac.add(submit(nxt))
        finally:
            for fut in idx_of:
                fut.cancel()
    return [r for r in out if r is not None]
