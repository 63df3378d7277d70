"""Searching a case database: FAISS retrieval fused over parts, re-ranked by ``compare``."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BallisticsError, ComparisonError, DatabaseError
from ..scan import Scan, _jsonable
from ._entry import PreparedEntry, prepare_entry

logger = logging.getLogger("ballistics.index._database")

#: Weights of the parts when their retrieval scores are fused.
PART_WEIGHTS = {"breech_face": 0.7, "firing_pin": 0.3}


@dataclass
class SearchHit:
    """One candidate of a database search.

    Attributes
    ----------
    scan_id, case_id, exhibit_id, firearm_id : str or None
        Identifiers of the stored scan.
    rank : int
        1-based position in the returned list.
    retrieval_score : float
        Fused cosine similarity of the signatures (-1..1, higher = more alike).
    score : float or None
        ``Comparison.score`` of the re-ranking comparison (higher = more similar);
        None when the candidate was not re-ranked.
    cmc_count : int or None
        Congruent matching cells found by the comparison; None when not re-ranked.
    comparison : dict or None
        ``Comparison.to_dict()`` (registration, parameters...), or ``{"error": ...}``
        when the comparison failed; None when not re-ranked.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary."""
        return _jsonable(asdict(self))


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
               method: str | None = None, exclude_self: bool = True,
               exclude: Sequence[str] = ()) -> list[SearchHit]:
        """Ranked list of stored scans most likely fired by the same firearm.

        Stage 1 (retrieval) searches the FAISS index of each part with the query's
        signatures and fuses the cosine similarities (breech face 0.7, firing pin 0.3,
        re-weighted over the parts both sides have).  Stage 2 (re-ranking) compares the
        query's breech face with the best ``rerank`` candidates
        (:func:`ballistics.comparison.compare`) and orders them by CMC count, then
        comparison score; the other candidates follow in retrieval order.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            The query (whole primer if ``preprocess``, else an extracted breech face).
        k : int, default 10
            Length of the returned list.
        preprocess : bool, default True
            Extract surfaces first.
        candidates : int, optional
            Retrieval depth (default ``max(50, 5 k)``).
        rerank : int, optional
            How many top candidates to re-rank with ``compare`` (default ``k``; 0 turns
            re-ranking off).
        method : str, optional
            Comparison method passed to ``compare`` (default: its default, High CMC).
        exclude_self : bool, default True
            Leave out stored scans identical to the query (same height-array hash).
        exclude : sequence of str
            Scan ids to leave out.

        Returns
        -------
        list of SearchHit
            Best first, at most ``k``.
        """
        k = int(k)
        if k <= 0:
            raise BallisticsError(f"k must be a positive number of hits, got {k}")
        entry = scan if isinstance(scan, PreparedEntry) else prepare_entry(scan, preprocess, self._extractors)
        self._sync(persist=False)
        ncand = int(candidates) if candidates else max(50, 5 * k)
        rr = k if rerank is None else max(0, int(rerank))
        excluded = set(exclude)
        self_sha = entry.scan.checksum if exclude_self else None
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
        hits = [SearchHit(scan_id=rows[i]["scan_id"], case_id=rows[i]["case_id"], exhibit_id=rows[i]["exhibit_id"],
                          firearm_id=rows[i]["firearm_id"], rank=0, retrieval_score=float(fused[i] / wsum[i]))
                for i in order]
        if rr and hits:
            head = self._rerank(entry, hits[:rr], method)
            hits = head + hits[rr:]
        hits = hits[:k]
        for r, h in enumerate(hits, 1):
            h.rank = r
        return hits

    def _rerank(self, entry: PreparedEntry, hits: list[SearchHit], method: str | None) -> list[SearchHit]:
        compare, prepare = self._compare, self._prepare
        if compare is None:
            try:
                from ..comparison import compare as compare  # noqa: PLW0127
            except ImportError as exc:
                raise BallisticsError("re-ranking needs ballistics.comparison.compare, which this installation "
                                      "lacks; search with rerank=0.") from exc
        if prepare is None:
            try:
                from ..comparison import prepare as prepare  # noqa: PLW0127
            except ImportError:
                prepare = None
        q = entry.surfaces["breech_face"]
        qp = prepare(q) if prepare is not None else q
        for h in hits:
            try:
                cand = self.load_scan(h.scan_id, "breech_face")
                c = compare(qp, cand, **({"method": method} if method else {}))
                h.cmc_count = int(c.cmc_count)
                h.score = float(c.score)
                h.comparison = c.to_dict()
            except (ComparisonError, DatabaseError, BallisticsError) as exc:
                logger.warning("comparison with %s failed: %s", h.scan_id, exc)
                h.comparison = {"error": str(exc)}
        done = [h for h in hits if h.cmc_count is not None]
        failed = [h for h in hits if h.cmc_count is None]
        done.sort(key=lambda h: (-(h.cmc_count or 0), -(h.score if h.score is not None else -np.inf),
                                 -h.retrieval_score))
        return done + failed

