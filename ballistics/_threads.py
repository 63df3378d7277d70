"""How many threads the engine uses: the one explicit, documented switch.

Importing :mod:`ballistics` changes nothing global.  A program that wants to limit or
raise the engine's threads calls :func:`set_threads` once (process-wide, like
``numba.set_num_threads``), or wraps a block in :func:`threads` (restored on exit).

Two pools are involved: Numba's (the kernels of ``ballistics.kernels``: rotation,
region cutting, NCC assembly) and the FFT workers of ``scipy.fft`` used by
:func:`ballistics.compare`.  What one process should use: on a machine shared by
several jobs, one thread per process and one process per core (e.g.
``ballistics db add --jobs N``); a comparison spends most of its time in batched FFTs
of small arrays, which gain little from a second thread (``benchmarks/results_compare.md``).

Numba's OpenMP threading layer spin-waits between parallel regions unless the
environment variable ``OMP_WAIT_POLICY=PASSIVE`` is set before Numba starts its
threads; on a loaded machine that can make the kernels 10-20x slower.  The library does
not set it (that would change the process's environment); the ``ballistics`` command
does, and programs can export it themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import ParameterError

__all__ = ["set_threads", "threads", "get_fft_workers"]

_FFT_WORKERS: int | None = None   # None: scipy.fft's own setting (1 unless set_workers is active)


def _check(n: int) -> int:
    import numba
    try:
        n_int = int(n)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"the number of threads must be an integer, got {n!r}") from exc
    # numba.config sets its attributes at run time (from the environment): invisible to mypy
    n_max: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if n_int != n or not 1 <= n_int <= n_max:
        raise ParameterError(f"the number of threads must be between 1 and {n_max} "
                             f"(Numba's NUMBA_NUM_THREADS on this machine), got {n!r}")
    return n_int


def set_threads(n: int) -> None:
    """Use ``n`` threads in the engine's kernels and FFTs from now on (process-wide).

    Parameters
    ----------
    n : int
        Threads, 1 .. ``numba.config.NUMBA_NUM_THREADS`` (the number of cores unless the
        environment says otherwise).

    Raises
    ------
    ParameterError
        ``n`` is not an integer in that range.
    """
    global _FFT_WORKERS
    import numba
    n = _check(n)
    numba.set_num_threads(n)
    _FFT_WORKERS = n


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Context manager: ``n`` threads for the engine inside the block, restored after.

    >>> import ballistics
    >>> with ballistics.threads(1):            # doctest: +SKIP
    ...     res = ballistics.compare(a, b)

    The Numba setting is per calling thread (``numba.set_num_threads``); the FFT setting
    is this module's.
    """
    global _FFT_WORKERS
    import numba
    n = _check(n)
    old_numba, old_fft = numba.get_num_threads(), _FFT_WORKERS
    numba.set_num_threads(n)
    _FFT_WORKERS = n
    try:
        yield
    finally:
        numba.set_num_threads(old_numba)
        _FFT_WORKERS = old_fft


def get_fft_workers() -> int:
    """FFT threads the comparison uses when its ``workers`` parameter is None."""
    if _FFT_WORKERS is not None:
        return _FFT_WORKERS
    import scipy.fft as sfft
    return int(sfft.get_workers())
