"""CaseDatabase integrity (issue 9): read-only opens, audit hash chain, evidence files,
stage-2 blobs, linear verify, threads, IVF retraining, portability of the lock."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ballistics import DatabaseError, datasets
from ballistics.database import CaseDatabase, PreparedEntry, _search_index, prepare_entry
from ballistics.reading import scan_from_array
from ballistics.retrieval import _faiss_index, _stage2, signature_dim


def _tiny(i: int, sig: np.ndarray | None = None) -> PreparedEntry:
    """A small synthetic entry with a given (or random) signature: fast bookkeeping tests."""
    rng = np.random.default_rng(i)
    s = scan_from_array(rng.normal(0, 1e-6, (24, 24)), 6.25e-6, name=f"tiny{i}")
    v = rng.normal(size=signature_dim()).astype(np.float32) if sig is None else sig
    v /= np.linalg.norm(v)
    return PreparedEntry(scan=s, surfaces={"breech_face": s}, signatures={"breech_face": v}, preprocess=False)


def _hashes(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def db3(tmp_path, sample, entries):
    db = CaseDatabase(tmp_path / "db")
    for s, e in zip(sample[:3], entries[:3]):
        db.add(e, scan_id=s.exhibit_id, case_id="C")
    return db


# ---------------------------------------------------------------- read-only
def test_readonly_changes_no_file(db3, sample, tmp_path):
    path = tmp_path / "db"
    db3.close()
    before = _hashes(path)
    ro = CaseDatabase(path, readonly=True)
    hits = ro.search(sample[0], k=2, preprocess=False, rerank=0)
    assert hits[0].scan_id == "Fadul 1-2"
    assert ro.verify(deep=True)["ok"] and ro.stats()["scans"] == 3 and len(ro.audit_log()) == 4
    with pytest.raises(DatabaseError, match="read-only"):
        ro.remove("Fadul 1-1")
    with pytest.raises(DatabaseError, match="read-only"):
        ro.rebuild_index()
    ro.close()
    assert _hashes(path) == before  # every file byte-identical, no -wal/-shm created


def test_readonly_beside_a_live_writer_touches_no_data(db3, sample, entries, tmp_path):
    """With a writer open, SQLite's shared-memory files may change; catalogue, scans and index do not."""
    path = tmp_path / "db"
    data = {k: v for k, v in _hashes(path).items() if not k.endswith(("-wal", "-shm"))}
    ro = CaseDatabase(path, readonly=True)
    assert len(ro.search(sample[0], k=5, preprocess=False, rerank=0)) == 2
    after = {k: v for k, v in _hashes(path).items() if not k.endswith(("-wal", "-shm"))}
    assert after == data
    db3.add(entries[3], scan_id="Fadul 2-2")  # the reader sees the writer's later commit
    assert "Fadul 2-2" in [h.scan_id for h in ro.search(sample[0], k=5, preprocess=False, rerank=0)]
    ro.close()


def test_idle_readonly_reader_sees_later_commits(db3, entries, tmp_path):
    """Opened on an in-memory copy (no writer around), it reads live once a writer commits."""
    path = tmp_path / "db"
    db3.close()
    ro = CaseDatabase(path, readonly=True)
    assert ro.catalogue._memory is not None  # the copy: nothing on disk is touched
    assert len(ro.list()) == 3
    w = CaseDatabase(path)
    w.add(entries[3], scan_id="Fadul 2-2")
    assert "Fadul 2-2" in {r["scan_id"] for r in ro.list()}
    assert ro.catalogue._memory is None
    assert "Fadul 2-2" in [h.scan_id for h in ro.search(entries[0], k=5, rerank=0)]
    w.close()
    ro.close()


# ---------------------------------------------------------------- audit chain
def _edit(path: Path, sql: str) -> None:
    """Change the catalogue behind the library's back (as a forger with SQLite would)."""
    con = sqlite3.connect(path / "catalogue.sqlite")
    con.executescript(sql)
    con.commit()
    con.close()


