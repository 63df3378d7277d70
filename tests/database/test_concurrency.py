"""Durability and concurrency of CaseDatabase, with real separate processes.

* an ingest killed with SIGKILL at random moments leaves a database that opens and is
  consistent (catalogue and index agree, no half-added scan);
* a reader searches while a writer adds;
* two writers add at the same time (one at a time through the lock);
* the ``ballistics db`` command line end to end, including a corrupt file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ballistics import datasets
from ballistics.database import CaseDatabase

#: A writer process: adds offset copies of the six bundled scans (distinct hashes) forever.
WRITER = r"""
import sys
from ballistics import datasets
from ballistics.database import CaseDatabase, prepare_entry
path, prefix, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if len(sys.argv) > 5:  # "lazy": write the index only every 5 changes, as for large indices
    from ballistics.database import _search_index as _sync
    _sync.SAVE_ALWAYS_BELOW, _sync.SAVE_EVERY = 0, 5
base = [prepare_entry(s, preprocess=False) for s in datasets.fadul("processed")]
db = CaseDatabase(path)
i = 0
while count < 0 or i < count:
    e = base[i % 6]
    s = e.scan.derive(e.scan.data + (i + 1) * 1e-10 + seed * 1e-6, "test_offset", {"i": i})
    e2 = type(e)(scan=s, surfaces={"breech_face": s}, signatures=e.signatures, preprocess=False)
    db.add(e2, scan_id=f"{prefix}{i}", case_id=prefix, firearm_id=s.metadata.get("firearm"))
    print(i, flush=True)
    i += 1
