"""The knobs of the search cascade, as one frozen, validated parameter object.

The defaults were chosen on the 40 Fadul scans (``benchmarks/bench_search.py``,
``benchmarks/results_index.md``).  Every size is bounded here, before anything is
allocated; a search also clamps ``k`` and ``shortlist`` to the number of stored
entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._params import Boolean, Integer, Params, Real, Text, param
from ..errors import ParameterError

__all__ = ["SearchParams", "MAX_K", "MAX_SHORTLIST", "MAX_RERANK"]

#: Largest accepted ``k`` (a search returns at most the number of stored entries anyway).
MAX_K = 10**9
#: Largest accepted stage-1 depth.
MAX_SHORTLIST = 10**9
#: Largest accepted stage-3 depth (each candidate costs a full comparison, ~0.4-1.2 s CPU).
MAX_RERANK = 100_000


@dataclass(frozen=True)
class SearchParams(Params):
    """Parameters of one search with the three-stage cascade.

    Build variants with :meth:`replace` (``SearchParams().replace(rerank=0)``); every
    field is checked on construction and a bad value raises
    :class:`~ballistics.errors.ParameterError`.  :meth:`describe` lists the fields.

    Attributes
    ----------
    k : int
        Length of the returned candidate list (clamped to the stored entries).
    shortlist : int
        Stage 1: depth of the short list verified by stage 2.
    votes : int
        Stage 1 of a database indexed with the key points' votes (signature model
        ``local-sift``): the votes' best candidates added to the signatures' short list
        (:func:`ballistics.retrieval.merge_ranked`; 0: signatures only).  Databases of
        the ``global-640`` model have no votes and ignore it.
    rerank : int
        Stage 3: best verified candidates compared with ``compare`` (0: stage 3 off).
    rerank_min_inliers : int
        Stage 3 skips candidates with fewer stage-2 inliers.
    mirror : bool
        Stage 2 also tries the query's mirror image.
    verify : bool
        Run stage 2 (off: the list stays in retrieval order before stage 3).
    seed : bool
        Seed stage 3 with stage 2's rotation and handedness.
    seed_window_deg : float
        Half-width of the seeded rotation window, degrees.
    seed_min_inliers : int
        Candidates with fewer stage-2 inliers get the full 360-degree comparison.
    method : str or None
        Comparison method passed to ``compare`` (None: its default).
    compare : CompareParams or None
        Parameters of stage 3's comparisons (:class:`ballistics.comparison.CompareParams`;
        None: ``compare``'s default preset).
    """

    _kind = "search parameter"

    k: int = param(10, Integer(1, MAX_K), "length of the returned candidate list", unit="candidates")
    shortlist: int = param(1000, Integer(1, MAX_SHORTLIST),
                           "stage 1: short-list depth verified by stage 2", unit="candidates")
    votes: int = param(250, Integer(0, MAX_SHORTLIST),
                       "stage 1 with key-point votes (local-sift): the votes' best candidates added to the "
                       "signatures' short list (0: signatures only)", unit="candidates")
    rerank: int = param(10, Integer(0, MAX_RERANK),
                        "stage 3: best verified candidates compared in full (0: off)", unit="candidates")
    rerank_min_inliers: int = param(6, Integer(0, 100_000),
                                    "stage 3 skips candidates with fewer stage-2 inliers (on the 40 Fadul scans "
                                    "mates had 12 or more, different firearms 4 or fewer)", unit="key points")
    mirror: bool = param(True, Boolean(), "stage 2 also tries the query's mirror image")
    verify: bool = param(True, Boolean(), "run stage 2 (SIFT key points under one rigid motion)")
    seed: bool = param(True, Boolean(), "stage 3 searches only about stage 2's rotation and handedness")
    seed_window_deg: float = param(18.0, Real(0.0, 180.0, lo_open=True),
                                   "half-width of stage 3's seeded rotation window (rounded up to compare's "
                                   "6-degree coarse step)", unit="degrees")
    seed_min_inliers: int = param(8, Integer(0, 100_000),
                                  "fewer stage-2 inliers: the pose is unreliable, stage 3 compares over the full "
                                  "circle in both handedness", unit="key points")
    method: str | None = param(None, Text(64, none=True), "comparison method passed to compare (None: its default)")
    compare: Any = param(None, None, "stage 3's CompareParams (None: compare's default preset)")  # type: ignore[arg-type]

    def _check(self) -> None:
        if self.compare is None:
            return
        from ..comparison import CompareParams

        if not isinstance(self.compare, CompareParams):
            raise ParameterError(f"compare must be a ballistics.comparison.CompareParams or None, "
                                 f"got {type(self.compare).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict; ``compare`` as its own dict (or None)."""
        d = {n: getattr(self, n) for n in self.names()}
        if self.compare is not None:
            d["compare"] = self.compare.to_dict() if hasattr(self.compare, "to_dict") else dict(
                vars(self.compare))
        return d
