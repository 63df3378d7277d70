"""Signature models of a case database: recorded, searched with, migrated resumably."""

from __future__ import annotations

import copy

import pytest

from ballistics.database import CaseDatabase
from ballistics.database._models import MODEL_PARAM, PROGRESS_PARAM
from ballistics.errors import DatabaseError, ParameterError
from ballistics.retrieval._models import LOCAL_BLOB, get_model

pytestmark = pytest.mark.slow  # each test adds and searches six real scans (10-40 s)


def _fill(db, sample, entries):
    for s, e in zip(sample, entries):
        db.add(copy.deepcopy(e), scan_id=s.exhibit_id, firearm_id=s.metadata["firearm"])
    return db


def _answers(db, sample):
    out = []
    for s in sample:
        r = db.search(s, preprocess=False, rerank=0, k=5)
        out.append([(h.scan_id, h.inliers) for h in r])
    return out


def test_new_database_records_its_model(tmp_path):
    db = CaseDatabase(tmp_path / "a", model="local-sift")
    assert db.model == "local-sift"
    assert db.catalogue.get_parameter(MODEL_PARAM) == get_model("local-sift").record()
    db.close()
    assert CaseDatabase(tmp_path / "a").model == "local-sift"           # reopened: kept
    with pytest.raises(DatabaseError, match="migrate"):
        CaseDatabase(tmp_path / "a", model="global-640")
    assert CaseDatabase(tmp_path / "b").model == "local-sift"           # a new database: the default model
    with pytest.raises(ParameterError, match="unknown signature model"):
        CaseDatabase(tmp_path / "c", model="nope")


def test_local_model_finds_every_mate_first(tmp_path, sample, entries):
    db = _fill(CaseDatabase(tmp_path / "l", model="local-sift"), sample, entries)
    fa = {s.exhibit_id: s.metadata["firearm"] for s in sample}
    for s, ans in zip(sample, _answers(db, sample)):
        assert ans[0][0] in {x for x in fa if x != s.exhibit_id and fa[x] == fa[s.exhibit_id]}


def test_migrated_database_answers_as_a_fresh_one(tmp_path, sample, entries):
    fresh = _fill(CaseDatabase(tmp_path / "fresh", model="local-sift"), sample, entries)
    old = _fill(CaseDatabase(tmp_path / "old", model="global-640"), sample, entries)
    assert old.model == "global-640"
    out = old.resign("local-sift", batch=2)
    assert out["resigned"] == 6 and old.model == "local-sift"
    assert all(old.get_blob(s.exhibit_id, LOCAL_BLOB) == fresh.get_blob(s.exhibit_id, LOCAL_BLOB) for s in sample)
    assert _answers(old, sample) == _answers(fresh, sample)
    assert [e["action"] for e in old.audit_log()][-1] == "migrate"
    assert old.resign("local-sift")["resigned"] == 0                    # already there: nothing to do


def test_interrupted_migration_resumes(tmp_path, sample, entries):
    db = _fill(CaseDatabase(tmp_path / "db", model="global-640"), sample, entries)
    ref = _answers(_fill(CaseDatabase(tmp_path / "ref", model="local-sift"), sample, entries), sample)

    def boom(done, total):
        if done >= 4:
            raise KeyboardInterrupt("killed")
    with pytest.raises(KeyboardInterrupt):
        db.resign("local-sift", batch=2, progress=boom)
    assert db.model == "global-640"                                      # not switched half-way
    assert db.catalogue.get_parameter(PROGRESS_PARAM)["count"] == 4
    db.close()
    db = CaseDatabase(tmp_path / "db")
    seen = []
    out = db.resign("local-sift", batch=2, progress=lambda d, t: seen.append((d, t)))
    assert out["resumed"] == 4 and out["resigned"] == 2 and seen == [(6, 6)]
    assert db.model == "local-sift" and db.catalogue.get_parameter(PROGRESS_PARAM) is None
    assert _answers(db, sample) == ref
