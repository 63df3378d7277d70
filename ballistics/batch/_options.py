"""How a batch run is executed: one frozen, validated options object.

:class:`BatchOptions` holds everything about *how* pairs are computed (tiling,
cluster, progress); *what* is computed is the comparison's
:class:`~ballistics.comparison.CompareParams` and the method.  Only ``tile_size`` and
``keep_json`` change the results on disk and so enter the run's manifest; the rest can
differ between a run and its resumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._params import Boolean, Integer, Params, Text, param
from ..errors import ParameterError

__all__ = ["BatchOptions"]


@dataclass(frozen=True)
class BatchOptions(Params):
    """Execution options of :func:`~ballistics.batch.all_pairs`, :func:`~ballistics.batch.one_vs_many`
    and :func:`~ballistics.batch.pairs`; validated on construction.

    Raises
    ------
    ParameterError
        A value of the wrong type or out of range, or ``n_workers`` with a given cluster.
    """

    _kind: ClassVar[str] = "batch option"

    tile_size: int | None = param(
        None, Integer(1, 4096, none=True),
        "Scans per block of the pair matrix; a tile is one block of rows x one block of columns "
        "(None: ceil(n / 8) clamped to 1..64, see auto_tile_size).", unit="scans")
    n_workers: int | None = param(
        None, Integer(1, 1024, none=True),
        "Processes of the local cluster, one compute thread each (None: the cores available).",
        unit="processes")
    scheduler: str | None = param(
        None, Text(512, none=True),
        "Address of a Dask scheduler ('tcp://host:8786') to run on instead of a local cluster.")
    max_tiles: int | None = param(
        None, Integer(0, none=True),
        "Compute at most this many unfinished tiles, then return (a later call resumes).", unit="tiles")
    cache_size: int | None = param(
        None, Integer(1, 100_000, none=True),
        "Prepared scans kept per worker process (None: 2 x tile_size + 2).", unit="scans")
    keep_json: bool = param(
        True, Boolean(),
        "Keep each pair's full result as JSON in result_json (~4 KB per pair compressed); False keeps "
        "only the flat columns, for very large runs.")
    progress: bool = param(False, Boolean(), "Show a progress bar (pairs).")

    def _check(self) -> None:
        if self.n_workers is not None and self.scheduler is not None:
            raise ParameterError("n_workers only applies to the local cluster; a given cluster has its own workers.")