"""


_SEEDS = iter(range(1, 1_000_000))


def _spawn(path: Path, prefix: str, count: int, lazy: bool = False) -> subprocess.Popen:
    """Start a writer process; each gets its own height offset, so no two scans share a hash."""
    args = [sys.executable, "-c", WRITER, str(path), prefix, str(count), str(next(_SEEDS))] + (["lazy"] if lazy else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(path: Path) -> CaseDatabase:
    db = CaseDatabase(path)  # opening repairs a lagging index
    v = db.verify()
    assert v["ok"] and v["index_in_sync"], (v["problems"], v["index_lag"])
    st = db.stats()
    n = st["scans"]
    assert st["index"].get("breech_face", {}).get("count", 0) == n
    for row in db.list():  # no half-added scan: every row has its files and signature
        files = db.catalogue.files_of(db.catalogue.scan_by_id(row["scan_id"])["num"])
        assert {"original", "breech_face"} <= set(files)
        assert all((path / f["path"]).exists() for f in files.values())
    return db


@pytest.mark.slow
def test_kill_during_ingest_leaves_consistent_database(tmp_path):
    path = tmp_path / "db"
    CaseDatabase(path).close()
    rng = np.random.default_rng(11)
    total = 0
    for round_ in range(3):
        lazy = round_ == 1  # one round with lazily written index: the kill leaves it lagging
        p = _spawn(path, f"k{round_}-", -1, lazy=lazy)
        # let it add a few scans, then kill it at a random moment inside the next add
        for _ in range(3 if lazy else 2):
            line = p.stdout.readline()
            assert line, p.stderr.read()
        time.sleep(float(rng.uniform(0.0, 0.12)))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        if lazy:  # the index file lags the catalogue until the next open patches it
            before = CaseDatabase(path, readonly=True).verify()
            assert before["ok"] and not before["index_in_sync"]
        db = _check_consistent(path)
        n = db.stats()["scans"]
        assert n >= total + 2
        total = n
        db.close()
    # and the database keeps working: add, search, verify deeply
    db = CaseDatabase(path)
    s = datasets.fadul("processed")[0]
    db.add(s, scan_id="after", preprocess=False)
    hits = db.search(s, k=3, preprocess=False, rerank=0)
    assert len(hits) == 3 and all(db.catalogue.scan_by_id(h.scan_id) for h in hits)
    v = db.verify(deep=True)
    assert v["ok"], v["problems"]
    add_log = [e for e in db.audit_log() if e["action"] == "add"]
    assert len(add_log) == db.stats()["scans"]  # every stored scan has its audit entry, none extra


@pytest.mark.slow
def test_search_while_adding(tmp_path):
    path = tmp_path / "db"
    db0 = CaseDatabase(path)
    sample = datasets.fadul("processed")
    for s in sample[:2]:
        db0.add(s, preprocess=False)
    db0.close()
    writer = _spawn(path, "w", 10)
    reader = CaseDatabase(path, readonly=True)
    seen_counts = set()
    searches = 0
    while writer.poll() is None:
        hits = reader.search(sample[3], k=20, preprocess=False, rerank=0)
        searches += 1
        ids = [h.scan_id for h in hits]
        assert len(ids) == len(set(ids))
        for h in hits:  # everything found is really in the catalogue
            assert reader.catalogue.scan_by_id(h.scan_id) is not None
        seen_counts.add(len(hits))
        time.sleep(0.02)
    assert writer.returncode == 0, writer.stderr.read()
    final = reader.search(sample[3], k=20, preprocess=False, rerank=0)
    assert len(final) == 12  # 2 + 10: the reader sees every committed scan
    assert searches >= 3 and len(seen_counts) >= 2  # it searched while the writer added
    assert _check_consistent(path).stats()["scans"] == 12


@pytest.mark.slow
def test_two_writers_take_turns(tmp_path):
    path = tmp_path / "db"
    CaseDatabase(path).close()
    a, b = _spawn(path, "a", 4), _spawn(path, "b", 4)
    for p in (a, b):
        p.wait(timeout=120)
        assert p.returncode == 0, p.stderr.read()
    db = _check_consistent(path)
    assert sorted(r["scan_id"] for r in db.list()) == sorted([f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)])


def test_cli_end_to_end(tmp_path, capsys):
    from ballistics.cli import main

    path = str(tmp_path / "db")
    files = [str(p) for p in datasets.fadul_paths("processed")]
    assert main(["db", "init", path]) == 0
    assert main(["db", "init", path]) == 2  # exists already
    bad = tmp_path / "bad.x3p"
    bad.write_bytes(b"not a scan")
    capsys.readouterr()
    rc = main(["db", "add", path, *files[:4], str(bad), "--case", "C7", "--no-preprocess", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and len(out["added"]) == 4 and out["failed"][0]["file"] == str(bad)
    assert main(["db", "add", path, files[0], files[4], "--no-preprocess", "--firearm", "slide-3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ids = [Path(f).stem for f in files]  # a file's ids come from the caller, else its name
    assert out["already_stored"][0]["scan_id"] == ids[0] and out["added"][0]["scan_id"] == ids[4]
    assert main(["db", "list", path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and rows[0]["case_id"] == "C7" and rows[4]["firearm_id"] == "slide-3"
    assert main(["db", "search", path, files[0], "-k", "2", "--rerank", "0", "--no-preprocess", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in res["hits"]] == [1, 2] and res["hits"][0]["scan_id"] == ids[1]
    assert main(["db", "search", path, files[0], "-k", "2", "--rerank", "0", "--no-preprocess"]) == 0
    assert ids[1] in capsys.readouterr().out
    assert main(["db", "remove", path, ids[1]]) == 0
    assert main(["db", "remove", path, ids[1]]) == 2
    assert main(["db", "list", path]) == 0
    assert "4 scan(s)" in capsys.readouterr().out
    assert main(["db", "verify", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["db", "verify", path, "--deep", "--json"]) == 0  # every evidence file and surface re-hashed
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] is True and v["audit_ok"] is True and v["scans"] == 4
    assert main(["db", "stats", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scans"] == 4
    assert main(["db", "rebuild", path, "--json"]) == 0
    assert main(["db", "search", str(tmp_path / "nope"), files[0]]) == 2
