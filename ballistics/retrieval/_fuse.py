"""Stage 1 from two rankings: the global signatures' and the key points' votes.

The two first stages lose different mates.  The global signature (SIFT-VLAD + polar
spectrum) ranks most mates within a few hundred but lets some sink under thousands of
look-alike non-mates; the key points' votes put a mate at the very top when the two
scans share descriptors, and give it nothing when they do not (the votes' recall
hardly grows beyond the first hundred).  So the votes' best candidates are *added* to
the signature's short list: the signature keeps its whole list (its mates, TopMatch
ones included, are not pushed out), and the union, without duplicates, goes to stage
2, which verifies every candidate whatever list it came from.

Ordering of the merged list: each candidate's *relative rank* in its list
(``(rank - 1) / length`` of that list; the better of the two when it is in both), ties
by the global list first.  The order matters only for ties at the end of the cascade
(a case database reports every candidate's cosine similarity as its stage-1 score,
whichever list brought it).

References
----------
Jegou, H., Douze, M., Schmid, C. (2008). Hamming embedding and weak geometric
consistency for large scale image search. ECCV.
Jegou, H., Perronnin, F., Douze, M. et al. (2012). Aggregating local image descriptors
into compact codes. IEEE TPAMI 34(9).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["merge_ranked"]


def merge_ranked(global_keys: Sequence[Hashable], local_keys: Sequence[Hashable]
                 ) -> list[tuple[Hashable, float]]:
    """Union of two ranked candidate lists, ordered by relative rank.

    Parameters
    ----------
    global_keys, local_keys : sequence of hashable
        Candidates, best first (each without duplicates), from the global signatures
        (the whole short list) and from the key points' votes (the votes' best, e.g.
        :attr:`SearchParams.votes <ballistics.retrieval.SearchParams>` of them).

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
