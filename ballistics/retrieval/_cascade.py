"""The three-stage retrieval cascade of search, as standalone functions.

1. **Retrieval**: FAISS nearest neighbours of the query's signature, a deep short list
   (``shortlist``, default 1000) -- cheap per entry, keeps mates in the list.
2. **Verification**: every short-listed candidate's stored SIFT key points
   (:mod:`._stage2` blobs, made at ingest) are matched with the query's and a rigid
   motion is fitted by RANSAC (:func:`._verify_sift.verify`, about 1.1 ms CPU per pair; on
   the engine's threads, :func:`._verify_many.verify_many`);
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
``load_scan``) so they run on a :class:`~ballistics.database.CaseDatabase` as well as on
in-memory collections (benchmarks, tests).  Every hit records the scores of every stage
it went through; :class:`CascadeResult` records the parameters (:class:`SearchParams`),
version, query checksum, per-stage timings (wall and CPU seconds) and warnings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._threads import threads
from .._version import __version__
from ..errors import BallisticsError, ParameterError
from ..scan import Scan
from ._params import SearchParams
from ._verify_many import verify_many
from ._verify_sift import Keypoints, VerificationError

logger = logging.getLogger(__name__)

#: Defaults of the cascade's knobs, as a plain dict (see :class:`SearchParams`).
CASCADE_DEFAULTS: dict[str, Any] = {n: getattr(SearchParams(), n) for n in
                                    ("shortlist", "rerank", "rerank_min_inliers", "mirror", "seed",
                                     "seed_window_deg", "seed_min_inliers")}

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
        Cosine similarity of the signatures (fused over the parts), whichever stage-1
        ranking brought the candidate.
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
    warnings : list of str
        Candidates skipped (damaged stored data) or left unverified.
    """

    hits: list[CascadeHit]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    library_version: str = __version__
    query_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of hits, timings, parameters and warnings."""
        return {"hits": [h.to_dict() for h in self.hits], "timings": self.timings, "params": self.params,
                "library_version": self.library_version, "query_sha256": self.query_sha256,
                "warnings": list(self.warnings)}


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
                      verify_params: dict[str, Any] | None = None, threads: int | None = None
                      ) -> tuple[list[CascadeHit], list[str]]:
    """Stage 2: set ``stage2_inliers`` of every hit from its stored key points.

    Parameters
    ----------
    qkp : sequence of Keypoints
        The query's key points (and its mirror image's).
    hits : list of CascadeHit
        Candidates, updated in place.
    get_blobs : callable
        ``keys -> {key: blob bytes, decoded Keypoints, or None}``.
    verify_params : dict, optional
        Passed to :func:`verify`.
    threads : int, optional
        Threads verifying the candidates (:func:`._verify_many.verify_many`; default the
        engine's compute threads, one unless :func:`ballistics.threads` says otherwise).
        The answers do not depend on it.

    Returns
    -------
    kept : list of CascadeHit
        The hits, without those whose stored key points are damaged.
    warnings : list of str
        One per damaged candidate (named), and one for candidates without key points
        (they keep their retrieval order).
    """
    blobs = get_blobs([h.key for h in hits])
    missing = 0
    kept: list[CascadeHit] = []
    warnings: list[str] = []
    todo: list[tuple[CascadeHit, Keypoints]] = []
    for h in hits:
        b = blobs.get(h.key)
        if b is None:
            missing += 1
            kept.append(h)
            continue
        try:
            kp = b if isinstance(b, Keypoints) else Keypoints.from_bytes(b)
        except VerificationError as exc:
            warnings.append(f"candidate {h.key}: stored stage-2 key points are damaged ({exc}); skipped "
                            "(run `ballistics db verify --deep`)")
            continue
        todo.append((h, kp))
        kept.append(h)
    found = verify_many(tuple(qkp), [kp for _, kp in todo], verify_params, threads)
    for (h, _), v in zip(todo, found):
        h.stage2_inliers = v.inliers
        h.stage2 = v.to_dict()
        h.stage = 2
    if missing:
        warnings.append(f"{missing} of {len(hits)} candidates have no stage-2 key points (stored before they "
                        "were computed at ingest; `ballistics db rebuild --blobs`); they keep their retrieval order")
        logger.warning(warnings[-1])
    for w in warnings[:-1] if missing else warnings:
        logger.warning(w)
    return kept, warnings


#: How the warning of :func:`unverified_warning` begins (a merged search replaces its sources' ones).
UNVERIFIED_PREFIX = "no candidate reached"


def unverified_warning(hits: Sequence[CascadeHit], gate: int) -> str | None:
    """A warning when stage 2 verified nothing: no candidate reached ``gate`` inliers.

    Non-mates rarely reach more than 4 inliers; mates of well-marked scans reach tens.
    When the best candidate is below the gate, the list's order is signature similarity
    and chance-level inliers: a mate may rank low or lie beyond the short list, and the
    examiner should not read the first candidates as likely sources.

    Parameters
    ----------
    hits : sequence of CascadeHit
        The short list after stage 2.
    gate : int
        Inliers a candidate needs to be verified (``rerank_min_inliers``).

    Returns
    -------
    str or None
        The warning, or None when a candidate is verified or none went through stage 2.
    """
    inl = [h.stage2_inliers for h in hits if h.stage2_inliers is not None]
    if not inl or max(inl) >= int(gate):
        return None
    return (f"{UNVERIFIED_PREFIX} {int(gate)} stage-2 inliers (best {max(inl)} of {len(inl)} verified): "
            "nothing in this list is verified, its order is signature similarity; a mate may rank low or "
            "lie beyond the short list (a deeper shortlist searches further, about 1.1 ms per candidate)")


def _user_pose(compare_params: Any) -> list[str]:
    """Which of rotation_range / handedness the caller's CompareParams fixed."""
    if compare_params is None:
        return []
    out = []
    if tuple(compare_params.rotation_range) != (-180.0, 180.0):
        out.append("rotation_range")
    if compare_params.handedness != "both":
        out.append("handedness")
    return out


def compare_candidates(query: Any, hits: list[CascadeHit], load_scan: Callable[[Hashable], Scan],
                       compare: Callable[..., Any], *, seed: bool = False,
                       seed_window_deg: float = CASCADE_DEFAULTS["seed_window_deg"],
                       seed_min_inliers: int = CASCADE_DEFAULTS["seed_min_inliers"],
                       compare_params: Any = None, method: str | None = None) -> list[Hashable]:
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
        must accept ``rotation_range``, ``handedness`` and ``n_candidates`` when
        ``seed``, and ``preset`` when ``compare_params`` is given).
    seed : bool, default False
        Search only the rotation window and handedness of stage 2's pose
        (:func:`stage3_seed`) when the pose is reliable; a seeded comparison that
        finds no CMC is repeated over the full circle (``stage3["fallback"]``).
        Not applied when ``compare_params`` fixes ``rotation_range`` or ``handedness``.
        A seeded comparison's learned score and LR are not those of the full
        comparison (``stage3["lr"]`` says so); the CMC counts agreed within 3 on every
        Fadul mate measured (``benchmarks/results_index.md`` 5.6).
    seed_window_deg : float, default 18
        Half-width of the window, degrees.
    seed_min_inliers : int, default 8
        Fewer stage-2 inliers: full comparison.
    compare_params : CompareParams, optional
        Parameters of every comparison (passed as ``preset``; default: compare's).
    method : str, optional
        Comparison method (default: compare's).

    Returns
    -------
    list
        Keys of candidates whose stored surface could not be read (damaged); their
        ``comparison`` holds the error.

    Notes
    -----
    Each comparison runs on one thread, whatever :func:`ballistics.threads` says for
    the search: a comparison of two breech faces took longer on two threads than on one
    (its FFTs are small and many), so the threads go to stages 1 and 2.
    """
    user_pose = _user_pose(compare_params)
    base: dict[str, Any] = {}
    if compare_params is not None:
        base["preset"] = compare_params
    if method:
        base["method"] = method
    damaged: list[Hashable] = []
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
        except BallisticsError as exc:
            logger.warning("candidate %s: stored surface unreadable: %s", h.key, exc)
            h.comparison = {"error": str(exc)}
            h.stage3 = plan
            damaged.append(h.key)
            continue
        try:
            c = None
            if kw:
                try:
                    with threads(1):
                        c = compare(query, cand, **{**base, **kw})
                except ParameterError as exc:   # e.g. a preset that cannot search one handedness
                    plan["fallback"] = f"seeded comparison refused ({exc}): compared over the full circle"
                if c is not None and int(c.cmc_count) == 0:
                    plan["fallback"] = "no CMC within the window: compared over the full circle"
                    c = None
            if c is None:
                with threads(1):
                    c = compare(query, cand, **base)
            h.cmc_count, h.compare_score = int(c.cmc_count), float(c.score)
            h.comparison = c.to_dict()
            h.stage = 3
        except BallisticsError as exc:
            logger.warning("comparison with %s failed: %s", h.key, exc)
            h.comparison = {"error": str(exc)}
        h.stage3 = plan
    return damaged


def stage1_hits(D: np.ndarray, I: np.ndarray, excluded: set[Hashable], shortlist: int) -> list[CascadeHit]:
    """Stage-1 short list from one query's FAISS row (keys < 0 and ``excluded`` dropped)."""
    hits: list[CascadeHit] = []
    for s, key in zip(np.asarray(D)[0].tolist(), np.asarray(I)[0].tolist()):
        if (isinstance(key, (int, np.integer)) and key < 0) or key in excluded:
            continue
        hits.append(CascadeHit(key=key, stage1_score=float(s), stage1_rank=len(hits) + 1))
        if len(hits) >= shortlist:
            break
    return hits
