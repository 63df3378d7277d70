"""CaseDatabase: add / search / remove / stats, duplicates, corrupt input, index repair, CLI."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ballistics import BallisticsError, DatabaseError, ScanReadError, datasets
from ballistics.database import CaseDatabase, SearchHit
from ballistics.retrieval import _faiss_index


class FakeComparison:
    """Stand-in for ballistics.comparison.Comparison (same attributes), for ordering tests."""

    def __init__(self, cmc: int, score: float) -> None:
        self.cmc_count, self.score, self.rotation_deg, self.translation_m = cmc, score, 0.0, (0.0, 0.0)

    def to_dict(self):
        return {"cmc_count": self.cmc_count, "score": self.score}


@pytest.fixture
def db6(tmp_path, sample, entries):
    db = CaseDatabase(tmp_path / "db")
    for s, e in zip(sample, entries):
        db.add(e, scan_id=s.exhibit_id, case_id="case-" + s.exhibit_id[-3], firearm_id=s.metadata["firearm"])
    return db


def _in_sync(v: dict) -> bool:
    """No stored data missing and the index file holds exactly the catalogue's signatures."""
    return v["ok"] and v["index_in_sync"]


def _snapshot(path: Path) -> dict:
    """Content of a database: every table's rows and every stored file's hash."""
    con = sqlite3.connect(path / "catalogue.sqlite")
    tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
              for (t,) in con.execute("SELECT name FROM sqlite_master "
                                      "WHERE type='table' AND name != 'sqlite_sequence'")}
    con.close()
    files = {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(path.rglob("*")) if p.is_file() and "catalogue.sqlite" not in p.name}
    return {"tables": tables, "files": files}


def test_add_search_list_stats(db6, sample):
    assert len(db6.list()) == 6
    hits = db6.search(sample[0], k=3, preprocess=False, rerank=0, verify=False)  # stage 1 only
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(isinstance(h, SearchHit) for h in hits)
    assert "Fadul 1-1" not in [h.scan_id for h in hits]  # the query itself is left out
    assert hits[0].scan_id == "Fadul 1-2"  # measured: the mate is the nearest signature
    assert hits[0].firearm_id == "slide-1" and hits[0].case_id == "case-1"
    assert all(h.cmc_count is None and h.score is None for h in hits)
    r = [h.retrieval_score for h in hits]
    assert r == sorted(r, reverse=True)
    st = db6.stats()
    assert st["scans"] == 6 and st["firearms"] == 3 and st["index"]["breech_face"]["count"] == 6
    assert st["index"]["breech_face"]["kind"] == "flat"
    # stored surfaces are read back bit-identical
    back = db6.load_scan("Fadul 2-1")
    np.testing.assert_array_equal(back.data, sample[2].data)
    assert db6.verify(deep=True)["ok"]


def test_rerank_with_real_comparison(db6, sample):
    """The real engine re-ranks the head of the list: the same-slide mate has the most CMCs."""
    hits = db6.search(sample[2], k=4, preprocess=False, rerank=2, rerank_min_inliers=0)
    assert [h.cmc_count is not None for h in hits] == [True, True, False, False]
    assert hits[0].scan_id == "Fadul 2-2"  # measured: 25 CMCs, the different-slide candidates 0
    assert hits[0].cmc_count >= 10 and hits[0].cmc_count > hits[1].cmc_count
    assert hits[0].comparison["cmc_count"] == hits[0].cmc_count and "params" in hits[0].comparison
    assert hits[2].retrieval_score >= hits[3].retrieval_score  # the tail keeps retrieval order


def test_rerank_promotes_mate_beyond_retrieval_rank(tmp_path, sample):
    """Re-ranking orders the head by the comparison's CMC count, whatever retrieval said."""
    def inverse_compare(a, b, method=None):  # prefers what retrieval ranked last
        return FakeComparison(int(b.exhibit_id[-1]) * 10 + int(b.exhibit_id[-3]), 0.0)
    db = CaseDatabase(tmp_path / "db", compare=inverse_compare, prepare=lambda s: s)
    for s in sample:
        db.add(s, preprocess=False)
    hits = db.search(sample[0], k=5, preprocess=False, rerank=5, verify=False)
    assert [h.cmc_count for h in hits] == sorted([h.cmc_count for h in hits], reverse=True)
    assert hits[0].scan_id == "Fadul 3-2"


