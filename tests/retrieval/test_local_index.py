"""The local-descriptor stage 1: postings, orientation-consistent votes, blobs."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.errors import BallisticsError, ParameterError
from ballistics.retrieval import keypoints, query_keypoints
from ballistics.retrieval._local_index import (
    LocalIndex,
    index_from_blobs,
    local_blob,
    read_local_blob,
    vocabulary,
)
from ballistics.retrieval._verify_sift import Keypoints


@pytest.fixture(scope="module")
def kps(sample):
    return [keypoints(s) for s in sample]


def _turned(kp: Keypoints, deg: float) -> Keypoints:
    """The same key points with every orientation turned by ``deg`` (a rotated scan, descriptors unchanged)."""
    return Keypoints(kp.points, (kp.angles + deg) % 360.0, kp.descriptors, kp.shape, kp.spacing_m)


def test_vocabulary_shapes_are_fixed():
    v = vocabulary()
    assert v["c1"].shape == (256, 64) and v["c2"].shape == (256, 64) and v["proj"].shape == (32, 128)
    assert set(np.unique(v["proj"]).tolist()) == {-1.0, 1.0}


def test_mates_rank_first_and_scores_ignore_rotation(sample, kps):
    idx = LocalIndex.build(range(len(kps)), kps)
    fa = [s.metadata["firearm"] for s in sample]
    for i, kp in enumerate(kps):
        S, I = idx.search(kp, 3, exclude=[i])
        assert fa[int(I[0, 0])] == fa[i]                     # a mate first (the 6 scans: 3 slides x 2)
        assert i not in I[0].tolist()
        S2, I2 = idx.search(_turned(kp, 97.0), 3, exclude=[i])
        assert I2[0, 0] == I[0, 0]
        assert S2[0, 0] == pytest.approx(S[0, 0], rel=0.25)  # angles quantised to 1/256 turn: bins may shift


def test_mirrored_query_is_voted_as_the_other_handedness(sample):
    s = sample[0]
    m = s.derive(np.ascontiguousarray(s.data[:, ::-1]), "test.mirror", {})
    idx = LocalIndex.build([0], [keypoints(m)])
    as_given, mirrored = query_keypoints(s)
    S_one, _ = idx.search((as_given,), 1)
    S_both, I = idx.search((as_given, mirrored), 1)
    assert I[0, 0] == 0 and S_both[0, 0] > 3 * max(S_one[0, 0], 1.0)


def test_blob_round_trip_and_refusals(kps):
    b = local_blob(kps[0])
    w, c, a = read_local_blob(b)
    assert len(b) == 8 + 9 * len(a) and len(a) == min(300, len(kps[0]))
    idx_a = LocalIndex.build([5, 9], kps[:2])
    idx_b = index_from_blobs([5, 9], [b, local_blob(kps[1])])
    S1, I1 = idx_a.search(kps[1], 2)
    S2, I2 = idx_b.search(kps[1], 2)
    assert I1.tolist() == I2.tolist() and np.allclose(S1, S2)
    for bad in (b[:-1], b"XXXX" + b[4:], b[:3]):
        with pytest.raises(BallisticsError):
            read_local_blob(bad)


def test_save_load_and_empty(tmp_path, kps):
    idx = LocalIndex.build([3, 4], kps[:2])
    idx.save(tmp_path / "l.npz")
    back = LocalIndex.load(tmp_path / "l.npz")
    assert back.ntotal == 2 and back.memory_bytes() == idx.memory_bytes()
    assert back.search(kps[0], 2)[1].tolist() == idx.search(kps[0], 2)[1].tolist()
    S, I = LocalIndex().search(kps[0], 4)
    assert (I == -1).all()


def test_stop_list_skips_long_word_lists(kps):
    """``max_list``: a bound above every list changes nothing; 0 scans no list (nothing votes);
    a bound between keeps the votes of the short lists only (fewer or equal scores)."""
    idx = LocalIndex.build(range(len(kps)), kps)
    longest = int(np.diff(idx.offsets).max())
    q = kps[0]
    S, I = idx.search(q, 4, exclude=[0])
    S_all, I_all = idx.search(q, 4, exclude=[0], max_list=longest)
    assert np.array_equal(S, S_all) and np.array_equal(I, I_all)
    S0, I0 = idx.search(q, 4, exclude=[0], max_list=0)
    assert (I0 == -1).all() and np.isinf(S0).all()
    S1, I1 = idx.search(q, 4, exclude=[0], max_list=1)
    assert np.nanmax(np.where(np.isfinite(S1), S1, 0)) <= S[0, 0] and longest > 1


def test_votes_on_threads_equal_one_thread(sample, kps):
    """The postings scanned on two or three threads (as given and mirrored): the same scores and order."""
    from unittest.mock import patch

    import ballistics
    import ballistics.kernels._local_votes as lv

    idx = LocalIndex.build(range(len(kps)), kps)
    for s in sample[:3]:
        q = query_keypoints(s)
        S1, I1 = idx.search(q, 6)
        for n in (2, 3):
            with patch.object(lv, "MIN_SPLIT", 0):            # six scans: split them anyway
                Sn, In = idx.search(q, 6, threads=n)
            assert np.array_equal(Sn, S1) and In.tolist() == I1.tolist()
        with ballistics.threads(2), patch.object(lv, "MIN_SPLIT", 0):   # the engine's setting is the default
            S2, I2 = idx.search(q, 6)
        assert np.array_equal(S2, S1) and I2.tolist() == I1.tolist()
    with pytest.raises(ParameterError, match="threads"):
        idx.search(q, 6, threads=0)
