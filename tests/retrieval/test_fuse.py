"""Stage 1 from two rankings: splitting the short list and merging the lists."""

from __future__ import annotations

import pytest

from ballistics.errors import ParameterError
from ballistics.retrieval import SearchParams, fuse_rankings, merge_ranked, split_depth


@pytest.mark.parametrize("depth, share, expected", [(1000, 0.25, (750, 250)), (1000, 0.0, (1000, 0)),
                                                     (1000, 1.0, (0, 1000)), (3, 0.5, (1, 2)), (0, 0.5, (0, 0))])
def test_split_depth(depth, share, expected):
    assert split_depth(depth, share) == expected


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_split_depth_refuses_a_share_outside_0_1(share):
    with pytest.raises(ParameterError):
        split_depth(10, share)
    with pytest.raises(ParameterError):
        SearchParams(local_share=share)


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


def test_fused_list_is_filled_from_the_global_ranking_when_the_lists_overlap():
    g = ["a", "b", "c", "d", "e"]
    assert [k for k, _ in fuse_rankings(g, ["x", "y"], 4, 0.5)] == ["a", "x", "b", "y"]
    # the votes repeat the global leaders: two more global candidates fill the list
    out = [k for k, _ in fuse_rankings(g, ["a", "b"], 4, 0.5)]
    assert out == ["a", "b", "c", "d"]
    assert len(fuse_rankings(["a"], ["a"], 4, 0.5)) == 1     # nothing more to fill with
    assert [k for k, _ in fuse_rankings(g, ["z"], 3, 0.0)] == ["a", "b", "c"]