def test_duplicates_and_id_collisions(db6, sample):
    with pytest.raises(DatabaseError, match="already stored as 'Fadul 1-1'"):
        db6.add(sample[0], scan_id="again", preprocess=False)
    assert db6.add(sample[0], scan_id="again", preprocess=False, on_duplicate="skip") == "Fadul 1-1"
    other = sample[0].derive(sample[0].data + 1e-9, "offset", {})
    with pytest.raises(DatabaseError, match="taken"):
        db6.add(other, scan_id="Fadul 1-2", preprocess=False)
    assert len(db6.list()) == 6
    db6.add(other, scan_id="1-1 copy", preprocess=False)
    assert len(db6.list()) == 7


def test_remove_is_audited_and_soft(db6, sample):
    db6.remove("Fadul 1-2", reason="entered twice")
    hits = db6.search(sample[0], k=5, preprocess=False, rerank=0)
    assert "Fadul 1-2" not in [h.scan_id for h in hits]
    assert [r["scan_id"] for r in db6.list(include_removed=True) if r["removed_at"]] == ["Fadul 1-2"]
    log = db6.audit_log()
    assert [e["action"] for e in log].count("add") == 6
    rm = [e for e in log if e["action"] == "remove"][0]
    assert rm["scan_id"] == "Fadul 1-2" and rm["parameters"]["reason"] == "entered twice"
    assert rm["time"] and rm["library_version"]
    add = [e for e in log if e["action"] == "add"][0]
    assert add["parameters"]["signature"]["version"] and add["parameters"]["sha256"]
    with pytest.raises(DatabaseError):
        db6.remove("Fadul 1-2")
    # stored file kept; the same scan may be added again
    assert _in_sync(db6.verify())
    db6.add(sample[1], preprocess=False)
    assert db6.search(sample[0], k=1, preprocess=False, rerank=0)[0].scan_id == "Fadul 1-2"


def test_reopen_persists_and_readonly(db6, sample, tmp_path):
    before = [h.scan_id for h in db6.search(sample[3], k=5, preprocess=False, rerank=0)]
    db6.close()
    ro = CaseDatabase(tmp_path / "db", readonly=True)
    assert [h.scan_id for h in ro.search(sample[3], k=5, preprocess=False, rerank=0)] == before
    with pytest.raises(DatabaseError, match="read-only"):
        ro.add(sample[0], preprocess=False)
    with pytest.raises(DatabaseError):
        ro.remove("Fadul 1-1")
    with pytest.raises(DatabaseError, match="not a case database"):
        CaseDatabase(tmp_path / "nothing", create=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DatabaseError, match="not empty"):
        CaseDatabase(tmp_path / "full")


