"""The search cascade (issue 10) on the bundled real Fadul sample: a mate through each stage.

Real engine everywhere: FAISS over real signatures, SIFT + RANSAC on the real key points,
``compare`` for stage 3.  No test asserts a speed.
"""

from __future__ import annotations

import numpy as np
import pytest

from ballistics import datasets
from ballistics.errors import BallisticsError
from ballistics.index._cascade import CASCADE_DEFAULTS, cascade, cascade_many, format_timings
from ballistics.index._signature import signature
from ballistics.index._stage2 import SIFT_BLOB, ingest_blobs
from ballistics.index._verify_sift import Keypoints, VerificationError, keypoints, query_keypoints, verify


@pytest.fixture(scope="module")
def sample():
    scans = datasets.fadul("processed")           # Fadul 1-1, 1-2, 2-1, 2-2, 3-1, 3-2
    firearms = [s.metadata["firearm"] for s in scans]
    blobs = [ingest_blobs()[SIFT_BLOB](s) for s in scans]
    sigs = np.array([signature(s) for s in scans], np.float32)
    return scans, firearms, blobs, sigs


def _store(sigs, blobs, scans):
    import faiss
    idx = faiss.IndexFlatIP(sigs.shape[1])
    idx.add(sigs)
    return (idx.search, lambda keys: {k: blobs[k] for k in keys}, lambda k: scans[k])


def test_blob_roundtrip_and_corrupt_blobs(sample):
    scans, _, blobs, _ = sample
    kp = Keypoints.from_bytes(blobs[0])
    again = keypoints(scans[0])
    assert len(kp) == len(again) > 50
    np.testing.assert_array_equal(kp.descriptors, again.descriptors)
    np.testing.assert_allclose(kp.points, again.points)
    for bad in (b"", b"nonsense", blobs[0][:-7], blobs[0] + b"x", 42):
        with pytest.raises(VerificationError):
            Keypoints.from_bytes(bad)
    assert issubclass(VerificationError, BallisticsError)


def test_stage2_separates_mates_and_recovers_rotation_and_mirror(sample):
    scans, firearms, blobs, _ = sample
    q = query_keypoints(scans[0])                     # Fadul 1-1 and its mirror image
    kps = [Keypoints.from_bytes(b) for b in blobs]
    scores = [verify(q, kps[j]).inliers for j in range(1, 6)]
    mate = scores[0]                                  # Fadul 1-2
    assert mate >= 10 and mate > 2 * max(scores[1:]), scores
    # the same surface turned by 90 degrees: found with the rotation
    rot = scans[1].derive(np.rot90(scans[1].data).copy(), step="test.rot90",
                          spacing=(scans[1].spacing[1], scans[1].spacing[0]))
    v = verify(q, keypoints(rot))
    assert v.inliers >= 10
    r0 = verify(q, kps[1]).rotation_deg
    assert abs(((v.rotation_deg - r0) % 360) - 270) < 5 or abs(((v.rotation_deg - r0) % 360) - 90) < 5
    # a mirrored file of the mate: only the mirrored query finds it
    mir = scans[1].derive(scans[1].data[:, ::-1].copy(), step="test.mirror")
    kmir = keypoints(mir)
    with_mirror = verify(q, kmir)
    without = verify(q[:1], kmir)
    assert with_mirror.mirrored and with_mirror.inliers >= 10 and without.inliers < with_mirror.inliers / 2


