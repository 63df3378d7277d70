"""What a search returns: the ranked hits, the time each stage took, and warnings.

A :class:`SearchResult` is a read-only sequence of :class:`SearchHit` (``result[0]``,
``len(result)``, iteration), so code that used a list of hits keeps working; it also
carries the per-stage timings, the parameters and the warnings of *this* search, so
nothing about a search is kept on the object that ran it (threads may search at once).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

from .._json import jsonable
from .._version import __version__
from ._timing import format_timings

__all__ = ["SearchHit", "SearchResult"]


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
        Stage 1: fused cosine similarity of the signatures (-1..1, higher = more alike),
        also for a candidate brought by the key points' votes (``local-sift``).
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
        scan has no stage-2 key points (``rebuild_blobs()`` computes them).
    verification : dict or None
        Stage 2: matches, rotation (degrees), translation (pixels of 6.25 um), mirrored.
    lab : str or None
        The lab that holds the scan, for entries imported from an exchange bundle; None
        for the database's own scans.
    stage3 : dict or None
        Stage 3: how ``compare`` was run (:func:`ballistics.retrieval.stage3_seed`):
        ``seeded``, ``window_deg``, ``centre_deg``, stage 2's pose, ``reason`` when not
        seeded, ``fallback`` when a seeded comparison was repeated over the full circle.
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
        return jsonable(asdict(self))


@dataclass(frozen=True)
class SearchResult(Sequence[SearchHit]):
    """The outcome of one search: hits best first, per-stage timings, warnings.

    Attributes
    ----------
    hits : tuple of SearchHit
        Best first, at most ``params.k``.
    timings : dict
        ``{stage: {"wall_s": seconds, "cpu_s": seconds, "n": items}}`` for ``query``,
        ``stage1``, ``stage2`` and ``stage3``.
    params : dict
        The search parameters used (:meth:`SearchParams.to_dict`).
    warnings : tuple of str
        What the caller must know: candidates skipped because their stored data is
        damaged, candidates without stage-2 key points, failed comparisons.
    query_sha256 : str or None
        ``Scan.checksum`` of the query as searched.
    library_version : str
    """

    hits: tuple[SearchHit, ...] = ()
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    query_sha256: str | None = None
    library_version: str = __version__

    @overload
    def __getitem__(self, i: int) -> SearchHit: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[SearchHit]: ...

    def __getitem__(self, i: int | slice) -> SearchHit | Sequence[SearchHit]:
        return self.hits[i]

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def format_timings(self) -> str:
        """One line per stage: items, wall and CPU seconds (``db search --timings``)."""
        return format_timings(self.timings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary of the whole result."""
        return jsonable({"hits": [h.to_dict() for h in self.hits], "timings": self.timings, "params": self.params,
                         "warnings": list(self.warnings), "query_sha256": self.query_sha256,
                         "library_version": self.library_version})