def test_corrupt_files_rejected_without_touching_the_store(db6, tmp_path):
    path = tmp_path / "db"
    before = _snapshot(path)
    bad = tmp_path / "bad.x3p"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    good = datasets.fadul_paths("processed")[0].read_bytes()
    trunc = tmp_path / "truncated.x3p"
    trunc.write_bytes(good[: len(good) // 2])
    empty = tmp_path / "empty.x3p"
    empty.write_bytes(b"")
    for f in (bad, trunc, empty, tmp_path / "missing.x3p"):
        with pytest.raises(ScanReadError):
            db6.add(f, preprocess=False)
    with pytest.raises(BallisticsError):
        db6.add(np.zeros((5, 5)), preprocess=False)  # type: ignore[arg-type]
    assert _snapshot(path) == before


def test_index_repaired_on_open(db6, sample, tmp_path):
    path = tmp_path / "db"
    idx_file = path / "index" / "breech_face.faiss"
    stale = idx_file.read_bytes(), (path / "index" / "breech_face.faiss.json").read_bytes()
    extra = sample[0].derive(sample[0].data + 2e-9, "offset", {})
    db6.add(extra, scan_id="extra", preprocess=False)
    db6.close()
    # 1. an index that lags the catalogue (as after a crash between commit and index write)
    idx_file.write_bytes(stale[0])
    (path / "index" / "breech_face.faiss.json").write_bytes(stale[1])
    v = CaseDatabase(path, readonly=True).verify()
    assert v["ok"] and not v["index_in_sync"] and v["index_lag"]["breech_face"]["missing"] == 1
    db = CaseDatabase(path)
    assert _in_sync(db.verify()) and db.stats()["index"]["breech_face"]["count"] == 7
    assert any(e["action"] == "repair_index" for e in db.audit_log())
    db.close()
    # 2. a corrupt index file; 3. a missing one
    idx_file.write_bytes(b"garbage")
    db = CaseDatabase(path)
    assert _in_sync(db.verify()) and db.stats()["index"]["breech_face"]["count"] == 7
    db.close()
    idx_file.unlink()
    db = CaseDatabase(path)
    assert _in_sync(db.verify())
    assert db.search(sample[0], k=1, preprocess=False, rerank=0)[0].scan_id in ("Fadul 1-2", "extra")
    # explicit rebuild, with another kind
    out = db.rebuild_index(kind="hnsw")
    assert out["breech_face"]["kind"] == "hnsw" and out["breech_face"]["count"] == 7
    db.remove("extra")
    assert _in_sync(db.verify())
    assert "extra" not in [h.scan_id for h in db.search(sample[0], k=7, preprocess=False, rerank=0)]


def test_failed_index_write_after_commit_is_repaired(db6, sample, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = _faiss_index.atomic_write_bytes

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 2:  # side-car written, index write "crashes"
            raise OSError("disk full (simulated)")
        return real(path, data)

    monkeypatch.setattr(_faiss_index, "atomic_write_bytes", flaky)
    extra = sample[1].derive(sample[1].data + 3e-9, "offset", {})
    assert db6.add(extra, scan_id="extra", preprocess=False) == "extra"  # committed: the add stands
    monkeypatch.setattr(_faiss_index, "atomic_write_bytes", real)
    assert not db6.verify()["index_in_sync"]  # index file behind its side-car
    assert db6.search(sample[1], k=1, preprocess=False, rerank=0)[0].scan_id in ("extra", "Fadul 1-1")
    db6.close()
    db = CaseDatabase(tmp_path / "db")
    assert _in_sync(db.verify()) and db.stats()["index"]["breech_face"]["count"] == 7


def test_preprocess_with_standin_extractor(tmp_path, sample):
    calls = []

    def extract_bf(scan):
        calls.append(scan.name)
        return scan.derive(scan.data[10:-10, 10:-10], "fake_extract", {"crop": 10})

    def extract_fp(scan):
        raise __import__("ballistics").RegionNotFoundError("no firing pin in a breech-face-only scan")

    db = CaseDatabase(tmp_path / "db", extractors={"breech_face": extract_bf, "firing_pin": extract_fp})
    db.add(sample[0], case_id="C", preprocess=True)
    db.add(sample[1], case_id="C", preprocess=True)
    assert calls == ["Fadul 1-1", "Fadul 1-2"]
    bf = db.load_scan("Fadul 1-1", "breech_face")
    assert bf.shape == (sample[0].shape[0] - 20, sample[0].shape[1] - 20)
    np.testing.assert_array_equal(db.load_scan("Fadul 1-1", "original").data, sample[0].data)
    log = [e for e in db.audit_log() if e["action"] == "add"][0]
    assert "firing_pin_error" in log["parameters"] and log["parameters"]["parts"] == ["breech_face"]
    hits = db.search(sample[0], k=5, preprocess=True, rerank=0)
    assert [h.scan_id for h in hits] == ["Fadul 1-2"]  # the query's own scan is left out


@pytest.mark.slow
def test_preprocess_with_real_extraction_fuses_parts(tmp_path):
    """Raw whole-primer scans: breech face and firing pin are extracted, signed separately, fused."""
    raw = datasets.fadul("raw")
    db = CaseDatabase(tmp_path / "db")
    for s in raw[1:]:
        db.add(s, case_id="raw", preprocess=True)
    st = db.stats()
    assert st["index"]["breech_face"]["count"] == 2
    assert st["index"].get("firing_pin", {}).get("count", 0) == 2
    hits = db.search(raw[0], k=2, preprocess=True, rerank=0)
    assert {h.scan_id for h in hits} == {"Fadul 1-2", "Fadul 2-1"}
    assert db.load_scan("Fadul 1-2", "firing_pin").shape[0] < raw[1].shape[0]
    assert db.verify(deep=True)["ok"]


def test_large_index_is_saved_lazily_and_patched_on_open(tmp_path, sample, entries, monkeypatch):
    """Big indices are not rewritten after every add; readers and re-opens patch the lag."""
    from ballistics.database import _search_index

    monkeypatch.setattr(_search_index, "SAVE_ALWAYS_BELOW", 0)
    monkeypatch.setattr(_search_index, "SAVE_EVERY", 4)
    db = CaseDatabase(tmp_path / "db")
    for s, e in zip(sample[:3], entries[:3]):
        db.add(e, scan_id=s.exhibit_id)
    v = db.verify()
    assert v["ok"] and v["index_lag"]["breech_face"]["missing"] == 2  # only the first add was saved
    reader = CaseDatabase(tmp_path / "db", readonly=True)
    assert len(reader.search(sample[0], k=5, preprocess=False, rerank=0)) == 2  # sees all 3 (minus itself)
    db.add(entries[3], scan_id="Fadul 2-2")
    assert db.verify()["index_lag"]["breech_face"]["missing"] == 3
    db.add(entries[4], scan_id="Fadul 3-1")  # 4th change since the last save: written
    assert _in_sync(db.verify())
    db.add(entries[5], scan_id="Fadul 3-2")
    assert not db.verify()["index_in_sync"]
    db.close()  # flushes
    assert _in_sync(CaseDatabase(tmp_path / "db", readonly=True).verify())


def test_cli_add_jobs_computes_entries_on_batch_workers(tmp_path, capsys, monkeypatch):
    """``db add --jobs 2``: entries computed by ballistics.batch.map_scans in worker processes, written by
    this process; the catalogue equals ``--jobs 1``'s (in process, no cluster)."""
    import json
    import os

    from ballistics import batch
    from ballistics.cli import main

    calls = []
    real_map_scans = batch.map_scans

    def spy(*a, **kw):
        res = real_map_scans(*a, **kw)
        calls.append((kw, res))
        return res

    monkeypatch.setattr(batch, "map_scans", spy)
    files = [str(p) for p in datasets.fadul_paths("processed")[:3]]
    bad = tmp_path / "bad.x3p"
    bad.write_bytes(b"not a scan")
    inputs = [files[0], str(bad), files[1], str(tmp_path / "missing.x3p"), files[2]]
    got = {}
    for jobs in (1, 2):
        path = str(tmp_path / f"db{jobs}")
        assert main(["db", "init", path]) == 0
        capsys.readouterr()
        rc = main(["db", "add", path, *inputs, "--no-preprocess", "--jobs", str(jobs), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == 2
        con = sqlite3.connect(Path(path) / "catalogue.sqlite")
        got[jobs] = {
            "out": out,
            "scans": con.execute("SELECT num, scan_id, sha256, exhibit_id, preprocess, source_sha256, shape, "
                                 "spacing FROM scans ORDER BY num").fetchall(),
            "signatures": con.execute("SELECT num, part, version, dim, vector FROM signatures "
                                      "ORDER BY num, part").fetchall(),
            "blobs": con.execute("SELECT num, name, sha256 FROM blobs ORDER BY num, name").fetchall(),
        }
        con.close()
        if jobs == 1:
            assert calls == []  # in process, no cluster
    (kw, res), = calls  # one chunk: the 4 files that exist (the missing one fails in this process)
    assert kw["on_error"] == "record" and kw["client"] is not None
    assert [r.error is None for r in res] == [True, False, True, True]
    assert all(int(r.worker.rsplit(":", 1)[1]) != os.getpid() for r in res)
    one, two = got[1], got[2]
    assert [a["scan_id"] for a in one["out"]["added"]] == [Path(f).stem for f in files[:3]]
    assert [f["file"] for f in one["out"]["failed"]] == [str(bad), str(tmp_path / "missing.x3p")]
    assert two["out"] == one["out"]
    assert len(one["signatures"]) == 3 and len(one["blobs"]) >= 3
    for table in ("scans", "signatures", "blobs"):
        assert two[table] == one[table], table
