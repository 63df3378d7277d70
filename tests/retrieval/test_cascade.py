"""The search cascade on the bundled real Fadul sample: a mate through each stage.

Real engine everywhere: FAISS over real signatures, SIFT + RANSAC on the real key points,
``compare`` for stage 3.  No test asserts a speed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ballistics import datasets
from ballistics.errors import BallisticsError
from ballistics.retrieval import (
    CASCADE_DEFAULTS,
    CascadeHit,
    SearchResult,
    cascade,
    cascade_many,
    compare_candidates,
    format_timings,
    stage3_seed,
)
from ballistics.retrieval._signature import signature
from ballistics.retrieval._stage2 import SIFT_BLOB, ingest_blobs
from ballistics.retrieval._verify_sift import Keypoints, VerificationError, keypoints, query_keypoints, verify


@pytest.fixture(scope="module")
def data(sample):
    scans = sample                                # Fadul 1-1, 1-2, 2-1, 2-2, 3-1, 3-2
    firearms = [s.metadata["firearm"] for s in scans]
    blobs = [ingest_blobs()[SIFT_BLOB](s) for s in scans]
    sigs = np.array([signature(s) for s in scans], np.float32)
    return scans, firearms, blobs, sigs


def _store(sigs, blobs, scans):
    import faiss
    idx = faiss.IndexFlatIP(sigs.shape[1])
    idx.add(sigs)
    return (idx.search, lambda keys: {k: blobs[k] for k in keys}, lambda k: scans[k])


def test_blob_roundtrip_and_corrupt_blobs(data):
    scans, _, blobs, _ = data
    kp = Keypoints.from_bytes(blobs[0])
    again = keypoints(scans[0])
    assert len(kp) == len(again) > 50
    np.testing.assert_array_equal(kp.descriptors, again.descriptors)
    np.testing.assert_allclose(kp.points, again.points)
    for bad in (b"", b"nonsense", blobs[0][:-7], blobs[0] + b"x", 42):
        with pytest.raises(VerificationError):
            Keypoints.from_bytes(bad)
    assert issubclass(VerificationError, BallisticsError)


def test_stage2_separates_mates_and_recovers_rotation_and_mirror(data):
    scans, firearms, blobs, _ = data
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


def test_a_mate_through_each_stage(data):
    scans, firearms, blobs, sigs = data
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
    # the mate's comparison was seeded by its stage-2 pose; the other, with few inliers, was not
    assert top.stage3["seeded"] and top.stage3["handedness"] == "as_given"
    lo, hi = top.stage3["rotation_range"]
    assert lo <= top.comparison["rotation_deg"] <= hi and hi - lo == 2 * top.stage3["window_deg"]
    other = r3.hits[1]
    assert other.stage == 3 and not other.stage3["seeded"] and "unreliable" in other.stage3["reason"]
    assert q not in {h.key for h in r3.hits}
    # bookkeeping
    d = r3.to_dict()
    assert d["query_sha256"] == scans[q].checksum and d["params"]["rerank"] == 2
    assert set(r3.timings) == {"query", "stage1", "stage2", "stage3"}
    assert "stage3" in format_timings(r3.timings)


def test_stage3_seed_maps_stage2_pose_to_compare_convention():
    # as given: compare's rotation of b is minus stage 2's, snapped to the 6-degree grid
    p = stage3_seed({"inliers": 30, "rotation_deg": 22.8, "mirrored": False}, 18, 8)
    assert p["seeded"] and p["handedness"] == "as_given" and p["centre_deg"] == -24.0
    assert p["rotation_range"] == [-42.0, -6.0] and p["compare_kw"]["rotation_range"] == (-42.0, -6.0)
    # mirrored query in stage 2 = mirrored b in compare, at stage 2's rotation - 180
    p = stage3_seed({"inliers": 39, "rotation_deg": 157.1, "mirrored": True}, 20, 8)
    assert p["handedness"] == "mirrored" and p["centre_deg"] == -24.0 and p["window_deg"] == 24.0
    p = stage3_seed({"inliers": 34, "rotation_deg": -175.3, "mirrored": True}, 12, 8)
    assert p["centre_deg"] == 6.0 and p["rotation_range"] == [-6.0, 18.0]
    # unreliable or missing pose, or a window as wide as the circle: the full comparison
    assert not stage3_seed({"inliers": 5, "rotation_deg": 10.0, "mirrored": False}, 18, 8)["seeded"]
    assert not stage3_seed(None)["seeded"] and stage3_seed(None)["compare_kw"] == {}
    assert not stage3_seed({"inliers": 40, "rotation_deg": 10.0, "mirrored": False}, 180, 8)["seeded"]


def test_seeded_stage3_finds_a_mirrored_mate_like_the_full_comparison(data):
    """Fadul 2-1 against a row-mirrored file of its mate 2-2: stage 2 finds the mirror image,
    the seeded comparison searches only b mirrored about stage 2's rotation and counts about
    as many CMCs as the full comparison of the pair as given."""
    from ballistics.comparison import compare, prepare
    scans, _, blobs, _ = data
    q, mate = scans[2], scans[3]
    mir = mate.derive(np.ascontiguousarray(mate.data[::-1]), step="test.mirror_rows")
    v = verify(query_keypoints(q), keypoints(mir))
    assert v.mirrored and v.inliers >= 10
    pq = prepare(q)
    full = compare(pq, mate)                       # the truth: both handedness, full circle
    hit = CascadeHit(key=0, stage=2, stage2_inliers=v.inliers, stage2=v.to_dict())
    compare_candidates(pq, [hit], lambda key: mir, compare, seed=True)
    s3 = hit.stage3
    assert s3["seeded"] and s3["handedness"] == "mirrored" and s3["fallback"] is None
    assert s3["stage2_mirrored"] and s3["stage2_inliers"] == v.inliers
    assert hit.comparison["mirrored"] and hit.comparison["params"]["handedness"] == "mirrored"
    lo, hi = s3["rotation_range"]
    assert lo <= hit.comparison["rotation_deg"] <= hi
    assert full.cmc_count >= 10 and abs(hit.cmc_count - full.cmc_count) <= 2, (hit.cmc_count, full.cmc_count)
    assert abs(((hit.comparison["rotation_deg"] - full.rotation_deg) + 180) % 360 - 180) <= 3
    # the LR of a seeded comparison says that its parameters are not the reference population's
    assert "seeded" in s3["lr"] and any("rotation_range" in w for w in hit.comparison["lr"]["warnings"])


def test_batched_search_matches_single(data):
    scans, firearms, blobs, sigs = data
    search, get_blobs, _ = _store(sigs, blobs, scans)
    many = cascade_many(scans, sigs, search, get_blobs, k=3, exclude=[{i} for i in range(6)], rerank=0)
    for i, res in enumerate(many):
        single = cascade(scans[i], signature=sigs[i], search_vectors=search, get_blobs=get_blobs,
                         k=3, exclude={i}, rerank=0)
        assert [h.key for h in res.hits] == [h.key for h in single.hits]
        assert firearms[res.hits[0].key] == firearms[i]      # every bundled query: mate at rank 1


def test_bad_knobs_raise(data):
    scans, _, blobs, sigs = data
    search, get_blobs, _ = _store(sigs, blobs, scans)
    kw = dict(signature=sigs[0], search_vectors=search, get_blobs=get_blobs)
    for bad in ({"shortlist": 0}, {"rerank": -1}, {"depth": 3}, {"shortlist": "many"}, {"seed_window_deg": 0},
                {"seed_window_deg": "wide"}, {"seed_min_inliers": -1}):
        with pytest.raises(BallisticsError):
            cascade(scans[0], rerank=0, **{**kw, **bad}) if "rerank" not in bad else cascade(scans[0], **kw, **bad)
    with pytest.raises(BallisticsError):
        cascade(scans[0], k=0, rerank=0, **kw)
    with pytest.raises(BallisticsError):
        cascade(scans[0], rerank=3, **kw)            # stage 3 without load_scan
    with pytest.raises(BallisticsError):
        verify(keypoints(scans[0]), "not key points")  # type: ignore[arg-type]
    assert CASCADE_DEFAULTS["shortlist"] >= 200


def test_case_database_search_runs_the_cascade(tmp_path, data):
    from ballistics.database import CaseDatabase
    scans, firearms, _, _ = data
    db = CaseDatabase(tmp_path / "db")
    for s in scans:
        db.add(s, preprocess=False)
    assert db.get_blob(scans[0].exhibit_id, SIFT_BLOB)  # stored at ingest by the database
    hits = db.search(scans[4], k=5, preprocess=False, rerank=1)   # Fadul 3-1
    top = hits[0]
    assert datasets.firearm_of(top.scan_id) == firearms[4] and top.stage == 3 and top.cmc_count is not None
    assert top.cmc_count >= 10 and top.stage3["seeded"] and top.to_dict()["stage3"]["window_deg"] == 18.0
    from ballistics.review import search_report
    html = search_report(db, scans[4], hits=hits[:2], preprocess=False)
    assert "Stage 3 was seeded by stage 2&#x27;s pose" in html or "Stage 3 was seeded by stage 2's pose" in html
    assert top.inliers > max(h.inliers for h in hits[1:])
    assert all(h.stage == 2 and h.inliers is not None for h in hits[1:])
    assert isinstance(hits, SearchResult) and "stage2" in hits.format_timings() and hits.params["rerank"] == 1
    assert not hasattr(db, "last_search")
    many = db.search_many(scans[:2], k=2, preprocess=False, rerank=0)
    assert [datasets.firearm_of(m[0].scan_id) for m in many] == firearms[:2]
    off = db.search(scans[4], k=5, preprocess=False, rerank=0, verify=False)
    assert all(h.inliers is None and h.stage == 1 for h in off)
    with pytest.raises(BallisticsError):
        db.search(scans[4], k=5, preprocess=False, shortlist=0)
    db.close()


def test_cli_db_search_verbose_prints_stage_timings_and_seeding(tmp_path, capsys):
    from ballistics.cli import main
    files = [str(p) for p in datasets.fadul_paths("processed")]
    path = str(tmp_path / "db")
    assert main(["db", "init", path]) == 0
    assert main(["db", "add", path, *files, "--no-preprocess", "--json"]) == 0
    capsys.readouterr()
    assert main(["db", "search", path, files[2], "-k", "3", "--rerank", "1", "--no-preprocess", "--verbose"]) == 0
    out = capsys.readouterr()
    for stage in ("query", "stage1", "stage2", "stage3"):
        assert stage in out.err
    lines = out.out.splitlines()
    assert "Fadul 2-2" in lines[2] and lines[3].strip().startswith("stage 3: seeded, rotations")
    assert main(["db", "search", path, files[2], "-k", "1", "--rerank", "1", "--no-preprocess", "--no-seed",
                 "--verbose"]) == 0
    assert "stage 3: full circle, both handedness: seeding off" in capsys.readouterr().out
    assert main(["db", "search", path, files[2], "-k", "2", "--rerank", "0", "--no-preprocess", "--json",
                 "--shortlist", "2", "--votes", "0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["params"]["votes"] == 0 and res["params"]["shortlist"] == 2 and len(res["hits"]) == 2
    assert res["library_version"] and len(res["query_sha256"]) == 64      # traceable: parameters, version, query


def test_fast_matcher_equals_its_reference_twin(data):
    """The shipped matcher (one product per query set, row minima) gives exactly the
    matches of the first one (one argpartition over the stacked matrix) on real key points
    of the bundled scans: a mate, a non-mate and the mirror image of the query."""
    from ballistics.retrieval._verify_sift import PARAMS, _match_all, _match_all_reference
    ratio = float(PARAMS["ratio"])                   # production setting
    scans, _, blobs, _ = data
    qs = query_keypoints(scans[0])
    n_matches = []
    for k in (1, 2, 5):
        cand = Keypoints.from_bytes(blobs[k])
        fast, ref = _match_all(qs, cand, ratio), _match_all_reference(qs, cand, ratio)
        assert len(fast) == len(ref) == 2
        for (iq, ic), (jq, jc) in zip(fast, ref):
            np.testing.assert_array_equal(iq, jq)
            np.testing.assert_array_equal(ic, jc)
            n_matches.append(len(iq))
    assert max(n_matches) > 10            # the comparison is not between empty match lists


def test_unverified_warning_only_when_nothing_reaches_the_gate():
    from ballistics.retrieval._cascade import CascadeHit, unverified_warning
    assert unverified_warning([CascadeHit(key=1), CascadeHit(key=2)], 6) is None        # no stage 2: nothing to say
    assert unverified_warning([CascadeHit(key=1, stage2_inliers=6), CascadeHit(key=2, stage2_inliers=2)], 6) is None
    hits = [CascadeHit(key=1, stage2_inliers=5), CascadeHit(key=2), CascadeHit(key=3, stage2_inliers=3)]
    w = unverified_warning(hits, 6)
    assert w is not None and "best 5 of 2 verified" in w
