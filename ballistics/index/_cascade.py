"""The three-stage retrieval cascade of search (issue 10), as standalone functions.

1. **Retrieval**: FAISS nearest neighbours of the query's signature, a deep short list
   (``shortlist``, default 1000) -- cheap per entry, keeps mates in the list.
2. **Verification**: every short-listed candidate's stored SIFT key points
   (:mod:`._stage2` blobs, made at ingest) are matched with the query's and a rigid
   motion is fitted by RANSAC (:func:`._verify_sift.verify`, about 1.5 ms CPU per pair);
   candidates are re-ordered by inlier count.
3. **Comparison**: the ``rerank`` best verified candidates (default 10) whose inlier
   count reaches ``rerank_min_inliers`` get :func:`ballistics.comparison.compare`;
   they come first, ordered by CMC count then comparison score; the rest follow in
   stage-2 order, then stage-1 order.  The comparison is **seeded** by stage 2's pose
   (:func:`stage3_seed`): when the candidate has at least ``seed_min_inliers`` inliers,
   ``compare`` searches only ``+-seed_window_deg`` about the rotation stage 2 found and
   only the handedness it found (as given or mirrored), instead of the full circle in
   both handedness; a seeded comparison with no CMC is repeated over the full circle.

The functions take callables for the storage (``search_vectors``, ``get_blobs``,
``load_scan``) so they run on a :class:`~ballistics.index.CaseDatabase` as well as on
in-memory collections (benchmarks, tests).  Every hit records the scores of every stage
it went through; :class:`CascadeResult` records the parameters, version, query
checksum and per-stage timings (wall and CPU seconds).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import BallisticsError, ParameterError
from ..scan import Scan
from ._verify_sift import PARAMS as VERIFY_PARAMS
from ._verify_sift import Keypoints, Verification, query_keypoints, verify

logger = logging.getLogger(__name__)

#: Defaults of the cascade's knobs (chosen from ``benchmarks/bench_search.py``).
CASCADE_DEFAULTS: dict[str, Any] = {
    "shortlist": 1000,          # stage-1 depth: candidates verified by stage 2
    "rerank": 10,               # stage-3 depth: candidates compared with ``compare``
    "rerank_min_inliers": 6,    # stage 3 skips candidates with fewer stage-2 inliers
    "mirror": True,             # stage 2 also tries the query's mirror image
    "seed": True,               # stage 3 searches only about stage 2's rotation and handedness
    "seed_window_deg": 18.0,    # half-width of that rotation window (compare's convention)
    "seed_min_inliers": 8,      # fewer stage-2 inliers: pose unreliable, full 360-degree compare
}

#: ``compare``'s coarse rotation step (degrees, its default): seeded windows are snapped
#: to this grid so that they search a subset of the full circle's coarse rotations.
COMPARE_COARSE_STEP = 6.0


@dataclass
class CascadeHit:
    """One candidate of a cascade search, with the scores of every stage it reached.

    Attributes
    ----------
    key : hashable
        The candidate's identifier (FAISS id or scan id, as the storage gives it).
    rank : int
        1-based final rank.
    stage : int
        Last stage the candidate went through (1, 2 or 3).
    stage1_score : float
        Cosine similarity of the signatures.
    stage1_rank : int
        1-based rank in the stage-1 short list.
    stage2_inliers : int or None
        Matched SIFT key points under the best rigid motion; None without a stage-2 blob.
    stage2 : dict or None
        :meth:`Verification.to_dict` (matches, rotation, translation, mirrored).
    cmc_count, compare_score : int, float or None
        From ``compare`` (stage 3).
    comparison : dict or None
        ``Comparison.to_dict()``, or ``{"error": ...}``.
    stage3 : dict or None
        How stage 3 was run (:func:`stage3_seed`): ``seeded``, ``window_deg``,
        ``rotation_range`` and ``handedness`` passed to ``compare``, stage 2's pose
        (``stage2_rotation_deg``, ``stage2_mirrored``, ``stage2_inliers``), ``reason``
        when not seeded and ``fallback`` when a seeded comparison was repeated in full.
    """

    key: Hashable
    rank: int = 0
    stage: int = 1
    stage1_score: float = float("nan")
    stage1_rank: int = 0
    stage2_inliers: int | None = None
    stage2: dict[str, Any] | None = None
    cmc_count: int | None = None
    compare_score: float | None = None
    comparison: dict[str, Any] | None = None
    stage3: dict[str, Any] | None = None

    def sort_key(self) -> tuple:
        """Final order: compared first (CMCs, score), then inliers, then signature."""
        compared = self.cmc_count is not None
        return (0 if compared else 1,
                -(self.cmc_count or 0), -(self.compare_score or 0.0),
                -(self.stage2_inliers if self.stage2_inliers is not None else -1),
                -self.stage1_score)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = str(self.key) if not isinstance(self.key, (int, str)) else self.key
        return d


@dataclass
class CascadeResult:
    """Hits and bookkeeping of one cascade search.

    Attributes
    ----------
    hits : list of CascadeHit
        Best first.
    timings : dict
        ``{stage: {"wall_s": .., "cpu_s": .., "n": ..}}`` for ``query`` (the query's
        signature and key points), ``stage1``, ``stage2``, ``stage3``.
    params : dict
        Cascade knobs and stage-2 parameters used.
    library_version : str
    query_sha256 : str or None
    """

    hits: list[CascadeHit]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    library_version: str = __version__
    query_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"hits": [h.to_dict() for h in self.hits], "timings": self.timings, "params": self.params,
                "library_version": self.library_version, "query_sha256": self.query_sha256}


class _Timer:
    def __init__(self, timings: dict[str, dict[str, float]], name: str, n: int = 0) -> None:
        self.t, self.name, self.n = timings, name, n

    def __enter__(self) -> _Timer:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        d = self.t.setdefault(self.name, {"wall_s": 0.0, "cpu_s": 0.0, "n": 0})
        d["wall_s"] += time.perf_counter() - self.w0
        d["cpu_s"] += time.process_time() - self.c0
        d["n"] += self.n


def format_timings(timings: dict[str, dict[str, float]]) -> str:
    """One line per stage (for ``ballistics db search --verbose``).

    Parameters
    ----------
    timings : dict
        :attr:`CascadeResult.timings`.

    Returns
    -------
    str
        e.g. ``"stage2  verify       212 candidates   1.07 s wall   1.05 s CPU"``.
    """
    names = {"query": "query features", "stage1": "FAISS retrieval", "stage2": "SIFT+RANSAC verify",
             "stage3": "compare"}
    lines = []
    for k in ("query", "stage1", "stage2", "stage3"):
        if k in timings:
            d = timings[k]
            lines.append(f"{k:<7}{names[k]:<20}{int(d.get('n', 0)):>7} items {d['wall_s']:8.3f} s wall "
                         f"{d['cpu_s']:8.3f} s CPU")
    return "\n".join(lines)


def _check(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(CASCADE_DEFAULTS)
    if unknown:
        raise BallisticsError(f"Unknown search parameter(s) {sorted(unknown)}; known: {sorted(CASCADE_DEFAULTS)}.")
    p = {**CASCADE_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    for k in ("shortlist", "rerank", "rerank_min_inliers", "seed_min_inliers"):
        try:
            p[k] = int(p[k])
        except (TypeError, ValueError) as exc:
            raise BallisticsError(f"{k} must be an integer, got {p[k]!r}") from exc
        if p[k] < 0:
            raise BallisticsError(f"{k} must be >= 0, got {p[k]}")
    if p["shortlist"] == 0:
        raise BallisticsError("shortlist must be at least 1")
    p["mirror"] = bool(p["mirror"])
    p["seed"] = bool(p["seed"])
    try:
        p["seed_window_deg"] = float(p["seed_window_deg"])
    except (TypeError, ValueError) as exc:
        raise BallisticsError(f"seed_window_deg must be a number of degrees, got {p['seed_window_deg']!r}") from exc
    if not 0.0 < p["seed_window_deg"] <= 180.0:
        raise BallisticsError(f"seed_window_deg must be in (0, 180] degrees, got {p['seed_window_deg']}")
    return p


def _wrap(deg: float) -> float:
    """Angle in [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


def stage3_seed(stage2: dict[str, Any] | None, window_deg: float = CASCADE_DEFAULTS["seed_window_deg"],
                min_inliers: int = CASCADE_DEFAULTS["seed_min_inliers"],
                coarse_step: float = COMPARE_COARSE_STEP) -> dict[str, Any]:
    """How to run stage 3 for one candidate from its stage-2 pose.

    Stage 2 (:func:`._verify_sift.verify`) fits ``c = R(phi) q + t`` to the key points
    (x right, y down, ``phi`` counter-clockwise in image coordinates), mirroring the
    *query*'s columns when ``mirrored``.  :func:`ballistics.comparison.compare` rotates
    the *candidate* ``b`` clockwise as displayed and mirrors ``b``'s rows.  Hence the
    rotation of ``b`` in compare's convention is ``-phi`` as given and ``phi - 180``
    mirrored (a column flip of the query followed by ``R(phi)`` equals ``R(180 - phi)``
    followed by a row flip; checked against compare's full-circle result on every
    Fadul and DFSC mate, ``benchmarks/results_index.md`` section 5.6).

    Parameters
    ----------
    stage2 : dict or None
        :meth:`Verification.to_dict` of the candidate (``inliers``, ``rotation_deg``,
        ``mirrored``); None when it was not verified.
    window_deg : float, default 18
        Half-width of the rotation window, degrees; rounded up to a multiple of
        ``coarse_step`` and centred on the multiple of ``coarse_step`` nearest the
        rotation, so the window holds a subset of the full circle's coarse rotations.
        ``>= 180`` searches the full circle.
    min_inliers : int, default 8
        Fewer stage-2 inliers: the pose is unreliable, the full circle in both
        handedness is searched.
    coarse_step : float, default 6
        ``compare``'s coarse rotation step, degrees.

    Returns
    -------
    dict
        ``seeded`` (bool), ``compare_kw`` (``{"rotation_range": (lo, hi),
        "handedness": "as_given" | "mirrored", "n_candidates": 1}`` or ``{}``: only the
        best coarse rotation of the window is refined -- with 2, the second candidate
        sits at the window's edge, 12 degrees off, and took the best correlation of a
        cell or two from the consensus; with 1 the counts equal the full
        comparison's on the pairs measured), ``window_deg``,
        ``rotation_range``, ``handedness``, ``centre_deg`` (compare's convention),
        ``stage2_rotation_deg``, ``stage2_mirrored``, ``stage2_inliers`` and ``reason``
        (why not seeded, else None).
    """
    s2 = stage2 or {}
    rot, mir, inl = s2.get("rotation_deg"), bool(s2.get("mirrored", False)), s2.get("inliers")
    out: dict[str, Any] = {"seeded": False, "compare_kw": {}, "window_deg": None, "rotation_range": None,
                           "handedness": None, "centre_deg": None, "stage2_rotation_deg": rot,
                           "stage2_mirrored": mir if stage2 else None, "stage2_inliers": inl, "reason": None}
    if not stage2 or rot is None or inl is None:
        out["reason"] = "no stage-2 pose"
        return out
    if int(inl) < int(min_inliers):
        out["reason"] = f"{int(inl)} stage-2 inliers < {int(min_inliers)}: pose unreliable"
        return out
    if window_deg >= 180.0:
        out["reason"] = "window covers the full circle"
        return out
    centre = _wrap((float(rot) - 180.0) if mir else -float(rot))
    centre = _wrap(coarse_step * round(centre / coarse_step))
    half = coarse_step * math.ceil(window_deg / coarse_step - 1e-9)
    lo, hi = centre - half, centre + half
    hand = "mirrored" if mir else "as_given"
    out.update(seeded=True, compare_kw={"rotation_range": (lo, hi), "handedness": hand, "n_candidates": 1},
               window_deg=half,
               rotation_range=[lo, hi], handedness=hand, centre_deg=centre)
    return out


def verify_candidates(qkp: Sequence[Keypoints], hits: list[CascadeHit],
                      get_blobs: Callable[[list[Hashable]], dict[Hashable, bytes | Keypoints | None]],
                      verify_params: dict[str, Any] | None = None) -> None:
    """Stage 2 in place: set ``stage2_inliers`` of every hit from its stored key points.

    Hits without a blob keep ``stage2_inliers = None`` (logged).  Blobs may be bytes
    (decoded here) or already decoded :class:`Keypoints` (a cache).
    """
    blobs = get_blobs([h.key for h in hits])
    missing = 0
    for h in hits:
        b = blobs.get(h.key)
        if b is None:
            missing += 1
            continue
        kp = b if isinstance(b, Keypoints) else Keypoints.from_bytes(b)
        v: Verification = verify(tuple(qkp), kp, verify_params)
        h.stage2_inliers = v.inliers
        h.stage2 = v.to_dict()
        h.stage = 2
    if missing:
        logger.warning("%d of %d candidates have no stage-2 key points (added before issue 10?); "
                       "they keep their retrieval order", missing, len(hits))


def compare_candidates(query: Any, hits: list[CascadeHit], load_scan: Callable[[Hashable], Scan],
                       compare: Callable[..., Any], *, seed: bool = False,
                       seed_window_deg: float = CASCADE_DEFAULTS["seed_window_deg"],
                       seed_min_inliers: int = CASCADE_DEFAULTS["seed_min_inliers"], **compare_kw: Any) -> None:
    """Stage 3 in place: ``compare(query, candidate)`` of each hit, seeded by stage 2's pose.

    Parameters
    ----------
    query : Scan or PreparedScan
        The query's breech face (``prepare``d to reuse its precomputation).
    hits : list of CascadeHit
        Candidates to compare; ``cmc_count``, ``compare_score``, ``comparison``,
        ``stage3`` and ``stage`` are set.
    load_scan : callable
        ``key -> Scan`` of the candidate's stored breech face.
    compare : callable
        :func:`ballistics.comparison.compare` or a function with its signature (it
        must accept ``rotation_range`` and ``handedness`` when ``seed``).
    seed : bool, default False
        Search only the rotation window and handedness of stage 2's pose
        (:func:`stage3_seed`) when the pose is reliable; a seeded comparison that
        finds no CMC is repeated over the full circle (``stage3["fallback"]``).
        Not applied when ``compare_kw`` sets ``rotation_range`` or ``handedness``.
        A seeded comparison's learned score and LR are not those of the full
        comparison: the learned score's rotation-peak sharpness sees the window only,
        and the LR system, fitted on full-circle comparisons, flags the differing
        parameters in the LR's warnings (``stage3["lr"]`` says so).  The CMC counts
        agreed within 3 on every Fadul mate measured (``benchmarks/results_index.md`` 5.6).
    seed_window_deg : float, default 18
        Half-width of the window, degrees.
    seed_min_inliers : int, default 8
        Fewer stage-2 inliers: full comparison.
    **compare_kw
        Passed to ``compare``.
    """
    user_pose = {"rotation_range", "handedness"} & set(compare_kw)
    for h in hits:
        plan = stage3_seed(h.stage2, seed_window_deg, seed_min_inliers)
        if not seed or user_pose:
            plan.update(seeded=False, compare_kw={}, window_deg=None, rotation_range=None, handedness=None,
                        centre_deg=None, reason="seeding off" if not seed else
                        f"{', '.join(sorted(user_pose))} given by the caller")
        plan["fallback"] = None
        kw = plan.pop("compare_kw")
        plan["lr"] = ("of a seeded comparison: the LR system's reference comparisons searched the full "
                      "circle and the learned score's rotation-peak sharpness sees only the window (see the "
                      "LR's warnings); compare the pair in full for the evidence" if kw else None)
        try:
            cand = load_scan(h.key)
            c = None
            if kw:
                try:
                    c = compare(query, cand, **{**kw, **compare_kw})
                except ParameterError as exc:   # e.g. a preset that cannot search one handedness
                    plan["fallback"] = f"seeded comparison refused ({exc}): compared over the full circle"
                if c is not None and int(c.cmc_count) == 0:
                    plan["fallback"] = "no CMC within the window: compared over the full circle"
                    c = None
            if c is None:
                c = compare(query, cand, **compare_kw)
            h.cmc_count, h.compare_score = int(c.cmc_count), float(c.score)
            h.comparison = c.to_dict()
            h.stage = 3
        except BallisticsError as exc:
            logger.warning("comparison with %s failed: %s", h.key, exc)
            h.comparison = {"error": str(exc)}
        h.stage3 = plan


def cascade(query: Scan, *, signature: np.ndarray,
            search_vectors: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
            get_blobs: Callable[[list[Hashable]], dict[Hashable, bytes | Keypoints | None]],
            load_scan: Callable[[Hashable], Scan] | None = None,
            k: int = 10, exclude: Iterable[Hashable] = (), query_kp: Sequence[Keypoints] | None = None,
            prepared: Any = None, compare: Callable[..., Any] | None = None,
            compare_kw: dict[str, Any] | None = None, verify_params: dict[str, Any] | None = None,
            **knobs: Any) -> CascadeResult:
    """Search with the three-stage cascade.

    Parameters
    ----------
    query : Scan
        The query's extracted breech face (heights in metres).
    signature : numpy.ndarray
        The query's stage-1 signature (:func:`ballistics.index.signature`).
    search_vectors : callable
        ``(vector (1, d) float32, depth) -> (scores (1, depth), keys (1, depth))``, e.g.
        a FAISS index's ``search``; keys < 0 are ignored.
    get_blobs : callable
        ``list of keys -> {key: stage-2 blob bytes (or Keypoints) or None}``.
    load_scan : callable, optional
        ``key -> Scan`` of the stored breech face; needed when ``rerank > 0``.
    k : int, default 10
        Hits returned.
    exclude : iterable
        Keys to leave out (e.g. the query itself).
    query_kp, prepared : optional
        Precomputed query key points (:func:`query_keypoints`) and ``prepare(query)``,
        to reuse work across searches.
    compare : callable, optional
        Stage-3 comparison (default :func:`ballistics.comparison.compare`).
    compare_kw, verify_params : dict, optional
        Passed to ``compare`` / :func:`verify`.
    **knobs
        ``shortlist`` (stage-1 depth, 1000), ``rerank`` (stage-3 depth, 10),
        ``rerank_min_inliers`` (6), ``mirror`` (True), ``seed`` (True: stage 3 seeded by
        stage 2's pose, :func:`stage3_seed`), ``seed_window_deg`` (18, degrees),
        ``seed_min_inliers`` (8); see :data:`CASCADE_DEFAULTS`.

    Returns
    -------
    CascadeResult
        Hits best first (at most ``k``), with per-stage scores and timings.

    Raises
    ------
    BallisticsError
        Unknown or invalid knobs, ``k`` < 1, or ``rerank > 0`` without ``load_scan``.

    References
    ----------
    Jegou et al. (2010) (stage 1); Lowe (2004), Fischler & Bolles (1981) (stage 2);
    Song (2013), Chen et al. (2017) (stage 3).
    """
    p = _check(knobs)
    k = int(k)
    if k < 1:
        raise BallisticsError(f"k must be a positive number of hits, got {k}")
    if p["rerank"] and load_scan is None:
        raise BallisticsError("rerank > 0 needs load_scan to read the candidates' surfaces")
    timings: dict[str, dict[str, float]] = {}
    excluded = set(exclude)
    with _Timer(timings, "query", 1):
        if query_kp is None:
            query_kp = query_keypoints(query, verify_params, mirror=p["mirror"])
    # stage 1
    with _Timer(timings, "stage1") as t1:
        depth = p["shortlist"] + len(excluded)
        D, I = search_vectors(np.asarray(signature, np.float32).reshape(1, -1), depth)
        hits: list[CascadeHit] = []
        for s, key in zip(np.asarray(D)[0].tolist(), np.asarray(I)[0].tolist()):
            if (isinstance(key, (int, np.integer)) and key < 0) or key in excluded:
                continue
            hits.append(CascadeHit(key=key, stage1_score=float(s), stage1_rank=len(hits) + 1))
            if len(hits) >= p["shortlist"]:
                break
        t1.n = len(hits)
    # stage 2
    with _Timer(timings, "stage2", len(hits)):
        verify_candidates(query_kp, hits, get_blobs, verify_params)
        hits.sort(key=lambda h: h.sort_key())
    # stage 3
    head = [h for h in hits[: p["rerank"]]
            if h.stage2_inliers is None or h.stage2_inliers >= p["rerank_min_inliers"]]
    with _Timer(timings, "stage3", len(head)):
        if head:
            if compare is None:
                from ..comparison import compare as default_compare
                compare = default_compare
            assert load_scan is not None  # rerank > 0 without load_scan was refused above
            if prepared is None:
                try:
                    from ..comparison import prepare
                    prepared = prepare(query)
                except ImportError:
                    prepared = query
            compare_candidates(prepared, head, load_scan, compare, seed=p["seed"],
                               seed_window_deg=p["seed_window_deg"], seed_min_inliers=p["seed_min_inliers"],
                               **(compare_kw or {}))
            hits.sort(key=lambda h: h.sort_key())
    hits = hits[:k]
    for r, h in enumerate(hits, 1):
        h.rank = r
    params = {**p, "k": k, "verify": {**VERIFY_PARAMS, **(verify_params or {})}, "compare": dict(compare_kw or {})}
    return CascadeResult(hits, timings, params, __version__, getattr(query, "checksum", None))


def cascade_many(queries: Sequence[Scan], signatures: np.ndarray,
                 search_vectors: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                 get_blobs: Callable[[list[Hashable]], dict[Hashable, bytes | Keypoints | None]],
                 load_scan: Callable[[Hashable], Scan] | None = None, k: int = 10,
                 exclude: Sequence[Iterable[Hashable]] | None = None, cache_size: int = 20000,
                 **kw: Any) -> list[CascadeResult]:
    """Batched cascade: one FAISS call for all queries, decoded key points shared.

    Stage 1 runs once for the whole batch (FAISS searches many vectors at once far
    faster than one by one); stage-2 blobs are decoded once and cached across queries
    (up to ``cache_size`` candidates).  Other arguments as :func:`cascade`.

    Returns
    -------
    list of CascadeResult
        One per query, in order.
    """
    sig = np.asarray(signatures, np.float32)
    if sig.ndim != 2 or len(sig) != len(queries):
        raise BallisticsError("signatures must be one row per query")
    p = _check({k_: v for k_, v in kw.items() if k_ in CASCADE_DEFAULTS})
    extra = max((len(set(e)) for e in exclude), default=0) if exclude else 0
    w0, c0 = time.perf_counter(), time.process_time()
    D, I = search_vectors(sig, p["shortlist"] + extra)
    batch_wall, batch_cpu = (time.perf_counter() - w0) / len(queries), (time.process_time() - c0) / len(queries)
    cache: dict[Hashable, Keypoints | None] = {}

    def cached_blobs(keys: list[Hashable]) -> dict[Hashable, bytes | Keypoints | None]:
        need = [x for x in keys if x not in cache]
        if need:
            got = get_blobs(need)
            if len(cache) + len(need) > cache_size:
                cache.clear()
            for x in need:
                b = got.get(x)
                cache[x] = None if b is None else (b if isinstance(b, Keypoints) else Keypoints.from_bytes(b))
        return {x: cache.get(x) for x in keys}

    out = []
    for i, q in enumerate(queries):
        row = (D[i:i + 1], I[i:i + 1])

        def search_row(v: np.ndarray, d: int, row: tuple[np.ndarray, np.ndarray] = row
                       ) -> tuple[np.ndarray, np.ndarray]:
            return row  # stage 1 already ran for the whole batch

        res = cascade(q, signature=sig[i], search_vectors=search_row, get_blobs=cached_blobs,
                      load_scan=load_scan, k=k, exclude=(exclude[i] if exclude else ()), **kw)
        res.timings["stage1"]["wall_s"] += batch_wall
        res.timings["stage1"]["cpu_s"] += batch_cpu
        out.append(res)
    return out
