"""Per-scan work on the batch engine's cluster: :func:`map_scans`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ParameterError, ScanReadError
from ..scan import Scan
from ._cluster import check_cluster_args, cluster_client
from ._execute import window

__all__ = ["MapResult", "map_scans"]



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


def _items(scans: Sequence[str | os.PathLike[str] | Scan]) -> tuple[list[Any], list[str]]:
    """What the workers get (absolute paths or Scans) and each scan's name."""
    items: list[Any] = []
    names: list[str] = []
    for k, s in enumerate(scans):
        if isinstance(s, Scan):
            items.append(s)
            names.append(s.name)
        elif isinstance(s, (str, os.PathLike)):
            p = Path(s).expanduser().resolve()
            if not p.is_file():
                raise ScanReadError(f"scans[{k}]: {str(s)!r} does not exist or is not a file.")
            items.append(str(p))
            names.append(p.stem)
        else:
            raise ParameterError(f"scans[{k}] must be a file path or a Scan, got {type(s).__name__}.")
    return items, names


def map_scans(func: Callable[[Any], Any], scans: Sequence[str | os.PathLike[str] | Scan], *, read: bool = True,
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
    items, names = _items(scans)
    out: list[MapResult | None] = [None] * len(items)
    if not items:
        return []
    from distributed import as_completed
    from tqdm import tqdm
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

        ac = as_completed([submit(k) for _, k in zip(range(window(c, 4)), queue)])
        try:
            with tqdm(total=len(items), unit="scan", disable=not progress) as bar:
                for fut in ac:
                    k = idx_of.pop(fut)
                    value, err, dt, worker = fut.result()  # re-raises func's error when not caught
                    fut.release()
                    out[k] = MapResult(k, names[k], value, err, dt, worker)
                    bar.update(1)
                    for _, nxt in zip(range(window(c, 4) - len(idx_of)), queue):
                        ac.add(submit(nxt))
        finally:
            for fut in idx_of:
                fut.cancel()
    return [r for r in out if r is not None]
