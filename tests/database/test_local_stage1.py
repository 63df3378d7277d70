"""The inverted file of a local-sift database follows additions and removals without a full rebuild."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ballistics.database import CaseDatabase
from ballistics.database import _local_stage1 as ls1
from ballistics.database._models import local_stage1
from ballistics.retrieval import query_keypoints
from ballistics.retrieval._local_index import index_from_blobs
from ballistics.retrieval._models import LOCAL_BLOB

pytestmark = pytest.mark.slow  # adds the six bundled scans one by one


def _fresh(db, query, depth):
    """The reference: one index over every live entry, built from scratch."""
    live = sorted(int(r["num"]) for r in db.catalogue.list_scans())
    return index_from_blobs(live, [db.catalogue.get_blob(n, LOCAL_BLOB) for n in live]).search(query, depth)


def test_additions_go_to_the_delta_and_answers_equal_a_rebuilt_index(tmp_path, sample, entries, monkeypatch):
    monkeypatch.setattr(ls1, "MERGE_SHARE", 10.0)  # never merge: every addition after the first stays in the delta
    db = CaseDatabase(tmp_path / "db", model="local-sift")
    queries = [query_keypoints(s, mirror=True) for s in sample]
    for s, e in zip(sample, entries):
        db.add(copy.deepcopy(e), scan_id=s.exhibit_id, firearm_id=s.metadata["firearm"])
        search = local_stage1(db)
        for q in queries:
            got, ref = search(q, 4), _fresh(db, q, 4)
            np.testing.assert_array_equal(got[1], ref[1])
            np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
    state = db.__dict__["_local_stage1"]
    assert state.rebuilds == 1 and len(state.main_nums) == 1 and len(state.delta_nums) == 5
    removed = sample[2].exhibit_id
    db.remove(removed, reason="test")
    search = local_stage1(db)
    gone = {int(r["num"]) for r in db.catalogue.list_scans(include_removed=True) if r["scan_id"] == removed}
    for q in queries:
        got, ref = search(q, 5), _fresh(db, q, 5)
        assert not set(got[1][0].tolist()) & gone
        np.testing.assert_array_equal(got[1], ref[1])
    assert state.rebuilds == 1                      # a removal is filtered, not rebuilt


def test_the_schedule_rebuilds_when_the_delta_outgrows_its_share(tmp_path, sample, entries):
    db = CaseDatabase(tmp_path / "db", model="local-sift")
    for s, e in zip(sample, entries):
        db.add(copy.deepcopy(e), scan_id=s.exhibit_id, firearm_id=s.metadata["firearm"])
        local_stage1(db)
    state = db.__dict__["_local_stage1"]
    # with six entries any addition is more than a tenth of the main part: each one rebuilt it
    assert state.rebuilds == 6 and state.parts.delta is None and len(state.main_nums) == 6


def test_a_later_handle_loads_the_saved_inverted_file_and_a_damaged_one_is_rebuilt(tmp_path, sample, entries,
                                                                                  monkeypatch):
    monkeypatch.setattr(ls1, "MERGE_SHARE", 10.0)  # a small database: keep the addition in the delta
    path = tmp_path / "db"
    db = CaseDatabase(path, model="local-sift")
    for s, e in zip(sample[:5], entries[:5]):
        db.add(copy.deepcopy(e), scan_id=s.exhibit_id, firearm_id=s.metadata["firearm"])
    local_stage1(db)
    saved = path / "index" / ls1.MAIN_FILE
    assert saved.is_file()
    db.close()
    q = query_keypoints(sample[0], mirror=True)
    later = CaseDatabase(path)
    later.add(copy.deepcopy(entries[5]), scan_id=sample[5].exhibit_id)   # one more since it was saved
    with_saved = local_stage1(later)(q, 6)
    state = later.__dict__["_local_stage1"]
    assert state.rebuilds == 0 and len(state.main_nums) == 5 and len(state.delta_nums) == 1
    ref = _fresh(later, q, 6)
    np.testing.assert_array_equal(with_saved[1], ref[1])
    later.close()
    saved.write_bytes(saved.read_bytes()[:200])                          # damaged: ignored and rebuilt
    again = CaseDatabase(path)
    np.testing.assert_array_equal(local_stage1(again)(q, 6)[1], ref[1])
    assert again.__dict__["_local_stage1"].rebuilds == 1
    ro = CaseDatabase(path, readonly=True)
    before = saved.read_bytes()
    np.testing.assert_array_equal(local_stage1(ro)(q, 6)[1], ref[1])
    assert saved.read_bytes() == before                                  # a read-only handle writes nothing
