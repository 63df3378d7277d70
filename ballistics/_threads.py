"""How many threads the engine uses: one compute thread per operation unless told otherwise.

Importing :mod:`ballistics` changes nothing global.  Each comparison (and each
extraction) runs inside :func:`compute_threads`, which sets the thread counts of the
libraries it drives for the calling thread, for the duration of the call only, and
restores them afterwards:

* Numba's parallel kernels (``ballistics.kernels``: rotation, region cutting, NCC
  assembly): ``numba.set_num_threads`` (a per-thread setting in Numba);
* the FFT workers of ``scipy.fft`` (passed explicitly to every FFT call);
* OpenCV's worker threads during extraction and the query's key points
  (``cv2.setNumThreads``, restored after);
* search's stage-1 votes and stage-2 verifications, split over that many Python
  threads (their kernels release the GIL), with BLAS held to one thread per call while
  stage 2 runs (``threadpoolctl``, restored after); search's stage-3 comparisons run on
  one thread each whatever the setting (a comparison took longer on two).

The default is **one** thread per operation.  Parallelism comes from processes
(``ballistics.batch``, ``ballistics db add --jobs N``): on a machine shared with other
jobs, thread pools that spin-wait for work (Numba's OpenMP layer, OpenCV's pool) fight
the other processes for the cores and burn several times a comparison's own CPU time
(``benchmarks/bench_under_load.py``).  A comparison spends most of its time in batched
FFTs of small arrays, which gain little from a second thread.

:func:`set_threads` changes the default for the whole process (``set_threads(None)``
leaves Numba, SciPy and OpenCV at their own settings: Numba then uses every core);
:func:`threads` overrides it inside a ``with`` block, for the calling thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .errors import ParameterError

__all__ = ["DEFAULT_THREADS", "set_threads", "threads", "compute_threads", "get_fft_workers",
           "current_threads", "with_compute_threads", "resolve_threads"]

F = TypeVar("F", bound=Callable[..., Any])

#: Compute threads per operation when nothing else is set.
DEFAULT_THREADS = 1

_UNSET = object()
_PROCESS: object = _UNSET          # set_threads(): an int, None (libraries' own settings) or _UNSET
_LOCAL = threading.local()         # .override (threads() blocks), .fft (inside compute_threads)


def _check(n: int) -> int:
    import numba
    try:
        n_int = int(n)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"the number of threads must be an integer, got {n!r}") from exc
    # numba.config sets its attributes at run time (from the environment): invisible to mypy
    n_max: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if isinstance(n, bool) or n_int != n or not 1 <= n_int <= n_max:
        raise ParameterError(f"the number of threads must be between 1 and {n_max} "
                             f"(Numba's NUMBA_NUM_THREADS on this machine), got {n!r}")
    return n_int


def current_threads() -> int | None:
    """Compute threads an operation started now in this thread would use.

    Returns
    -------
    int or None
        The innermost :func:`threads` block's value, else the :func:`set_threads`
        setting, else :data:`DEFAULT_THREADS`; None means the libraries' own settings.
    """
    override = getattr(_LOCAL, "override", _UNSET)
    if override is not _UNSET:
        return override  # type: ignore[return-value]
    if _PROCESS is not _UNSET:
        return _PROCESS  # type: ignore[return-value]
    return DEFAULT_THREADS


def set_threads(n: int | None) -> None:
    """Threads per comparison or extraction from now on (process-wide).

    Parameters
    ----------
    n : int or None
        Threads, 1 .. ``numba.config.NUMBA_NUM_THREADS`` (the number of cores unless the
        environment says otherwise); None leaves Numba, ``scipy.fft`` and OpenCV at
        their own settings (Numba: every core).

    Raises
    ------
    ParameterError
        ``n`` is neither None nor an integer in that range.
    """
    global _PROCESS
    _PROCESS = None if n is None else _check(n)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Context manager: ``n`` threads for the engine inside the block (this thread), restored after.

    >>> import ballistics
    >>> with ballistics.threads(2):            # doctest: +SKIP
    ...     res = ballistics.compare(a, b)

    Parameters
    ----------
    n : int or None
        As :func:`set_threads`.
    """
    n = None if n is None else _check(n)
    old = getattr(_LOCAL, "override", _UNSET)
    _LOCAL.override = n
    try:
        with compute_threads():
            yield
    finally:
        _LOCAL.override = old


@contextlib.contextmanager
def compute_threads(fft_workers: int | None = None, *, opencv: bool = False) -> Iterator[int | None]:
    """Run a block with :func:`current_threads` compute threads, restoring every setting after.

    Parameters
    ----------
    fft_workers : int, optional
        FFT threads inside the block (a comparison's ``workers`` parameter); default the
        compute threads.
    opencv : bool
        Also set OpenCV's threads (process-wide in OpenCV, restored on exit).

    Yields
    ------
    int or None
        The compute threads in force (None: the libraries' own settings).
    """
    n = current_threads()
    if n is None:
        old_fft = getattr(_LOCAL, "fft", None)
        _LOCAL.fft = fft_workers
        try:
            yield None
        finally:
            _LOCAL.fft = old_fft
        return
    import numba
    old_numba, old_fft = numba.get_num_threads(), getattr(_LOCAL, "fft", None)
    old_cv: int | None = None
    if opencv:
        import cv2
        old_cv = int(cv2.getNumThreads())
        cv2.setNumThreads(n)
    numba.set_num_threads(n)
    _LOCAL.fft = fft_workers or n
    try:
        yield n
    finally:
        numba.set_num_threads(old_numba)
        _LOCAL.fft = old_fft
        if old_cv is not None:
            import cv2
            cv2.setNumThreads(old_cv)


def get_fft_workers() -> int:
    """FFT threads for the calling thread: the innermost :func:`compute_threads` block's,
    else :func:`current_threads`, else ``scipy.fft``'s own setting."""
    fft = getattr(_LOCAL, "fft", None)
    if fft is not None:
        return int(fft)
    n = current_threads()
    if n is not None:
        return n
    import scipy.fft as sfft
    return int(sfft.get_workers())


def with_compute_threads(*, opencv: bool = False) -> Callable[[F], F]:
    """Decorator: run the function inside :func:`compute_threads` (see the module docstring)."""
    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with compute_threads(opencv=opencv):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return deco


def resolve_threads(threads: int | None = None) -> int:
    """Threads an operation that splits its work over threads will use (search's stages 1 and 2).

    Parameters
    ----------
    threads : int, optional
        Requested threads; default :func:`current_threads` (one unless
        :func:`threads` or :func:`set_threads` said otherwise; None there means every
        core this process may use).

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ParameterError
        ``threads`` is not a positive integer.
    """
    if threads is None:
        threads = current_threads()
        if threads is None:
            try:
                return max(1, len(os.sched_getaffinity(0)))
            except AttributeError:  # not on Linux
                return max(1, os.cpu_count() or 1)
        return int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ParameterError(f"threads must be a positive integer, got {threads!r}")
    return threads
