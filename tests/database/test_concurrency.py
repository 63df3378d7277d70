"""Durability and concurrency of CaseDatabase, with real separate processes.

* an ingest killed with SIGKILL at named points inside an add leaves a database that
  opens and is consistent (catalogue and index agree, no half-added scan);
* a reader searches while a writer is stopped inside each add (before its files, in
  its open transaction, after its commit) and sees exactly the committed scans;
* two writers add at the same time (one at a time through the lock);
* the ``ballistics db`` command line end to end, including a corrupt file.

Writers stop at the named points of ``benchmarks/kill_campaign.py`` and wait for the
test, so nothing asserted depends on timing.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ballistics import datasets
from ballistics.database import CaseDatabase

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_campaign.py"
_spec = importlib.util.spec_from_file_location("kill_campaign", _SCRIPT)
_campaign = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("kill_campaign", _campaign)  # dataclasses look their module up
_spec.loader.exec_module(_campaign)

#: A writer process: adds offset copies of the six bundled scans (distinct hashes, each with
#: its own evidence bytes), ``count`` of them or forever; prints ``i`` after add ``i``.
#: Options (JSON): ``lazy`` writes the index only every 5 changes, as for large indices;
#: ``stops`` maps an add's number to a named point inside it where the writer prints
#: ``AT <point>`` and waits for ``go``.
WRITER = _campaign.STOP_CODE + r"""
import json
from ballistics import datasets
from ballistics.database import CaseDatabase, prepare_entry
path, prefix, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = json.loads(sys.argv[5])
if opts.get("lazy"):
    from ballistics.database import _search_index as _sync
    _sync.SAVE_ALWAYS_BELOW, _sync.SAVE_EVERY = 0, 5
stops = {int(k): v for k, v in opts.get("stops", {}).items()}
base = [prepare_entry(s, preprocess=False) for s in datasets.fadul("processed")]
db = CaseDatabase(path)
i = 0
while count < 0 or i < count:
    if i in stops:
        arm(stops[i])
    e = base[i % 6]
    s = e.scan.derive(e.scan.data + (i + 1) * 1e-10 + seed * 1e-6, "test_offset", {"i": i})
    e2 = type(e)(scan=s, surfaces={"breech_face": s}, signatures=e.signatures, preprocess=False,
                 evidence=f"evidence of {prefix}{i}".encode())
    db.add(e2, scan_id=f"{prefix}{i}", case_id=prefix, firearm_id=s.metadata.get("firearm"))
    print(i, flush=True)
    i += 1
"""


_SEEDS = iter(range(1, 1_000_000))


def _spawn(path: Path, prefix: str, count: int, lazy: bool = False,
           stops: dict[int, str] | None = None) -> subprocess.Popen:
    """Start a writer process; each gets its own height offset, so no two scans share a hash.

    ``stops`` maps an add's number to the named point where the writer waits inside it.
    """
    opts = {"lazy": lazy, "stops": {i: _campaign.stop_spec(name) for i, name in (stops or {}).items()}}
    args = [sys.executable, "-c", WRITER, str(path), prefix, str(count), str(next(_SEEDS)), json.dumps(opts)]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(p: subprocess.Popen) -> str:
    """The writer's next output line (fails with its errors if it ended)."""
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return line.strip()


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
    total = 0
    # (adds acknowledged first, named point inside the next add, whether that add committed there)
    rounds = [(2, "add/in-transaction", False),
              (3, "add/committed", True),  # with a lazily written index: the kill leaves it lagging
              (2, "add/files-written", False)]
    for round_, (acked, point, committed) in enumerate(rounds):
        lazy = round_ == 1
        p = _spawn(path, f"k{round_}-", -1, lazy=lazy, stops={acked: point})
        assert [_line(p) for _ in range(acked)] == [str(i) for i in range(acked)]
        assert _line(p) == f"AT {point}"
        p.kill()
        p.communicate()
        assert p.returncode == -signal.SIGKILL
        if lazy:  # the index file lags the catalogue until the next open patches it
            before = CaseDatabase(path, readonly=True).verify()
            assert before["ok"] and not before["index_in_sync"]
        db = _check_consistent(path)
        n = db.stats()["scans"]
        assert n == total + acked + committed
        assert (db.catalogue.scan_by_id(f"k{round_}-{acked}") is not None) is committed
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


def _search_ids(reader: CaseDatabase, query) -> list[str]:
    hits = reader.search(query, k=20, preprocess=False, rerank=0)
    ids = [h.scan_id for h in hits]
    assert len(ids) == len(set(ids))
    for h in hits:  # everything found is really in the catalogue
        assert reader.catalogue.scan_by_id(h.scan_id) is not None
    return ids


@pytest.mark.slow
def test_search_while_adding(tmp_path):
    path = tmp_path / "db"
    db0 = CaseDatabase(path)
    sample = datasets.fadul("processed")
    for s in sample[:2]:
        db0.add(s, preprocess=False)
    db0.close()
    # the writer stops inside every add, holding the writer lock, at one of three points
    cycle = [("add/before-files", False), ("add/in-transaction", False), ("add/committed", True)]
    plan = [cycle[i % 3] for i in range(10)]
    writer = _spawn(path, "w", 10, stops={i: name for i, (name, _) in enumerate(plan)})
    reader = CaseDatabase(path, readonly=True)
    try:
        for i, (point, committed) in enumerate(plan):
            assert _line(writer) == f"AT {point}"
            inside = _search_ids(reader, sample[3])  # searched while the writer is inside add i
            assert len(inside) == 2 + i + committed  # exactly the committed scans
            assert (f"w{i}" in inside) is committed
            assert all(f"w{j}" in inside for j in range(i))  # every earlier add
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert _line(writer) == str(i)  # (the writer then goes on into the next add)
        writer.stdin.close()
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        for pipe in (writer.stdin, writer.stdout, writer.stderr):
            pipe.close()
    final = _search_ids(reader, sample[3])
    assert len(final) == 12  # 2 + 10: the reader sees every committed scan
    reader.close()
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
    assert main(["db", "search", path, files[0], "-k", "2", "--rerank", "0", "--no-preprocess", "--threads", "2",
                 "--json"]) == 0
    res2 = json.loads(capsys.readouterr().out)   # the same list on two threads, and it says so
    assert [h["scan_id"] for h in res2["hits"]] == [h["scan_id"] for h in res["hits"]]
    assert res2["timings"]["stage2"]["threads"] == 2
    assert main(["db", "search", path, files[0], "--threads", "0"]) == 2
    assert "threads" in capsys.readouterr().err
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
