"""Stage 1 from two rankings: merging the signatures' short list with the votes' best."""

from __future__ import annotations

import pytest

from ballistics.errors import ParameterError
from ballistics.retrieval import SearchParams, merge_ranked


@pytest.mark.parametrize("votes", [-1, 2.5, float("nan")])
def test_votes_must_be_a_count(votes):
    with pytest.raises(ParameterError):
        SearchParams(votes=votes)


def test_merge_keeps_every_candidate_once_by_relative_rank():
    g = ["a", "b", "c", "d"]          # relative ranks 0, .25, .5, .75
    v = ["x", "c", "a"]               # relative ranks 0, .33, .67
    out = merge_ranked(g, v)
    keys = [k for k, _ in out]
    assert sorted(keys) == sorted(set(g) | set(v))
    # a and x both lead their list: the global list wins the tie; c is better placed in the votes (1/3 < 1/2)
    assert keys == ["a", "x", "b", "c", "d"]
    scores = dict(out)
    assert scores["a"] == 1.0 and scores["x"] == 1.0
    assert scores["c"] == pytest.approx(1 - 1 / 3)
    assert scores["d"] == pytest.approx(0.25)


def test_merge_of_one_list_is_that_list():
    assert [k for k, _ in merge_ranked([3, 1, 2], [])] == [3, 1, 2]
    assert [k for k, _ in merge_ranked([], [5, 4])] == [5, 4]
    assert merge_ranked([], []) == []