@pytest.mark.parametrize("edit, expect", [
    ("UPDATE audit SET parameters='{\"sha256\": \"forged\"}' WHERE id=2", "content was edited"),
    ("UPDATE audit SET scan_id='someone else' WHERE id=3", "content was edited"),
    ("DELETE FROM audit WHERE id=2", "chain broken"),
    ("DELETE FROM audit WHERE id=(SELECT max(id) FROM audit)", "deleted at the end"),
    ("UPDATE audit SET id=-1 WHERE id=2; UPDATE audit SET id=2 WHERE id=3; UPDATE audit SET id=3 WHERE id=-1",
     "content was edited"),  # two entries swapped
])
def test_audit_chain_detects_edits(db3, tmp_path, edit, expect):
    path = tmp_path / "db"
    v = db3.verify()
    assert v["ok"] and v["audit_ok"] and v["audit_entries"] == 4  # init + 3 adds
    db3.close()
    _edit(path, edit)
    v = CaseDatabase(path, readonly=True).verify()
    assert not v["ok"] and not v["audit_ok"]
    assert any(expect in p for p in v["problems"]), v["problems"]


def test_audit_chain_survives_changes_and_reopen(db3, tmp_path):
    db3.remove("Fadul 1-2", reason="test")
    db3.rebuild_index()
    db3.close()
    db = CaseDatabase(tmp_path / "db")
    v = db.verify()
    assert v["audit_ok"] and v["audit_entries"] == 6
    rows = db.catalogue.audit_rows()
    assert all(r[6] == p[7] for p, r in zip(rows, rows[1:]))  # each names its predecessor's hash


