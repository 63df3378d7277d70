"""Executing a batch run: the run folder under its lock, tiles submitted to the cluster.

Tiles go to the workers through a bounded window (two per worker thread, asked again
after every completed tile, so a growing cluster is used); each finished tile is
written atomically as it arrives, so a killed run keeps everything it finished.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..scan import Scan
from ._cluster import cluster_client
from ._manifest import MANIFEST_NAME, Manifest
from ._options import BatchOptions
from ._table import remove_partial_files, tile_is_done, write_tile
from ._tiles import Tile

log = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "BatchSummary", "execute", "window"]


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


def execute(manifest: Manifest, tiles: Callable[[], Iterable[Tile]], objects: dict[int, Scan], output: Any,
            options: BatchOptions, client: Any = None) -> BatchSummary:
    """Open (or resume) the run folder under its lock and compute the unfinished tiles.

    Parameters
    ----------
    manifest : Manifest
        What the run computes.
    tiles : callable
        Returns a fresh iterable of the run's tiles (called twice: done, then pending).
    objects : dict
        Index -> in-memory Scan.
    output : path
        The run's folder.
    options : BatchOptions
        Cluster, limits and progress.
    client : distributed.Client, optional
        An existing client to run on (left open).

    Returns
    -------
    BatchSummary
    """
    t0 = time.perf_counter()
    folder, lock = _open_output(output, manifest)
    try:
        return _execute_locked(manifest, tiles, objects, folder, t0, options, client)
    finally:
        lock.release()


def _execute_locked(manifest: Manifest, tiles: Callable[[], Iterable[Tile]], objects: dict[int, Scan],
                    folder: Path, t0: float, options: BatchOptions, client: Any) -> BatchSummary:
    summary = BatchSummary(str(folder), manifest.digest, manifest.n_pairs, manifest.n_tiles)
    refs = {r.index: asdict(r) for r in manifest.scans}
    max_tiles = options.max_tiles
    cache = options.cache_size or 2 * manifest.tile_size + 2

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
        _submit_all(pending, n_pending_pairs, refs, objects, cache, folder, manifest, summary, options, client)
    summary.complete = summary.tiles_skipped + summary.tiles_computed == manifest.n_tiles
    summary.elapsed_s = time.perf_counter() - t0
    if summary.tiles_failed:
        log.error("%d tiles failed (rerun to retry): %s", len(summary.tiles_failed), summary.tiles_failed)
    return summary


def window(c: Any, per_slot: int) -> int:
    """Tasks to keep in flight: ``per_slot`` per worker thread of the cluster now, plus one.

    Asked again after every completed task, so a cluster that grows is used.
    """
    try:
        slots = sum(c.nthreads().values())
    except Exception:  # noqa: BLE001 - a scheduler hiccup only slows submission
        slots = 1
    return per_slot * max(1, slots) + 1


def _submit_all(pending: Iterator[Tile], n_pairs: int, refs: dict, objects: dict[int, Scan], cache: int,
                folder: Path, manifest: Manifest, summary: BatchSummary, options: BatchOptions,
                client: Any) -> None:
    from distributed import as_completed
    from tqdm import tqdm

    from ._worker import run_tile
    run_id = uuid.uuid4().hex[:8]
    with cluster_client(options.scheduler, client, options.n_workers) as c:
        # in-memory scans (a few, by nature) are sent to the cluster once
        sent = c.scatter(dict(objects)) if objects else {}
        queue: Iterator[Tile] = pending
        by_future: dict[Any, Tile] = {}

        def submit(tile: Tile) -> Any:
            fut = c.submit(run_tile, tile.id, list(tile.pairs), {k: refs[k] for k in tile.scan_indices},
                           {k: sent[k] for k in tile.scan_indices if k in sent}, manifest.compare, cache,
                           manifest.keep_json,
                           key=f"ballistics-tile-{tile.id}-{run_id}", pure=False)
            by_future[fut] = tile
            return fut

        first = [submit(t) for _, t in zip(range(window(c, 2)), queue)]
        ac = as_completed(first)
        bar = tqdm(total=n_pairs, unit="pair", desc="comparing", disable=not options.progress, smoothing=0.1)
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
                for _, nxt in zip(range(window(c, 2) - len(by_future)), queue):
                    ac.add(submit(nxt))
        finally:
            bar.close()
            for fut in by_future:
                fut.cancel()
