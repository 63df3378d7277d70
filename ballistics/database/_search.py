"""Searching a case database: the three-stage cascade bound to the catalogue.

1. a deep short list: FAISS retrieval fused over parts (breech face, firing pin), with
   the key points' best votes added in a ``local-sift`` database;
2. SIFT + rigid-RANSAC verification of every short-listed candidate from the key points
   stored at ingest (:mod:`ballistics.retrieval`);
3. full :func:`ballistics.comparison.compare` of the best verified candidates.

The stages are in :mod:`ballistics.retrieval`; :func:`run_search` reads the candidates
from a :class:`~._catalogue.Catalogue`, a :class:`~._search_index.SearchIndex` and an
:class:`~._store.EvidenceStore`, and returns a :class:`~ballistics.retrieval.SearchResult`.
Every size is clamped to the number of stored entries before anything is allocated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from .._threads import resolve_threads, threads
from ..errors import DatabaseError
from ..retrieval import SIFT_BLOB, Keypoints, SearchHit, SearchParams, SearchResult, VerificationError, query_keypoints
from ..retrieval._cascade import CascadeHit, compare_candidates, unverified_warning, verify_candidates
from ..retrieval._fuse import merge_ranked
from ..retrieval._timing import Timer, format_timings
from ..scan import Scan
from ._entry import PreparedEntry

__all__ = ["PART_WEIGHTS", "run_search", "stage3_functions"]

logger = logging.getLogger(__name__)

#: Weights of the parts when their retrieval scores are fused.
PART_WEIGHTS = {"breech_face": 0.7, "firing_pin": 0.3}
#: Decoded key points kept by :meth:`CaseDatabase.search_many` across queries.
CACHE_LIMIT = 50_000


def _lab(row: Any) -> str | None:
    try:
        return row["origin_lab"] or None
    except (KeyError, IndexError):
        return None


def stage3_functions(compare: Callable[..., Any] | None, prepare: Callable[[Scan], Any] | None
                     ) -> tuple[Callable[..., Any], Callable[[Scan], Any] | None]:
    """The comparison and preparation functions of stage 3 (defaults from :mod:`ballistics.comparison`)."""
    if compare is None or prepare is None:
        from ..comparison import compare as default_compare
        from ..comparison import prepare as default_prepare

        compare = compare or default_compare
        prepare = prepare or default_prepare
    return compare, prepare


def _keep(row: Any, excluded: set[str], self_sha: str | None) -> bool:
    """Whether a stored scan may be a candidate (live, not excluded, not the query itself)."""
    if row is None or row["removed_at"] is not None or row["scan_id"] in excluded:
        return False
    return self_sha is None or row["sha256"] != self_sha


def _global_ranking(entry: PreparedEntry, index: Any, depth: int, extra: int
                    ) -> tuple[dict[str, tuple[dict[int, float], float]], set[int]]:
    """Per-part FAISS scores of the best ``depth + extra`` entries, and every id seen."""
    per_part: dict[str, tuple[dict[int, float], float]] = {}
    for part, vec in entry.signatures.items():
        D, I = index.search(part, vec, depth + extra)
        ok = I[0] >= 0
        if ok.any():
            per_part[part] = (dict(zip(I[0][ok].tolist(), D[0][ok].tolist())), float(D[0][ok].min()))
    return per_part, set().union(*[set(s) for s, _ in per_part.values()]) if per_part else set()


def _fuse_parts(per_part: dict[str, tuple[dict[int, float], float]], ids: set[int], rows: dict[int, Any],
                excluded: set[str], self_sha: str | None) -> list[tuple[int, float]]:
    """Candidates by the parts' weighted scores (a part missing for a scan is left out for it)."""
    fused: dict[int, float] = {}
    wsum: dict[int, float] = {}
    for i in ids:
        if not _keep(rows.get(i), excluded, self_sha):
            continue
        for part, (scores, floor) in per_part.items():
            if part != "breech_face" and i not in scores:
                continue  # the stored scan may have no signature of this part: skip the part for it
            w = PART_WEIGHTS[part]
            fused[i] = fused.get(i, 0.0) + w * scores.get(i, floor)
            wsum[i] = wsum.get(i, 0.0) + w
    return sorted(((i, fused[i] / wsum[i]) for i in fused), key=lambda t: -t[1])


