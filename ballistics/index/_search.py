"""Searching a case database: the three-stage cascade of issue 10.

1. FAISS retrieval of a deep short list, fused over parts (breech face, firing pin);
2. SIFT + rigid-RANSAC verification of every short-listed candidate from the key points
   stored at ingest (:mod:`._stage2`, :mod:`._verify_sift`);
3. full :func:`ballistics.comparison.compare` of the best verified candidates.

The stages themselves are in :mod:`._cascade`; this module binds them to the catalogue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from ..errors import BallisticsError
from ..scan import Scan, _jsonable
from ._cascade import CascadeHit, _check, _Timer, compare_candidates, format_timings, verify_candidates
from ._entry import PreparedEntry, prepare_entry
from ._stage2 import SIFT_BLOB
from ._verify_sift import Keypoints, query_keypoints

logger = logging.getLogger("ballistics.index._database")

#: Weights of the parts when their retrieval scores are fused.
PART_WEIGHTS = {"breech_face": 0.7, "firing_pin": 0.3}


@dataclass
class SearchHit:
    """One candidate of a database search, with the score of every stage it reached.

    Attributes
    ----------
    scan_id, case_id, exhibit_id, firearm_id : str or None
        Identifiers of the stored scan.
    rank : int
        1-based position in the returned list.
    retrieval_score : float
        Stage 1: fused cosine similarity of the signatures (-1..1, higher = more alike).
    score : float or None
        Stage 3: ``Comparison.score`` (higher = more similar); None when not compared.
    cmc_count : int or None
        Stage 3: congruent matching cells; None when not compared.
    comparison : dict or None
        Stage 3: ``Comparison.to_dict()``, or ``{"error": ...}``; None when not compared.
    stage : int
        Last stage the candidate went through (1, 2 or 3).
    retrieval_rank : int
        Stage 1: 1-based rank in the short list.
    inliers : int or None
        Stage 2: SIFT key points matched under one rigid motion; None when the stored
        scan has no stage-2 key points (added before they existed: ``rebuild_blobs()``).
    verification : dict or None
        Stage 2: matches, rotation (degrees), translation (pixels of 6.25 um), mirrored.
    lab : str or None
        The lab that holds the scan, for entries imported from an exchange bundle; None
        for this database's own scans.
    stage3 : dict or None
        Stage 3: how ``compare`` was run (:func:`ballistics.index._cascade.stage3_seed`):
        ``seeded`` (searched only ``rotation_range``, degrees in compare's convention,
        and ``handedness`` about stage 2's pose), ``window_deg``, ``centre_deg``, stage
        2's pose (``stage2_rotation_deg``, ``stage2_mirrored``, ``stage2_inliers``),
        ``reason`` when not seeded, ``fallback`` when a seeded comparison found no CMC
        and was repeated over the full circle; None when not compared.
    """

    scan_id: str
    case_id: str | None
    exhibit_id: str | None
    firearm_id: str | None
    rank: int
    retrieval_score: float
    score: float | None = None
    cmc_count: int | None = None
    comparison: dict[str, Any] | None = None
    stage: int = 1
    retrieval_rank: int = 0
    inliers: int | None = None
    verification: dict[str, Any] | None = None
    lab: str | None = None
    stage3: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary."""
        return _jsonable(asdict(self))


def _lab(row: Any) -> str | None:
    """The origin lab of a catalogue row (None for own scans or older catalogues)."""
    try:
        return row["origin_lab"] or None
    except (KeyError, IndexError):
        return None


class SearchMixin:
    """:meth:`search` of :class:`~ballistics.index.CaseDatabase`."""

    path: Path
    catalogue: Any
    _indices: dict[str, Any]
    _extractors: dict[str, Callable[[Scan], Scan]] | None
    _compare: Callable[..., Any] | None
    _prepare: Callable[[Scan], Any] | None

    def _sync(self, persist: bool) -> None:  # provided by SyncMixin
        raise NotImplementedError

    def load_scan(self, scan_id: str, role: str = "breech_face") -> Scan:  # provided by StoreMixin
        raise NotImplementedError

    def search(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, k: int = 10, *,
               preprocess: bool = True, candidates: int | None = None, rerank: int | None = None,
               method: str | None = None, exclude_self: bool = True, exclude: Sequence[str] = (),
               shortlist: int | None = None, rerank_min_inliers: int | None = None,
               mirror: bool | None = None, verify: bool = True, seed: bool | None = None,
               seed_window_deg: float | None = None, seed_min_inliers: int | None = None,
               _cache: dict[int, Keypoints | None] | None = None) -> list[SearchHit]:
        """Ranked list of stored scans most likely fired by the same firearm (3-stage cascade).

        Stage 1 (retrieval) searches the FAISS index of each part with the query's
        signatures and fuses the cosine similarities (breech face 0.7, firing pin 0.3,
        re-weighted over the parts both sides have) into a short list of ``shortlist``
        candidates.  Stage 2 (verification) matches the query's SIFT key points with
        each candidate's, stored at ingest, under one rigid motion (RANSAC; the
        query's mirror image too) and orders the list by inlier count (about 1.5 ms CPU
        per candidate).  Stage 3 compares the query's breech face with the best
        ``rerank`` verified candidates that have at least ``rerank_min_inliers``
        inliers (:func:`ballistics.comparison.compare`); they come first, by CMC count
        then comparison score; the others follow by inliers, then retrieval score.
        Stage 3 is seeded by stage 2's pose: a candidate with at least
        ``seed_min_inliers`` inliers is compared only within ``+-seed_window_deg`` of
        the rotation stage 2 found and in the handedness it found (about 0.4 s CPU per
        pair instead of about 1.2 s for the full circle in both handedness; CMC counts
        within 3 of the full comparison on every Fadul mate measured, while DFSC mates
        with poor poses differed widely, hence ``seed_min_inliers``); a seeded
        comparison with no CMC is repeated over the full circle.
        Per-stage timings of the last search are in ``self.last_search["timings"]``
        (:func:`ballistics.index._cascade.format_timings` prints them).

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            The query (whole primer if ``preprocess``, else an extracted breech face).
        k : int, default 10
            Length of the returned list.
        preprocess : bool, default True
            Extract surfaces first.
        shortlist : int, optional
            Stage-1 depth: candidates verified by stage 2 (default 1000).
        candidates : int, optional
            Former name of ``shortlist`` (used when ``shortlist`` is not given).
        rerank : int, optional
            Stage-3 depth: best verified candidates compared with ``compare`` (default
            10; 0 turns stage 3 off).
        rerank_min_inliers : int, optional
            Stage 3 skips candidates with fewer stage-2 inliers (default 6: on the 40
            Fadul scans mates had 12 or more, different firearms 4 or fewer; see
            ``benchmarks/results_index.md``).  0 compares the whole head.
        mirror : bool, optional
            Stage 2 also tries the query's mirror image (default True).
        verify : bool, default True
            Run stage 2 (False: the list stays in retrieval order before stage 3).
        seed : bool, optional
            Seed stage 3 with stage 2's rotation and handedness (default True).
        seed_window_deg : float, optional
            Half-width of the seeded rotation window, degrees (default 18, rounded up
            to compare's 6-degree coarse step).
        seed_min_inliers : int, optional
            Candidates with fewer stage-2 inliers get the full 360-degree comparison
            (default 8).
        method : str, optional
            Comparison method passed to ``compare`` (default: its default).
        exclude_self : bool, default True
            Leave out stored scans identical to the query (same height-array hash).
        exclude : sequence of str
            Scan ids to leave out.

        Returns
        -------
        list of SearchHit
            Best first, at most ``k``; each with the scores of the stages it reached.

        Raises
        ------
        BallisticsError
            ``k`` < 1 or invalid knobs.

        References
        ----------
        Jegou et al. (2010) (VLAD); Lowe (2004) (SIFT); Fischler & Bolles (1981)
        (RANSAC); Song (2013), Chen et al. (2017) (CMC).
        """
        k = int(k)
        if k <= 0:
            raise BallisticsError(f"k must be a positive number of hits, got {k}")
        depth = shortlist if shortlist is not None else candidates
        p = _check({"shortlist": depth, "rerank": rerank, "rerank_min_inliers": rerank_min_inliers,
                    "mirror": mirror, "seed": seed, "seed_window_deg": seed_window_deg,
                    "seed_min_inliers": seed_min_inliers})
        timings: dict[str, dict[str, float]] = {}
        with _Timer(timings, "query", 1):
            entry = scan if isinstance(scan, PreparedEntry) else prepare_entry(scan, preprocess, self._extractors)
            qkp = query_keypoints(entry.surfaces["breech_face"], mirror=p["mirror"]) if verify else None
        self._sync(persist=False)
        ncand = max(p["shortlist"], k)
        excluded = set(exclude)
        self_sha = entry.scan.checksum if exclude_self else None
        with _Timer(timings, "stage1") as t1:
            fused: dict[int, float] = {}
            wsum: dict[int, float] = {}
            per_part: dict[str, tuple[dict[int, float], float]] = {}
            for part, vec in entry.signatures.items():
                idx = self._indices.get(part)
                if idx is None or idx.ntotal == 0:
                    continue
                D, I = idx.search(vec[None, :], ncand + len(excluded) + 1)
                ok = I[0] >= 0
                scores = dict(zip(I[0][ok].tolist(), D[0][ok].tolist()))
                floor = float(D[0][ok].min()) if ok.any() else 0.0
                per_part[part] = (scores, floor)
            all_ids = set().union(*[set(s) for s, _ in per_part.values()]) if per_part else set()
            rows = self.catalogue.scans_by_nums(all_ids)
            for i in all_ids:
                row = rows.get(i)
                if row is None or row["removed_at"] is not None:
                    continue
                if row["scan_id"] in excluded or (self_sha is not None and row["sha256"] == self_sha):
                    continue
                for part, (scores, floor) in per_part.items():
                    w = PART_WEIGHTS[part]
                    if part != "breech_face" and i not in scores:
                        # the stored scan may have no signature of this part: skip the part for it
                        continue
                    fused[i] = fused.get(i, 0.0) + w * scores.get(i, floor)
                    wsum[i] = wsum.get(i, 0.0) + w
            order = sorted(fused, key=lambda i: -fused[i] / wsum[i])[:ncand]
            chits = [CascadeHit(key=i, stage1_score=float(fused[i] / wsum[i]), stage1_rank=r)
                     for r, i in enumerate(order, 1)]
            t1.n = len(chits)
        with _Timer(timings, "stage2", len(chits) if verify else 0):
            if qkp is not None and chits:  # qkp is None when verify is off
                verify_candidates(qkp, chits, lambda keys: self._stage2_blobs(keys, _cache))
                chits.sort(key=lambda h: h.sort_key())
        head = [h for h in chits[: p["rerank"]]
                if h.stage2_inliers is None or h.stage2_inliers >= p["rerank_min_inliers"]]
        with _Timer(timings, "stage3", len(head)):
            if head:
                compare, prepare = self._stage3_functions()
                q = entry.surfaces["breech_face"]
                qp = prepare(q) if prepare is not None else q
                compare_candidates(qp, head, lambda num: self.load_scan(rows[num]["scan_id"], "breech_face"),
                                   compare, seed=p["seed"], seed_window_deg=p["seed_window_deg"],
                                   seed_min_inliers=p["seed_min_inliers"], **({"method": method} if method else {}))
                chits.sort(key=lambda h: h.sort_key())
        hits = []
        for r, h in enumerate(chits[:k], 1):
            row = rows[h.key]
            hits.append(SearchHit(scan_id=row["scan_id"], case_id=row["case_id"], exhibit_id=row["exhibit_id"],
                                  firearm_id=row["firearm_id"], rank=r, retrieval_score=h.stage1_score,
                                  score=h.compare_score, cmc_count=h.cmc_count, comparison=h.comparison,
                                  stage=h.stage, retrieval_rank=h.stage1_rank, inliers=h.stage2_inliers,
                                  verification=h.stage2, lab=_lab(row), stage3=h.stage3))
        self.last_search = {"timings": timings, "params": {**p, "k": k, "verify": verify, "method": method},
                            "query_sha256": entry.scan.checksum}
        logger.info("search %s:\n%s", entry.scan.name, format_timings(timings))
        return hits

    def search_many(self, scans: Sequence[Scan | str | os.PathLike[str] | PreparedEntry], k: int = 10,
                    **kw: Any) -> list[list[SearchHit]]:
        """Search several queries, reusing work: decoded stage-2 key points are cached.

        Parameters
        ----------
        scans : sequence of Scan, path or PreparedEntry
            The queries.
        k : int, default 10
        **kw
            As :meth:`search`.

        Returns
        -------
        list of list of SearchHit
            One ranked list per query, in order.  ``self.last_search_many`` holds each
            query's timings.
        """
        cache: dict[int, Keypoints | None] = {}
        out, timings = [], []
        for s in scans:
            out.append(self.search(s, k, _cache=cache, **kw))
            timings.append(self.last_search["timings"])
        self.last_search_many = timings
        return out

    def search_timings(self) -> str:
        """Per-stage timings of the last :meth:`search`, one line per stage ('' before any)."""
        last = getattr(self, "last_search", None)
        return format_timings(last["timings"]) if last else ""

    def _stage2_blobs(self, keys: list[Hashable], cache: dict[int, Keypoints | None] | None
                      ) -> dict[Hashable, Keypoints | bytes | None]:
        """Stage-2 key points of the hits of :meth:`search` (keyed by catalogue scan number)."""
        out: dict[Hashable, Keypoints | bytes | None] = {}
        for key in keys:
            n = cast(int, key)
            if cache is not None and n in cache:
                out[n] = cache[n]
                continue
            b = self.catalogue.get_blob(n, SIFT_BLOB)
            kp = None if b is None else Keypoints.from_bytes(b)
            if cache is not None:
                if len(cache) > 50_000:
                    cache.clear()
                cache[n] = kp
            out[n] = kp
        return out

    def _stage3_functions(self) -> tuple[Callable[..., Any], Callable[[Scan], Any] | None]:
        compare, prepare = self._compare, self._prepare
        if compare is None:
            try:
                from ..comparison import compare as default_compare
            except ImportError as exc:
                raise BallisticsError("stage 3 needs ballistics.comparison.compare, which this installation "
                                      "lacks; search with rerank=0.") from exc
            compare = default_compare
        if prepare is None:
            try:
                from ..comparison import prepare as default_prepare
            except ImportError:
                pass
            else:
                prepare = default_prepare
        return compare, prepare
