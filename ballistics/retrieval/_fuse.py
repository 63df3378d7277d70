"""Stage 1 from two rankings: the global signatures' and the key points' votes.

The two first stages lose different mates.  The global signature (SIFT-VLAD + polar
spectrum) ranks most mates within a few hundred but lets some sink under thousands of
look-alike non-mates; the key points' votes put a mate at the very top when the two
scans share descriptors, and give it nothing when they do not (the votes' recall
hardly grows beyond the first hundred).  So the short list is split: its first
``local_depth`` places come from the votes, the rest from the global ranking, and the
two are merged without duplicates; when the two lists share candidates, the list is
filled up to its depth from further down the global ranking.  Stage 2 then verifies every candidate whatever
list it came from, so the merge order matters only for ties at the end of the cascade.

Ordering of the merged list: each candidate's *relative rank* in its list
(``(rank - 1) / depth`` of that list; the better of the two when it is in both), ties
by the global list first.  (A case database reports every candidate's cosine
similarity as its stage-1 score, whichever list brought it.)

References
----------
Jegou, H., Douze, M., Schmid, C. (2008). Hamming embedding and weak geometric
consistency for large scale image search. ECCV.
Jegou, H., Perronnin, F., Douze, M. et al. (2012). Aggregating local image descriptors
into compact codes. IEEE TPAMI 34(9).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from ..errors import ParameterError

__all__ = ["split_depth", "merge_ranked", "fuse_rankings"]


def split_depth(depth: int, local_share: float) -> tuple[int, int]:
    """How many of ``depth`` short-list places the global ranking and the votes fill.

    Parameters
    ----------
    depth : int
        Length of the short list (candidates).
    local_share : float
        Share of it taken from the key points' votes, in ``[0, 1]``.

    Returns
    -------
    (global_depth, local_depth) : tuple of int
        ``global_depth + local_depth == depth``; ``local_depth = round(depth * local_share)``.
    """
    if not 0.0 <= float(local_share) <= 1.0:
        raise ParameterError(f"local_share must be in [0, 1], got {local_share!r}")
    if int(depth) < 0:
        raise ParameterError(f"depth must be >= 0, got {depth!r}")
    n_local = min(int(depth), int(round(int(depth) * float(local_share))))
    return int(depth) - n_local, n_local


def merge_ranked(global_keys: Sequence[Hashable], local_keys: Sequence[Hashable]
                 ) -> list[tuple[Hashable, float]]:
    """Union of two ranked candidate lists, ordered by relative rank.

    Parameters
    ----------
    global_keys, local_keys : sequence of hashable
        Candidates, best first (each without duplicates), from the global signatures and
        from the key points' votes.

    Returns
    -------
    list of (key, score)
        Every candidate once, best first; ``score = 1 - (rank - 1) / len(list)`` of the
        list that ranks it relatively higher (the global list on a tie).
    """
    best: dict[Hashable, tuple[float, int, int]] = {}
    for src, keys in enumerate((global_keys, local_keys)):
        n = max(len(keys), 1)
        for r, k in enumerate(keys):
            cand = (r / n, src, r)
            if k not in best or cand < best[k]:
                best[k] = cand
    order = sorted(best, key=lambda k: best[k])
    return [(k, 1.0 - best[k][0]) for k in order]


def fuse_rankings(global_keys: Sequence[Hashable], local_keys: Sequence[Hashable], depth: int,
                  local_share: float) -> list[tuple[Hashable, float]]:
    """The short list of ``depth`` candidates from the two rankings.

    Parameters
    ----------
    global_keys : sequence of hashable
        The global signatures' ranking, best first, ideally ``depth`` long (the part
        beyond ``split_depth(depth, local_share)[0]`` fills the list when the two
        rankings share candidates).
    local_keys : sequence of hashable
        The key points' votes, best first; its first ``split_depth(...)[1]`` are used.
    depth : int
        Length of the short list (candidates).
    local_share : float
        Share of the list taken from the votes, in ``[0, 1]``.

    Returns
    -------
    list of (key, score)
        At most ``depth`` candidates (fewer only when both rankings together hold
        fewer), ordered and scored as :func:`merge_ranked`.
    """
    n_global, n_local = split_depth(depth, local_share)
    votes = list(local_keys[:n_local])
    take = n_global
    while True:
        merged = merge_ranked(global_keys[:take], votes)
        if len(merged) >= depth or take >= len(global_keys):
            return merged[:depth]
        take += depth - len(merged)