def _stage1(entry: PreparedEntry, index: Any, catalogue: Any, ncand: int, excluded: set[str],
            self_sha: str | None, local: Callable[[int], tuple[Any, Any]] | None = None,
            n_votes: int = 0) -> tuple[list[CascadeHit], dict[int, dict[str, Any]]]:
    """The short list and its catalogue rows.

    The global signatures' ranking (``ncand`` deep), fused over the parts; with ``local``
    (a ``local-sift`` database) the votes' best ``n_votes`` are added to it
    (:func:`ballistics.retrieval.merge_ranked`).
    """
    extra = len(excluded) + 1
    per_part, ids = _global_ranking(entry, index, ncand, extra) if ncand else ({}, set())
    votes: list[tuple[int, float]] = []
    if local is not None and n_votes:
        D, I = local(n_votes + extra)
        votes = [(int(i), float(d)) for d, i in zip(D[0], I[0]) if i >= 0]
    rows = catalogue.scans_by_nums(ids | {i for i, _ in votes})
    ranked = _fuse_parts(per_part, ids, rows, excluded, self_sha)[:ncand]
    if local is None or not n_votes:
        return [CascadeHit(key=i, stage1_score=float(s), stage1_rank=r)
                for r, (i, s) in enumerate(ranked, 1)], rows
    voted = [i for i, _ in votes if _keep(rows.get(i), excluded, self_sha)][:n_votes]
    merged = [int(i) for i, _ in merge_ranked([i for i, _ in ranked], voted)]  # type: ignore[call-overload]
    # every candidate's score is its cosine similarity, whichever ranking brought it
    cos = dict(ranked)
    missing = [i for i in merged if i not in cos]
    if missing:
        for part, vec in entry.signatures.items():
            scores = per_part.setdefault(part, ({}, 0.0))[0]
            q = np.asarray(vec, np.float32).ravel()
            try:
                for nums, V in catalogue.iter_signatures(part, missing):
                    if V.shape[1] == q.size:
                        scores.update(zip(nums.tolist(), np.nan_to_num(V @ q, nan=-1.0).tolist()))
            except ValueError:  # a damaged stored vector: the candidate keeps the floor score
                logger.warning("stage 1: a stored %s signature could not be read", part)
        cos.update(_fuse_parts(per_part, set(missing), rows, excluded, self_sha))
    return [CascadeHit(key=i, stage1_score=float(cos[i]), stage1_rank=r)
            for r, i in enumerate(merged, 1)], rows


def _blobs(catalogue: Any, cache: dict[int, Keypoints | bytes | None] | None
           ) -> Callable[[list[Hashable]], dict[Hashable, Keypoints | bytes | None]]:
    def get(keys: list[Hashable]) -> dict[Hashable, Keypoints | bytes | None]:
        out: dict[Hashable, Keypoints | bytes | None] = {}
        for key in keys:
            n = int(key)  # type: ignore[call-overload]
            if cache is not None and n in cache:
                out[n] = cache[n]
                continue
            b = catalogue.get_blob(n, SIFT_BLOB)
            kp: Keypoints | bytes | None = b
            if b is not None:
                try:
                    kp = Keypoints.from_bytes(b)
                except VerificationError:
                    kp = b  # verify_candidates names and skips it
            if cache is not None:
                if len(cache) > CACHE_LIMIT:
                    cache.clear()
                cache[n] = kp
            out[n] = kp
        return out
    return get