# ---------------------------------------------------------------- evidence file
def test_evidence_kept_byte_for_byte_and_deep_verify(tmp_path):
    src = datasets.fadul_paths("processed")[0]
    db = CaseDatabase(tmp_path / "db")
    sid = db.add(src, preprocess=False)
    raw = src.read_bytes()
    assert db.evidence_bytes(sid) == raw
    files = db.catalogue.files_of(db.catalogue.scan_by_id(sid)["num"])
    assert files["evidence"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert files["evidence"]["path"].startswith(f"scans/{files['evidence']['sha256'][:2]}/")
    assert db.verify(deep=True)["ok"]
    ev = tmp_path / "db" / files["evidence"]["path"]
    data = bytearray(ev.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ev.write_bytes(bytes(data))
    assert db.verify()["ok"]  # shallow: the file is there
    v = db.verify(deep=True)
    assert not v["ok"] and any("evidence file" in p and "altered" in p for p in v["problems"])
    with pytest.raises(DatabaseError, match="altered"):
        db.evidence_bytes(sid)


# ---------------------------------------------------------------- stage-2 blobs
def _row_means(scan) -> bytes:
    return np.nanmean(scan.data, axis=1).astype(np.float32).tobytes()


def test_blobs_stored_at_ingest_rebuilt_and_verified(tmp_path, sample, monkeypatch):
    db = CaseDatabase(tmp_path / "db")
    monkeypatch.setattr(_stage2, "ingest_blobs", lambda: {})
    db.add(prepare_entry(sample[0], preprocess=False), scan_id="old")  # before this blob existed
    monkeypatch.setattr(_stage2, "ingest_blobs", lambda: {"row_means": _row_means})
    assert db.verify()["missing_blobs"] == 1
    sid = db.add(prepare_entry(sample[1], preprocess=False), scan_id="new")
    assert db.get_blob(sid, "row_means") == _row_means(sample[1])
    assert db.get_blob("old", "row_means") is None
    assert db.rebuild_blobs() == {"scans": 1, "blobs": 1}
    assert db.get_blob("old", "row_means") == _row_means(sample[0])
    v = db.verify(deep=True)
    assert v["ok"] and v["blobs"] == 2 and v["missing_blobs"] == 0
    assert db.rebuild_blobs() == {"scans": 0, "blobs": 0}  # nothing left to do
    db.close()
    _edit(tmp_path / "db", "UPDATE blobs SET data=x'00' WHERE name='row_means' AND num=1")
    v = CaseDatabase(tmp_path / "db", readonly=True).verify(deep=True)
    assert not v["ok"] and any("blob 'row_means' was altered" in p for p in v["problems"])


def test_failing_blob_function_adds_nothing(tmp_path, sample, monkeypatch):
    def broken(scan):
        raise ValueError("stage 2 broke")
    db = CaseDatabase(tmp_path / "db")
    monkeypatch.setattr(_stage2, "ingest_blobs", lambda: {"x": broken})
    with pytest.raises(DatabaseError, match="stage-2 blob 'x'.*stage 2 broke"):
        db.add(sample[0], preprocess=False)
    assert db.list() == [] and db.verify()["audit_entries"] == 1


# ---------------------------------------------------------------- verify is linear
def _statements(db: CaseDatabase, deep: bool = False) -> int:
    n = [0]
    db.catalogue.con.set_trace_callback(lambda s: n.__setitem__(0, n[0] + 1))
    db.verify(deep=deep)
    db.catalogue.con.set_trace_callback(None)
    return n[0]


def test_verify_runs_a_fixed_number_of_queries(tmp_path):
    db = CaseDatabase(tmp_path / "db")
    for i in range(3):
        db.add(_tiny(i), scan_id=f"s{i}")
    few = _statements(db)
    for i in range(3, 15):
        db.add(_tiny(i), scan_id=f"s{i}")
    assert _statements(db) == few  # one query per table, whatever the number of scans
    assert db.verify(deep=True)["ok"]


# ---------------------------------------------------------------- threads
def test_threads_share_one_database(tmp_path, sample, entries):
    db = CaseDatabase(tmp_path / "db")
    for s, e in zip(sample[:2], entries[:2]):
        db.add(e, scan_id=s.exhibit_id)
    errors: list[BaseException] = []
    seen: list[int] = []

    def reader():
        try:
            for _ in range(15):
                seen.append(len(db.search(entries[0], k=10, rerank=0)))
                db.verify()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(lo):
        try:
            for i in range(lo, lo + 4):
                db.add(_tiny(i, entries[i % 6].signatures["breech_face"].copy()), scan_id=f"t{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=writer, args=(lo,))
                                                                 for lo in (0, 100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    assert len(db.list()) == 10 and max(seen) <= 9
    v = db.verify(deep=True)
    assert v["ok"] and v["index_in_sync"] and v["audit_entries"] == 11


# ---------------------------------------------------------------- IVF retraining
def test_ivf_retrained_after_fourfold_growth(tmp_path, monkeypatch):
    monkeypatch.setattr(_search_index, "IVF_MIN", 16)
    db = CaseDatabase(tmp_path / "db", index_kind="ivf")
    for i in range(20):
        db.add(_tiny(i), scan_id=f"s{i}")
    out = db.rebuild_index()
    assert out["breech_face"]["kind"] == "ivf" and out["breech_face"]["trained_size"] == 20
    for i in range(20, 79):
        db.add(_tiny(i), scan_id=f"s{i}")
    assert db.stats()["index"]["breech_face"]["trained_size"] == 20  # 79 < 4 x 20: not yet
    db.add(_tiny(79), scan_id="s79")
    assert db.stats()["index"]["breech_face"]["trained_size"] == 80
    log = [e for e in db.audit_log() if e["action"] == "rebuild_index"]
    assert "grew from 20 trained to 80" in log[-1]["parameters"]["reason"]
    db.close()
    idx = _faiss_index.SignatureIndex.load(tmp_path / "db" / "index" / "breech_face.faiss")
    assert idx.trained_size == 80 and not idx.needs_retrain


# ---------------------------------------------------------------- portability
def test_index_package_imports_without_fcntl():
    """The writer lock is filelock's, so ballistics.database imports where fcntl does not exist."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import ballistics.database._lock, ballistics.database._database\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
