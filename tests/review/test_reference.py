"""Reference scores: placement counts, leaving the reported pair out, the table, the cache.

The bundled reference (all 15 pairs of the six Fadul breech faces) is computed once per
session (tests/review/conftest.py).
"""

from __future__ import annotations

import json

import pytest

import ballistics
from ballistics import BallisticsError, ParameterError
from ballistics.comparison import CompareParams
from ballistics.review import Placement, ReferencePair, ReferenceScores, placement, reference_scores


def test_placement_counts():
    p = placement(5, [3, 5, 9], [0, 1, 5, 6, 2])
    assert p == Placement(score=5.0, n_same=3, n_different=5, same_at_or_above=2, different_at_or_above=2,
                          max_different=6.0, min_same=3.0)
    assert placement(1, [], [0]).min_same is None
    with pytest.raises(BallisticsError):
        placement(float("nan"), [1], [2])


def _pair(x, y, same, cmc):
    return ReferencePair(a=x.name, b=y.name, a_checksum=x.checksum, b_checksum=y.checksum, same=same,
                         score=float(cmc) / 2, cmc_count=cmc)


def test_reference_leaves_out_the_reported_pair(sample):
    a, b, c = sample[:3]
    ref = ReferenceScores.from_pairs([_pair(a, b, True, 20), _pair(a, c, False, 1), _pair(b, c, False, 2)],
                                     "three pairs")
    assert (ref.same, ref.different) == ((20,), (1, 2))
    kept, n = ref.leave_out(b, a)
    assert (kept.same, sorted(kept.different), n) == ((), [1, 2], 1)
    assert kept.source.endswith("(leaving out this pair)")
    kept, n = ref.leave_out(a, c)
    assert (kept.same, kept.different, n) == ((20,), (2,), 1)
    # a pair that is not in the reference leaves it as it is
    kept, n = ref.leave_out(a, sample[3])
    assert kept is ref and n == 0


def test_reference_scores_round_trip_and_table(sample, tmp_path):
    a, b, c = sample[:3]
    ref = ReferenceScores.from_pairs([_pair(a, b, True, 20), _pair(a, c, False, 1)], "two pairs",
                                     method="high", elapsed_s=1.5)
    back = ReferenceScores.from_dict(ref.to_dict())
    assert back == ref
    rows = ref.rows()
    assert [r["cmc_count"] for r in rows] == [20, 1] and rows[0]["a"] == a.name
    ref.to_csv(tmp_path / "ref.csv")
    lines = (tmp_path / "ref.csv").read_text().splitlines()
    assert lines[0].startswith("a,b,a_checksum") and len(lines) == 3
    # plain dicts without pairs are accepted; malformed ones are refused clearly
    plain = ReferenceScores.from_dict({"same": [9, 12], "different": [0], "source": "elsewhere"})
    assert plain.place(10).same_at_or_above == 1 and plain.leave_out(a, b) == (plain, 0)
    with pytest.raises(BallisticsError):
        ReferenceScores.from_dict({"same": [1]})
    with pytest.raises(BallisticsError):
        ReferenceScores.from_dict({"same": [1], "different": [0], "pairs": [{"a": "x"}]})


def test_reference_scores_bundled(reference, scans):
    assert isinstance(reference, ReferenceScores)
    assert len(reference.same) == 3 and len(reference.different) == 12
    assert reference.library_version == ballistics.__version__
    assert reference.comparison_method == "convergence"        # compare's default
    # every pair is labelled by the ground truth, not by its score
    for p in reference.pairs:
        assert p.same == (scans[p.a].metadata["firearm"] == scans[p.b].metadata["firearm"])
    assert sorted(reference.same) == sorted(p.cmc_count for p in reference.pairs if p.same)
    # the same firearm scores higher than any different one on this sample
    assert min(reference.same) > max(reference.different)


def test_reference_scores_refuses_bad_sources_and_params(scans):
    with pytest.raises(BallisticsError):
        reference_scores("nowhere")
    with pytest.raises(BallisticsError):
        reference_scores([scans["Fadul 1-1"]])
    with pytest.raises(ParameterError):                      # parameters are a CompareParams, not a dict
        reference_scores([scans["Fadul 1-1"], scans["Fadul 2-1"]], params={"cell_grid": (4, 4)})


def test_reference_scores_are_read_from_the_cache(scans, tmp_path, monkeypatch):
    """A cached entry under the computation's key is returned without comparing anything."""
    from ballistics.review._reference_cache import cache_key, write_cached

    monkeypatch.setenv("BALLISTICS_CACHE", str(tmp_path))
    chosen = [scans["Fadul 1-1"], scans["Fadul 2-1"]]
    params = CompareParams(cell_grid=(4, 4))
    planted = ReferenceScores(source="planted entry", same=(), different=(7.0,), elapsed_s=0.5)
    key = cache_key("original", params.to_dict(), [s.checksum for s in chosen])
    write_cached(key, json.dumps(planted.to_dict()).encode())
    got = reference_scores(chosen, method="original", params=params)
    assert got == planted
    # another method or other parameters are another key: not served from this entry
    checksums = [s.checksum for s in chosen]
    assert cache_key("high", params.to_dict(), checksums) != key
    assert cache_key("original", params.replace(corr_threshold=0.6).to_dict(), checksums) != key
    # the explicit default method and None are one computation
    assert cache_key("convergence", params.to_dict(), checksums) == cache_key(None, params.to_dict(), checksums)