def run_search(entry: PreparedEntry, p: SearchParams, *, catalogue: Any, index: Any, store: Any,
               compare: Callable[..., Any] | None = None, prepare: Callable[[Scan], Any] | None = None,
               exclude_self: bool = True, exclude: Sequence[str] = (),
               cache: dict[int, Keypoints | bytes | None] | None = None,
               timings: dict[str, dict[str, float]] | None = None,
               stage1: Callable[[Any, int], tuple[Any, Any]] | None = None) -> SearchResult:
    """One search of a prepared query (see :meth:`CaseDatabase.search`); ``stage1``: the local model's."""
    timings = timings if timings is not None else {}
    warnings: list[str] = []
    with Timer(timings, "query", 0):
        qkp = query_keypoints(entry.surfaces["breech_face"], mirror=p.mirror or stage1 is not None) \
            if p.verify or stage1 is not None else None
    local = None if stage1 is None else (lambda depth: stage1(qkp, depth))
    index.sync(persist=False)
    n_live = int(catalogue.counts()["scans"])
    k = min(p.k, max(n_live, 1))
    ncand = min(max(p.shortlist, k), max(n_live, 1))
    n_votes = min(p.votes, max(n_live, 1)) if stage1 is not None else 0
    with Timer(timings, "stage1") as t1:
        chits, rows = _stage1(entry, index, catalogue, ncand, set(exclude),
                              entry.scan.checksum if exclude_self else None, local, n_votes)
        t1.n = len(chits)
    damaged_sigs = {n for _, n in index.damaged}
    for num in sorted(damaged_sigs & set(rows)):
        warnings.append(f"{rows[num]['scan_id']}: stored signature is damaged; left out of the search "
                        "(run `ballistics db verify`)")
    with Timer(timings, "stage2", len(chits) if p.verify else 0, threads=resolve_threads()):
        if p.verify and qkp is not None and chits:
            chits, w = verify_candidates(qkp if p.mirror else qkp[:1], chits, _blobs(catalogue, cache))
            warnings += [_name(x, rows) for x in w]
            chits.sort(key=lambda h: h.sort_key())
            weak = unverified_warning(chits, p.rerank_min_inliers)
            if weak:
                warnings.append(weak)
                logger.warning(weak)
    head = [h for h in chits[: p.rerank] if h.stage2_inliers is None or h.stage2_inliers >= p.rerank_min_inliers]
    if head:  # entries imported without their surfaces cannot be compared: said, and ranked by stage 2
        bare = [h for h in head if catalogue.files_of(rows[int(h.key)]["num"]).get("breech_face") is None]  # type: ignore[call-overload]
        for h in bare:
            warnings.append(f"{rows[int(h.key)]['scan_id']}: not compared in stage 3: imported without its "  # type: ignore[call-overload]
                            "surface (a bundle exported with surfaces allows it); ranked after the compared "
                            "candidates by its stage-2 inliers")
        head = [h for h in head if h not in bare]
    with Timer(timings, "stage3", len(head)):
        if head:
            cmp, prep = stage3_functions(compare, prepare)
            q = entry.surfaces["breech_face"]
            with threads(1):   # as each comparison: one thread (compare_candidates)
                qp = prep(q) if prep is not None else q

            def load(num: Hashable) -> Scan:
                row = rows[int(num)]  # type: ignore[call-overload]
                f = catalogue.files_of(row["num"]).get("breech_face")
                if f is None:
                    raise DatabaseError(f"scan {row['scan_id']!r} has no stored breech face")
                return store.read_surface(f["path"], f["sha256"], f"breech face of {row['scan_id']!r}", row)

            bad = compare_candidates(qp, head, load, cmp, seed=p.seed, seed_window_deg=p.seed_window_deg,
                                     seed_min_inliers=p.seed_min_inliers, compare_params=p.compare, method=p.method)
            for key in bad:
                warnings.append(f"{rows[int(key)]['scan_id']}: stored breech face is damaged; skipped "  # type: ignore[call-overload]
                                "(run `ballistics db verify --deep`)")
            chits = [h for h in chits if h.key not in set(bad)]
            chits.sort(key=lambda h: h.sort_key())
    hits = []
    for r, h in enumerate(chits[:k], 1):
        row = rows[int(h.key)]  # type: ignore[call-overload]
        hits.append(SearchHit(scan_id=row["scan_id"], case_id=row["case_id"], exhibit_id=row["exhibit_id"],
                              firearm_id=row["firearm_id"], rank=r, retrieval_score=h.stage1_score,
                              score=h.compare_score, cmc_count=h.cmc_count, comparison=h.comparison,
                              stage=h.stage, retrieval_rank=h.stage1_rank, inliers=h.stage2_inliers,
                              verification=h.stage2, lab=_lab(row), stage3=h.stage3))
    logger.info("search %s:\n%s", entry.scan.name, format_timings(timings))
    return SearchResult(hits=tuple(hits), timings=timings, params=p.to_dict(), warnings=tuple(warnings),
                        query_sha256=entry.scan.checksum)


def _name(warning: str, rows: dict[int, dict[str, Any]]) -> str:
    """A stage-2 warning with the candidate's scan id instead of its catalogue number."""
    if warning.startswith("candidate "):
        head, _, rest = warning.partition(":")
        try:
            num = int(head.split()[1])
        except (IndexError, ValueError):
            return warning
        if num in rows:
            return f"{rows[num]['scan_id']}:{rest}"
    return warning

