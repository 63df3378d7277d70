"""The cascade over any storage: callables give the vectors, key points and surfaces.

:func:`cascade` runs the three stages of :mod:`._cascade` for one query against
storage given as callables (a FAISS index's ``search``, a blob lookup, a surface
loader); :func:`cascade_many` batches stage 1 and shares decoded key points.  The case
database binds the same stages to its catalogue (:mod:`ballistics.database`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from .._threads import resolve_threads, threads
from .._version import __version__
from ..errors import BallisticsError
from ..scan import Scan
from ._cascade import CascadeResult, compare_candidates, stage1_hits, unverified_warning, verify_candidates
from ._params import SearchParams
from ._timing import Timer
from ._verify_sift import PARAMS as VERIFY_PARAMS
from ._verify_sift import Keypoints, VerificationError, query_keypoints

logger = logging.getLogger(__name__)

__all__ = ["cascade", "cascade_many"]

Blobs = Callable[[list[Hashable]], dict[Hashable, bytes | Keypoints | None]]


def _params(params: SearchParams | None, knobs: dict[str, Any]) -> SearchParams:
    base = params if params is not None else SearchParams()
    return base.replace(**knobs) if knobs else base


def cascade(query: Scan, *, signature: np.ndarray,
            search_vectors: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
            get_blobs: Blobs, load_scan: Callable[[Hashable], Scan] | None = None,
            exclude: Iterable[Hashable] = (), query_kp: Sequence[Keypoints] | None = None,
            prepared: Any = None, compare: Callable[..., Any] | None = None,
            verify_params: dict[str, Any] | None = None, params: SearchParams | None = None,
            **knobs: Any) -> CascadeResult:
    """Search with the three-stage cascade.

    Parameters
    ----------
    query : Scan
        The query's extracted breech face (heights in metres).
    signature : numpy.ndarray
        The query's stage-1 signature (:func:`ballistics.retrieval.signature`).
    search_vectors : callable
        ``(vector (1, d) float32, depth) -> (scores (1, depth), keys (1, depth))``, e.g.
        a FAISS index's ``search``; keys < 0 are ignored.
    get_blobs : callable
        ``list of keys -> {key: stage-2 blob bytes (or Keypoints) or None}``.
    load_scan : callable, optional
        ``key -> Scan`` of the stored breech face; needed when ``rerank > 0``.
    exclude : iterable
        Keys to leave out (e.g. the query itself).
    query_kp, prepared : optional
        Precomputed query key points (:func:`query_keypoints`) and ``prepare(query)``.
    compare : callable, optional
        Stage-3 comparison (default :func:`ballistics.comparison.compare`).
    verify_params : dict, optional
        Passed to :func:`ballistics.retrieval._verify_sift.verify`.
    params : SearchParams, optional
        The cascade's knobs (``k``, ``shortlist``, ``rerank``, ...; stage 3's
        ``CompareParams`` as ``params.compare``).
    **knobs
        Field overrides of ``params`` (``k=5``, ``rerank=0``, ...).

    Returns
    -------
    CascadeResult
        Hits best first (at most ``k``), with per-stage scores, timings and warnings.

    Raises
    ------
    ParameterError
        Unknown or invalid knobs.
    BallisticsError
        ``rerank > 0`` without ``load_scan``.

    References
    ----------
    Jegou et al. (2010) (stage 1); Lowe (2004), Fischler & Bolles (1981) (stage 2);
    Song (2013), Chen et al. (2017) (stage 3).
    """
    p = _params(params, knobs)
    if p.rerank and load_scan is None:
        raise BallisticsError("rerank > 0 needs load_scan to read the candidates' surfaces")
    timings: dict[str, dict[str, float]] = {}
    warnings: list[str] = []
    excluded = set(exclude)
    with Timer(timings, "query", 1):
        if query_kp is None and p.verify:
            query_kp = query_keypoints(query, verify_params, mirror=p.mirror)
    with Timer(timings, "stage1") as t1:
        D, I = search_vectors(np.asarray(signature, np.float32).reshape(1, -1), p.shortlist + len(excluded))
        hits = stage1_hits(D, I, excluded, p.shortlist)
        t1.n = len(hits)
    with Timer(timings, "stage2", len(hits) if p.verify else 0, threads=resolve_threads()):
        if p.verify and query_kp is not None:
            hits, w = verify_candidates(query_kp, hits, get_blobs, verify_params)
            warnings += w
            hits.sort(key=lambda h: h.sort_key())
            weak = unverified_warning(hits, p.rerank_min_inliers)
            if weak:
                warnings.append(weak)
                logger.warning(weak)
    head = [h for h in hits[: p.rerank] if h.stage2_inliers is None or h.stage2_inliers >= p.rerank_min_inliers]
    with Timer(timings, "stage3", len(head)):
        if head:
            if compare is None:
                from ..comparison import compare as default_compare
                compare = default_compare
            assert load_scan is not None  # rerank > 0 without load_scan was refused above
            if prepared is None:
                from ..comparison import prepare
                with threads(1):   # as each comparison: one thread (compare_candidates)
                    prepared = prepare(query)
            damaged = compare_candidates(prepared, head, load_scan, compare, seed=p.seed,
                                         seed_window_deg=p.seed_window_deg, seed_min_inliers=p.seed_min_inliers,
                                         compare_params=p.compare, method=p.method)
            if damaged:
                warnings += [f"candidate {d}: stored surface unreadable; skipped" for d in damaged]
                hits = [h for h in hits if h.key not in set(damaged)]
            hits.sort(key=lambda h: h.sort_key())
    hits = hits[: p.k]
    for r, h in enumerate(hits, 1):
        h.rank = r
    rec = {**p.to_dict(), "verify_params": {**VERIFY_PARAMS, **(verify_params or {})}}
    return CascadeResult(hits, timings, rec, __version__, getattr(query, "checksum", None), warnings)


def cascade_many(queries: Sequence[Scan], signatures: np.ndarray,
                 search_vectors: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                 get_blobs: Blobs, load_scan: Callable[[Hashable], Scan] | None = None,
                 exclude: Sequence[Iterable[Hashable]] | None = None, cache_size: int = 20000,
                 params: SearchParams | None = None, **kw: Any) -> list[CascadeResult]:
    """Batched cascade: one FAISS call for all queries, decoded key points shared.

    Stage 1 runs once for the whole batch; stage-2 blobs are decoded once and cached
    across queries (up to ``cache_size`` candidates).  Other arguments as :func:`cascade`.

    Returns
    -------
    list of CascadeResult
        One per query, in order.
    """
    sig = np.asarray(signatures, np.float32)
    if sig.ndim != 2 or len(sig) != len(queries):
        raise BallisticsError("signatures must be one row per query")
    knobs = {k_: v for k_, v in kw.items() if k_ in SearchParams.names()}
    rest = {k_: v for k_, v in kw.items() if k_ not in knobs}
    p = _params(params, knobs)
    extra = max((len(set(e)) for e in exclude), default=0) if exclude else 0
    w0, c0 = time.perf_counter(), time.process_time()
    D, I = search_vectors(sig, p.shortlist + extra)
    batch_wall, batch_cpu = (time.perf_counter() - w0) / len(queries), (time.process_time() - c0) / len(queries)
    cache: dict[Hashable, bytes | Keypoints | None] = {}  # damaged blobs stay bytes

    def cached_blobs(keys: list[Hashable]) -> dict[Hashable, bytes | Keypoints | None]:
        need = [x for x in keys if x not in cache]
        if need:
            got = get_blobs(need)
            if len(cache) + len(need) > cache_size:
                cache.clear()
            for x in need:
                b = got.get(x)
                try:
                    cache[x] = None if b is None else (b if isinstance(b, Keypoints) else Keypoints.from_bytes(b))
                except VerificationError:
                    cache[x] = b  # kept as bytes: verify_candidates names and skips it
        return {x: cache.get(x) for x in keys}

    out = []
    for i, q in enumerate(queries):
        row = (D[i:i + 1], I[i:i + 1])

        def search_row(v: np.ndarray, d: int, row: tuple[np.ndarray, np.ndarray] = row
                       ) -> tuple[np.ndarray, np.ndarray]:
            return row  # stage 1 already ran for the whole batch

        res = cascade(q, signature=sig[i], search_vectors=search_row, get_blobs=cached_blobs,
                      load_scan=load_scan, exclude=(exclude[i] if exclude else ()), params=p, **rest)
        res.timings["stage1"]["wall_s"] += batch_wall
        res.timings["stage1"]["cpu_s"] += batch_cpu
        out.append(res)
    return out

