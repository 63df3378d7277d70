"""Stage 2 over a whole short list: one query against many candidates, on threads.

:func:`verify_many` runs :func:`._verify_sift.verify` for every candidate.  Each
verification is independent and seeds its own RANSAC generator, so the answers do not
depend on the number of threads or on how the list is split.

Threads, not processes: the work of a verification is one small matrix product per
query side (BLAS), the row minima and the RANSAC hypotheses (compiled kernels that
release the GIL), so threads share the decoded key points without copying them.  BLAS
is held to **one thread per call** for the duration (``threadpoolctl``, restored on
return): a small product (a few hundred descriptors on each side) is not faster on
more BLAS threads, and a multi-threaded BLAS called from several threads at once would
oversubscribe the cores.  While a search runs, other threads of
the same process that call BLAS also get one thread.

The default is the engine's: one thread per operation (:func:`ballistics.threads`
raises it for a block, :func:`ballistics.set_threads` for the process).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._threads import resolve_threads
from ._verify_sift import Keypoints, Verification, verify

__all__ = ["verify_many"]

#: Candidates per task handed to a thread (small enough to balance, large enough to amortise).
CHUNK = 32


def verify_many(query: Sequence[Keypoints], candidates: Sequence[Keypoints],
                params: dict[str, Any] | None = None, threads: int | None = None) -> list[Verification]:
    """Verify one query against every candidate (stage 2 of search), on ``threads`` threads.

    Parameters
    ----------
    query : sequence of Keypoints
        The query's key points, and its mirror image's when the mirror is tried.
    candidates : sequence of Keypoints
        The candidates' stored key points.
    params : dict, optional
        Overrides of :data:`._verify_sift.PARAMS`.
    threads : int, optional
        Threads (default: :func:`resolve_threads`).  The answers are the same for any
        number.

    Returns
    -------
    list of Verification
        One per candidate, in order.

    References
    ----------
    Lowe (2004), IJCV 60; Fischler & Bolles (1981), CACM 24(6) (see :func:`verify`).
    """
    from threadpoolctl import threadpool_limits

    qs = tuple(query)
    for q in qs:   # fill the lazy caches before threads share the query
        if isinstance(q, Keypoints):
            _ = q.desc_f32, q.sqnorm, q.desc_neg2
    n = len(candidates)
    workers = min(resolve_threads(threads), max(1, math.ceil(n / CHUNK)))
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            return [verify(qs, c, params) for c in candidates]
        chunks = [candidates[i:i + CHUNK] for i in range(0, n, CHUNK)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ballistics-stage2") as pool:
            parts = pool.map(lambda chunk: [verify(qs, c, params) for c in chunk], chunks)
            return [v for part in parts for v in part]
