"""Stage 1 of a database with key-point votes: the votes' best are added to the signatures' short list."""

from __future__ import annotations

import copy

import pytest

from ballistics.database import CaseDatabase
from ballistics.database._models import local_stage1
from ballistics.retrieval import query_keypoints

pytestmark = pytest.mark.slow  # two databases of the six bundled scans


@pytest.fixture(scope="module")
def dbs(tmp_path_factory, sample, entries):
    out = {}
    for model in ("global-640", "local-sift"):
        db = CaseDatabase(tmp_path_factory.mktemp(model) / "db", model=model)
        for s, e in zip(sample, entries):
            db.add(copy.deepcopy(e), scan_id=s.exhibit_id, firearm_id=s.metadata["firearm"])
        out[model] = db
    return out


def _stage1(db, scan, shortlist, **kw):
    r = db.search(scan, preprocess=False, verify=False, rerank=0, k=shortlist, shortlist=shortlist, **kw)
    return [h.scan_id for h in r]


def test_no_votes_is_the_global_ranking(dbs, sample):
    for s in sample:
        assert _stage1(dbs["local-sift"], s, shortlist=3, votes=0) == _stage1(dbs["global-640"], s, shortlist=3)


def test_the_votes_best_are_added_to_the_whole_global_list(dbs, sample):
    db = dbs["local-sift"]
    votes = local_stage1(db)
    assert votes is not None
    ids = {int(r["num"]): r["scan_id"] for r in db.catalogue.list_scans()}
    for s in sample:
        glob = _stage1(dbs["global-640"], s, shortlist=3)
        _, nums = votes(query_keypoints(s, mirror=True), 2)
        top_vote = [ids[int(n)] for n in nums[0] if int(n) in ids and ids[int(n)] != s.exhibit_id][0]
        # the global list whole, the best vote beside its leader (both lead their list: the global one first)
        assert _stage1(db, s, shortlist=3, votes=1) == list(dict.fromkeys([glob[0], top_vote, *glob[1:]]))[:3]
        # the votes add to the list, they take no place of the signatures': stage 1 hands on the union
        _, nums = votes(query_keypoints(s, mirror=True), 3)
        two = [ids[int(n)] for n in nums[0] if int(n) in ids and ids[int(n)] != s.exhibit_id][:2]
        r = db.search(s, preprocess=False, verify=False, rerank=0, k=2, shortlist=2, votes=2)
        assert r.timings["stage1"]["n"] == len(set(glob[:2]) | set(two))


def test_an_entry_imported_without_its_surface_stays_in_the_list_uncompared(tmp_path, sample, entries):
    lab = CaseDatabase(tmp_path / "lab", model="global-640")
    for i in (0, 1):  # Fadul 1-1 and 1-2: one firearm
        lab.add(copy.deepcopy(entries[i]), scan_id=sample[i].exhibit_id, firearm_id=sample[i].metadata["firearm"])
    lab.export_bundle(tmp_path / "b.zip", lab="Lab B")  # no surfaces
    db = CaseDatabase(tmp_path / "db")
    db.import_bundle(tmp_path / "b.zip", trust_unsigned=True)
    r = db.search(sample[0], preprocess=False, k=2, exclude_self=False)
    mate = [h for h in r if h.scan_id.endswith(sample[1].exhibit_id)]
    assert mate and mate[0].inliers >= 6 and mate[0].cmc_count is None and mate[0].lab == "Lab B"
    assert any("imported without its surface" in w for w in r.warnings)
    assert not any("damaged" in w for w in r.warnings)


def test_every_candidate_is_scored_by_its_cosine_whichever_ranking_brought_it(dbs, sample):
    for s in sample[:3]:
        kw = dict(preprocess=False, verify=False, rerank=0, k=5, shortlist=5)
        ref = {h.scan_id: h.retrieval_score for h in dbs["global-640"].search(s, **kw)}
        got = {h.scan_id: h.retrieval_score for h in dbs["local-sift"].search(s, votes=5, **kw)}
        assert got.keys() == ref.keys()
        for k in ref:
            assert got[k] == pytest.approx(ref[k], abs=1e-5)


def test_a_list_with_nothing_verified_says_so(tmp_path, sample, entries):
    """A query whose firearm is not in the database gets no candidate over the stage-3 gate,
    and the result says the list is unverified; a query whose mate is stored does not."""
    db = CaseDatabase(tmp_path / "db", model="global-640")
    for i in (2, 3, 4, 5):  # slides 2 and 3 (Fadul 2-1 ... 3-2): firearm of slide 1 absent
        db.add(copy.deepcopy(entries[i]), scan_id=sample[i].exhibit_id, firearm_id=sample[i].metadata["firearm"])
    absent = db.search(sample[0], preprocess=False, rerank=0, k=4, shortlist=4)
    assert max(h.inliers for h in absent) < 6
    assert any("no candidate reached 6 stage-2 inliers" in w for w in absent.warnings)
    present = db.search(sample[2], preprocess=False, rerank=0, k=3, shortlist=3)
    assert present[0].inliers >= 6
    assert not any("stage-2 inliers" in w for w in present.warnings)
