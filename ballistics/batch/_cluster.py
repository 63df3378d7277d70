"""Where the work runs: a local cluster of worker processes, or a given Dask cluster.

By default a :class:`dask.distributed.LocalCluster` of ``n_workers`` processes with one
thread each is started for the call and closed after it (the comparison's FFTs and Numba
kernels are told to use one thread too: on a shared machine, processes scale and extra
threads only contend).  Given a scheduler address (``"tcp://host:8786"``) or an existing
:class:`distributed.Client`, the same calls run on that cluster, of one machine or many,
unchanged; the scan paths must then be readable by every worker (e.g. a shared file
system), and its workers should be started with ``--nthreads 1`` and
``NUMBA_NUM_THREADS=1``.  Dask is imported only when a cluster is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import ParameterError

log = logging.getLogger(__name__)

__all__ = ["WORKER_ENV", "check_cluster_args", "cluster_client", "n_cores"]

#: Environment of the local workers: one thread for BLAS/OpenMP/Numba in each process.
#: (and OpenMP threads sleep rather than spin between parallel regions).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _pre_spawn_environ() -> dict[str, Any]:
    """Dask's environment for new worker processes, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets glibc's trim threshold to 64 KiB so that workers hand memory back to the
    system; setting it also freezes glibc's adaptive mmap threshold, so every large
    temporary of a comparison is mapped and unmapped again.  Measured: one comparison
    took 1.60 s instead of 1.05 s (10 Fadul pairs, one core), and a 2-worker cluster was
    no faster than one threaded process (``benchmarks/results_batch.md``).
    """
    import dask
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


@contextlib.contextmanager
def _spawn_environment() -> Iterator[None]:
    """While local workers start: without Dask's trim threshold; afterwards: this process's
    environment exactly as before.

    Dask's nanny writes its pre-spawn variables into the *parent's* ``os.environ`` before
    spawning a worker, and leaves them there; a cluster started earlier in this process
    (by the caller, or by Dask with its defaults) can therefore have left
    ``MALLOC_TRIM_THRESHOLD_`` behind, which new workers would inherit.  The value is
    dropped only when it is Dask's own default, never a value the user chose.
    """
    import dask
    saved = dict(os.environ)
    default = (dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}).get("MALLOC_TRIM_THRESHOLD_")
    if default is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(default):
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _pre_spawn_environ()}):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def n_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_cluster_args(scheduler: str | None, client: Any, n_workers: int | None) -> None:
    """Refuse inconsistent cluster arguments before anything is stored.

    Raises
    ------
    ParameterError
        Both a scheduler and a client, ``n_workers`` with a given cluster, or a bad
        ``n_workers``.
    """
    if scheduler is not None and client is not None:
        raise ParameterError("Give either scheduler= (an address) or client= (a distributed.Client), not both.")
    if scheduler is not None and not isinstance(scheduler, str):
        raise ParameterError(f"scheduler must be an address such as 'tcp://host:8786', got {type(scheduler).__name__}.")
    if n_workers is not None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ParameterError(f"n_workers must be a positive integer, got {n_workers!r}.")
        if scheduler is not None or client is not None:
            raise ParameterError("n_workers only applies to the local cluster; a given cluster has its own workers.")


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, client: Any = None, n_workers: int | None = None,
                   timeout_s: float = 30.0) -> Iterator[Any]:
    """A :class:`distributed.Client` for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler; the client is closed afterwards, the cluster left running.
    client : distributed.Client, optional
        Used as is and left open.
    n_workers : int, optional
        Processes of the local cluster (default: the cores available).
    timeout_s : float
        Seconds to wait for a scheduler to answer.

    Raises
    ------
    ParameterError
        The scheduler cannot be reached.
    """
    check_cluster_args(scheduler, client, n_workers)
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster
    if scheduler is not None:
        try:
            c = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ParameterError(f"Cannot reach the Dask scheduler at {scheduler!r} ({exc}); start it with "
                                 "`dask scheduler` and its workers with `dask worker ADDRESS --nthreads 1`.") from exc
        try:
            yield c
        finally:
            c.close()
        return
    n = n_workers or n_cores()
    log.info("starting a local cluster of %d worker processes (1 thread each)", n)
    with _spawn_environment():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               env=dict(WORKER_ENV), silence_logs=logging.ERROR)
    try:
        c = Client(cluster)
        try:
            yield c
        finally:
            c.close()
    finally:
        cluster.close()