def test_a_mate_through_each_stage(sample):
    scans, firearms, blobs, sigs = sample
    search, get_blobs, load = _store(sigs, blobs, scans)
    q = 2                                              # Fadul 2-1, mate Fadul 2-2
    mates = {j for j in range(6) if j != q and firearms[j] == firearms[q]}
    # stage 1 alone: the mate is in the short list
    r1 = cascade(scans[q], signature=sigs[q], search_vectors=search, get_blobs=lambda keys: {},
                 load_scan=None, k=5, exclude={q}, shortlist=5, rerank=0)
    assert mates & {h.key for h in r1.hits}
    assert all(h.stage == 1 and h.stage2_inliers is None for h in r1.hits)
    # stages 1+2: the mate is first, by inliers
    r2 = cascade(scans[q], signature=sigs[q], search_vectors=search, get_blobs=get_blobs,
                 load_scan=None, k=5, exclude={q}, rerank=0)
    assert r2.hits[0].key in mates and r2.hits[0].stage == 2
    assert r2.hits[0].stage2_inliers > max(h.stage2_inliers for h in r2.hits[1:])
    # stages 1+2+3: compared, mate first by CMC count
    r3 = cascade(scans[q], signature=sigs[q], search_vectors=search, get_blobs=get_blobs,
                 load_scan=load, k=5, exclude={q}, rerank=2, rerank_min_inliers=0)
    top = r3.hits[0]
    assert top.key in mates and top.stage == 3 and top.cmc_count is not None
    assert top.cmc_count > r3.hits[1].cmc_count
    assert q not in {h.key for h in r3.hits}
    # bookkeeping
    d = r3.to_dict()
    assert d["query_sha256"] == scans[q].checksum and d["params"]["rerank"] == 2
    assert set(r3.timings) == {"query", "stage1", "stage2", "stage3"}
    assert "stage3" in format_timings(r3.timings)


def test_batched_search_matches_single(sample):
    scans, firearms, blobs, sigs = sample
    search, get_blobs, _ = _store(sigs, blobs, scans)
    many = cascade_many(scans, sigs, search, get_blobs, k=3, exclude=[{i} for i in range(6)], rerank=0)
    for i, res in enumerate(many):
        single = cascade(scans[i], signature=sigs[i], search_vectors=search, get_blobs=get_blobs,
                         k=3, exclude={i}, rerank=0)
        assert [h.key for h in res.hits] == [h.key for h in single.hits]
        assert firearms[res.hits[0].key] == firearms[i]      # every bundled query: mate at rank 1


def test_bad_knobs_raise(sample):
    scans, _, blobs, sigs = sample
    search, get_blobs, _ = _store(sigs, blobs, scans)
    kw = dict(signature=sigs[0], search_vectors=search, get_blobs=get_blobs)
    for bad in ({"shortlist": 0}, {"rerank": -1}, {"depth": 3}, {"shortlist": "many"}):
        with pytest.raises(BallisticsError):
            cascade(scans[0], rerank=0, **{**kw, **bad}) if "rerank" not in bad else cascade(scans[0], **kw, **bad)
    with pytest.raises(BallisticsError):
        cascade(scans[0], k=0, rerank=0, **kw)
    with pytest.raises(BallisticsError):
        cascade(scans[0], rerank=3, **kw)            # stage 3 without load_scan
    with pytest.raises(BallisticsError):
        verify(keypoints(scans[0]), "not key points")  # type: ignore[arg-type]
    assert CASCADE_DEFAULTS["shortlist"] >= 200


def test_case_database_search_runs_the_cascade(tmp_path, sample):
    from ballistics.index import CaseDatabase
    scans, firearms, _, _ = sample
    db = CaseDatabase(tmp_path / "db")
    for s in scans:
        db.add(s, preprocess=False)
    assert db.get_blob(scans[0].exhibit_id, SIFT_BLOB)  # stored at ingest by the database
    hits = db.search(scans[4], k=5, preprocess=False, rerank=1)   # Fadul 3-1
    top = hits[0]
    assert datasets.firearm_of(top.scan_id) == firearms[4] and top.stage == 3 and top.cmc_count is not None
    assert top.inliers > max(h.inliers for h in hits[1:])
    assert all(h.stage == 2 and h.inliers is not None for h in hits[1:])
    assert "stage2" in db.search_timings() and db.last_search["params"]["rerank"] == 1
    many = db.search_many(scans[:2], k=2, preprocess=False, rerank=0)
    assert [datasets.firearm_of(m[0].scan_id) for m in many] == firearms[:2]
    off = db.search(scans[4], k=5, preprocess=False, rerank=0, verify=False)
    assert all(h.inliers is None and h.stage == 1 for h in off)
    with pytest.raises(BallisticsError):
        db.search(scans[4], k=5, preprocess=False, shortlist=0)
