"""Stage 2 over a short list on threads: the same answers as one verification at a time."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import ballistics
from ballistics._threads import resolve_threads
from ballistics.errors import BallisticsError, ParameterError
from ballistics.retrieval import Keypoints, keypoints, query_keypoints, verify, verify_many
from ballistics.retrieval._verify_many import CHUNK


@pytest.fixture(scope="module")
def kps(sample):
    return [keypoints(s) for s in sample], [query_keypoints(s) for s in sample]


def _blas_threads() -> dict[str, int]:
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_verify_many_equals_one_at_a_time(kps, threads):
    """Every bundled scan against a list longer than several chunks (the stored key points and
    their mirror images, repeated): equal Verifications, in order, for any thread count."""
    stored, queries = kps
    cands = (stored + [k.mirrored() for k in stored]) * (CHUNK // 6 + 2)
    assert len(cands) > 2 * CHUNK
    before = _blas_threads()
    for qs in queries[:2]:
        got = verify_many(qs, cands, threads=threads)
        ref = [verify(qs, c) for c in cands]
        assert [v.to_dict() for v in got] == [v.to_dict() for v in ref]
        assert max(v.inliers for v in got) >= 10          # the query's own scan and its mate were found
    after = _blas_threads()
    assert before and all(after[f] == n for f, n in before.items())   # BLAS's thread counts restored


def test_verify_many_empty_and_errors(kps):
    stored, queries = kps
    assert verify_many(queries[0], [], threads=2) == []
    other = Keypoints(stored[1].points, stored[1].angles, stored[1].descriptors, stored[1].shape, 1e-5)
    with pytest.raises(BallisticsError, match="different pixel sizes"):   # raised on a worker thread, seen here
        verify_many(queries[0], stored * 12 + [other], threads=2)


def test_threads_follow_the_engine_setting():
    assert resolve_threads() == 1                         # the engine's default: one thread per operation
    with ballistics.threads(2):
        assert resolve_threads() == 2
    assert resolve_threads(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ParameterError):
            resolve_threads(bad)


def test_search_records_its_threads(sample, tmp_path):
    """A search on two threads gives the answers of one and says how many it used."""
    from ballistics.database import CaseDatabase

    with CaseDatabase(tmp_path / "db") as db:
        for s in sample:
            db.add(s, preprocess=False)
        one = db.search(sample[0], k=3, rerank=0, preprocess=False)
        with ballistics.threads(2):
            two = db.search(sample[0], k=3, rerank=0, preprocess=False)
    assert [(h.scan_id, h.inliers) for h in one] == [(h.scan_id, h.inliers) for h in two]
    assert one.timings["stage2"]["threads"] == 1 and two.timings["stage2"]["threads"] == 2
    assert np.isfinite(two.timings["stage2"]["wall_s"])


def test_stage3_compares_on_one_thread_whatever_the_search_uses(sample):
    """Stage 3 gives each comparison one thread (a comparison is slower on two), restored after."""
    from ballistics._threads import current_threads
    from ballistics.comparison import compare
    from ballistics.retrieval import CascadeHit, compare_candidates

    seen = []

    def recording_compare(a, b, **kw):
        seen.append(current_threads())
        return compare(a, b, **kw)

    hits = [CascadeHit(key=1, stage2={"inliers": 20, "rotation_deg": 0.0, "mirrored": False}, stage2_inliers=20)]
    with ballistics.threads(2):
        compare_candidates(sample[0], hits, lambda k: sample[k], recording_compare, seed=True)
        assert current_threads() == 2
    assert seen and set(seen) == {1} and hits[0].cmc_count is not None
