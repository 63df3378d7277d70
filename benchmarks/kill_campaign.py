"""Kill campaign: SIGKILL a writer at random moments, then check nothing acknowledged was lost.

Each round starts a child process that opens the case database and runs one kind of
operation -- ``add`` (three new scans), ``remove`` (two stored scans) or ``rebuild``
(the FAISS index, twice, with different kinds) -- printing ``ACK <op> <id>`` after
each call returns.  The parent waits a random time after the child says it is ready,
sends SIGKILL, then opens the database (which repairs a lagging index) and deep-
verifies it: every file re-hashed, the audit chain checked, the index compared with
the catalogue.  An acknowledged add must be present and readable (surface and
evidence bytes), an acknowledged remove must be gone; an unacknowledged operation may
have happened or not, but never half.

The same child also stops at **named points** (:data:`POINTS`) inside its last
operation: before the files are written, after the files but before the SQLite
commit, inside the open transaction, after the commit but before the index update,
between the index's side-car and its data, before the audit journal is appended, and
the corresponding moments of a remove and a rebuild.  The child reports ``AT <point>``
and waits on its standard input; the parent kills it exactly there (:func:`run_points`,
used by ``tests/database/test_kill_campaign.py``), or answers ``go`` to let it carry on.
Whether the interrupted operation took effect is then known for each point (it did iff
its transaction had committed).

Usage::

    python benchmarks/kill_campaign.py --rounds 100 [--seed 1] [--workdir DIR] [--points]

Prints one line per round (``--points``: first one line per named point) and a
summary; exit status 0 when every round survived with nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: Code the child runs to stop at a named point: ``arm(stop)`` wraps the callable named by
#: ``stop["target"]`` (``"module:Class.method"`` or ``"module:function"``) so that its first
#: call after arming prints ``AT <name>`` before or after the original runs, then waits for
#: a line on standard input: ``go`` carries on, anything else (or end of input) exits at once.
STOP_CODE = r"""
import functools, importlib, os, sys

def arm(stop):
    module, attr = stop["target"].split(":")
    owner = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    hit = []

    def halt():
        hit.append(True)
        print("AT", stop["name"], flush=True)
        if sys.stdin.readline().strip() != "go":
            os._exit(3)

    @functools.wraps(original)
    def wrapper(*a, **k):
        if hit:
            return original(*a, **k)
        if stop["when"] == "before":
            halt()
        out = original(*a, **k)
        if stop["when"] == "after":
            halt()
        return out

    setattr(owner, name, wrapper)
"""

CHILD = STOP_CODE + r"""
import pickle, time
from ballistics.database import CaseDatabase
db_path, job_path = sys.argv[1], sys.argv[2]
with open(job_path, "rb") as fh:
    job = pickle.load(fh)
db = CaseDatabase(db_path)
print("READY", flush=True)
t0 = time.monotonic()
items = job.get("entries", job.get("ids", job.get("kinds")))
for i, item in enumerate(items):
    if job.get("stop") and i == len(items) - 1:  # the named point lies inside the last operation
        arm(job["stop"])
    if job["op"] == "add":
        sid, entry = item
        db.add(entry, scan_id=sid, case_id="kill", firearm_id=entry.scan.metadata.get("firearm"))
    elif job["op"] == "remove":
        sid = item
        db.remove(sid, reason="kill campaign")
    else:
        sid = item
        db.rebuild_index(kind=item)
    print("ACK", job["op"], sid, flush=True)
db.close()
print("DONE", time.monotonic() - t0, flush=True)
"""

_STORE, _CAT = "ballistics.database._store:EvidenceStore", "ballistics.database._catalogue:Catalogue"
_INDEX, _AUDIT = "ballistics.database._search_index:SearchIndex", "ballistics.database._audit:AuditLog"
_FAISS = "ballistics.retrieval._faiss_index"

#: Named kill points: name -> (operation, target, "before" | "after", committed).  ``committed``
#: says whether the operation's catalogue transaction has committed when the child stops
#: there, so whether its change must be visible after the kill.
POINTS: dict[str, tuple[str, str, str, bool]] = {
    "add/before-files": ("add", f"{_STORE}.put_surface", "before", False),
    "add/files-written": ("add", f"{_STORE}.put_evidence", "after", False),
    "add/in-transaction": ("add", f"{_CAT}.bump_generation", "after", False),
    "add/committed": ("add", f"{_INDEX}.apply", "before", True),
    "add/index-half-saved": ("add", f"{_FAISS}:atomic_write_bytes", "after", True),  # side-car, not data
    "add/before-journal": ("add", f"{_AUDIT}.sync_journal", "before", True),
    "remove/before-transaction": ("remove", f"{_CAT}.mark_removed", "before", False),
    "remove/in-transaction": ("remove", f"{_CAT}.bump_generation", "after", False),
    "remove/committed": ("remove", f"{_INDEX}.apply", "before", True),
    "remove/index-half-saved": ("remove", f"{_FAISS}:atomic_write_bytes", "after", True),
    "remove/before-journal": ("remove", f"{_AUDIT}.sync_journal", "before", True),
    "rebuild/before-save": ("rebuild", f"{_FAISS}:SignatureIndex.save", "before", False),
    "rebuild/index-half-saved": ("rebuild", f"{_FAISS}:atomic_write_bytes", "after", False),
    "rebuild/index-saved": ("rebuild", f"{_CAT}.transaction", "before", False),
    "rebuild/in-transaction": ("rebuild", f"{_AUDIT}.append", "after", False),
    "rebuild/before-journal": ("rebuild", f"{_AUDIT}.sync_journal", "before", True),
}


def stop_spec(name: str) -> dict[str, str]:
    """The ``stop`` entry of a job (or of :data:`STOP_CODE`'s ``arm``) for point ``name``."""
    _, target, when, _ = POINTS[name]
    return {"name": name, "target": target, "when": when}


def child_env() -> dict[str, str]:
    """The environment of a child: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def start_child(path: Path, job: dict, workdir: Path) -> subprocess.Popen:
    """Start a child running ``job`` on the database at ``path`` (stdin, stdout, stderr piped)."""
    job_file = workdir / "job.pkl"
    with open(job_file, "wb") as fh:
        pickle.dump(job, fh)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(job_file)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


#: Rounds of each operation run to completion first, to measure how long it takes; later
#: kills fall uniformly within that duration.
CALIBRATION_ROUNDS = 1


@dataclass
class RoundResult:
    """Outcome of one round."""

    round: int
    op: str
    delay_s: float | None
    killed: bool
    mid_operation: bool
    acknowledged: list[str]
    ok: bool
    lost: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)


def base_entries(downsample: int = 4) -> list:
    """Prepared entries of the bundled processed sample, down-sampled for speed."""
    from ballistics import datasets
    from ballistics.database import prepare_entry
    from ballistics.reading import scan_from_array

    out = []
    for s, p in zip(datasets.fadul("processed"), datasets.fadul_paths("processed")):
        small = scan_from_array(s.data[::downsample, ::downsample], s.spacing[0] * downsample, name=s.name,
                                exhibit_id=s.exhibit_id, case_id=s.case_id)
        small.metadata["firearm"] = s.metadata.get("firearm")
        e = prepare_entry(small, preprocess=False)
        e.evidence = p.read_bytes()
        out.append(e)
    return out


def variant(base, i: int):
    """Entry ``i``: a base scan offset by a tiny height (new checksum), its own evidence bytes."""
    from ballistics.database import PreparedEntry

    e = base[i % len(base)]
    s = e.scan.derive(e.scan.data + (i + 1) * 1e-12, "kill_campaign_offset", {"i": i})
    s.metadata["firearm"] = e.scan.metadata.get("firearm")
    return PreparedEntry(scan=s, surfaces={"breech_face": s}, signatures=e.signatures, preprocess=False,
                         blobs=e.blobs, evidence=(e.evidence or b"") + f"\n% kill-campaign copy {i}\n".encode())


def check(path: Path, present: set[str], absent: set[str], evidence: dict[str, bytes]) -> tuple[bool, list, list,
                                                                                              list, list]:
    """Open, deep-verify; (ok, lost, resurrected, problems, repaired)."""
    from ballistics.database import CaseDatabase

    db = CaseDatabase(path)
    try:
        v = db.verify(deep=True)
        live = {r["scan_id"] for r in db.list()}
        lost = sorted(present - live)
        resurrected = sorted(absent & live)
        problems = list(v["problems"])
        if not v["index_in_sync"]:
            problems.append(f"index not in sync after open: {v['index_lag']}")
        for sid in sorted(present & live):
            try:
                db.load_scan(sid, "breech_face")
                if db.evidence_bytes(sid) != evidence[sid]:
                    problems.append(f"{sid}: evidence bytes differ")
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                problems.append(f"{sid}: unreadable ({exc})")
        repaired = list(db.stats().get("repaired_on_open", []))
    finally:
        db.close()
    return not problems and not lost and not resurrected, lost, resurrected, problems, repaired


def run(rounds: int, workdir: Path, seed: int = 1, log=print) -> dict:
    """Run the campaign; returns a summary dictionary (``survived``, ``lost``, per-round results)."""
    from ballistics.database import CaseDatabase

    rng = random.Random(seed)
    base = base_entries()
    path = workdir / "db"
    CaseDatabase(path).close()
    present: set[str] = set()  # acknowledged adds not yet acknowledged as removed
    absent: set[str] = set()  # acknowledged removes
    maybe: set[str] = set()  # unacknowledged adds / removes: either outcome is fine
    evidence: dict[str, bytes] = {}
    durations: dict[str, list[float]] = {"add": [], "remove": [], "rebuild": []}
    next_i = 0
    results: list[RoundResult] = []
    for r in range(rounds):
        live_known = sorted(present)
        op = rng.choices(["add", "remove", "rebuild"], weights=[2, 1 if len(live_known) >= 3 else 0, 1])[0]
        job: dict = {"op": op}
        if op == "add":
            job["entries"] = [(f"k{next_i + j}", variant(base, next_i + j)) for j in range(3)]
            for sid, e in job["entries"]:
                evidence[sid] = e.evidence
            next_i += 3
        elif op == "remove":
            job["ids"] = rng.sample(live_known, 2)
        else:
            job["kinds"] = [rng.choice(["flat", "hnsw"]), "flat"]
        child = start_child(path, job, workdir)
        ready = child.stdout.readline().strip()
        if ready != "READY":
            child.kill()
            raise RuntimeError(f"child did not start: {ready!r} {child.stderr.read()}")
        t0 = time.monotonic()
        calibrating = len(durations[op]) < CALIBRATION_ROUNDS
        delay = float("inf") if calibrating else rng.uniform(0.0, float(np.median(durations[op])))
        try:
            child.wait(timeout=None if calibrating else delay)
            killed = False
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed = True
        out, err = child.communicate()
        if not killed:
            done = [ln for ln in out.splitlines() if ln.startswith("DONE ")]
            durations[op].append(float(done[0].split()[1]) if done else time.monotonic() - t0)  # READY to DONE
            if child.returncode != 0:
                raise RuntimeError(f"child failed: {err}")
        # an acknowledgement is a whole line: a kill can cut the last one short ("ACK ad"),
        # and a cut line acknowledged nothing (its outcome is settled from the database below)
        whole = out.split("\n")[:-1]
        acks = [f[2] for f in (ln.split(maxsplit=2) for ln in whole) if len(f) == 3 and f[0] == "ACK"]
        expected = len(job.get("entries", job.get("ids", job.get("kinds", []))))
        mid = killed and len(acks) < expected
        if op == "add":
            for sid, _ in job["entries"]:
                (present.add if sid in acks else maybe.add)(sid)
        elif op == "remove":
            for sid in job["ids"]:
                present.discard(sid)
                (absent.add if sid in acks else maybe.add)(sid)
        ok, lost, res, problems, repaired = check(path, present, absent, evidence)
        # unacknowledged outcomes are now settled: whatever the database holds is the state
        with CaseDatabase(path, readonly=True) as db:
            live = {x["scan_id"] for x in db.list()}
        for sid in maybe:  # from now on it must stay as it is (an add that did not commit never appears)
            (present if sid in live else absent).add(sid)
        maybe.clear()
        rr = RoundResult(r + 1, op, None if calibrating else round(delay, 3), killed, mid, acks, ok, lost, res,
                         problems, repaired)
        results.append(rr)
        state = "killed mid-op" if mid else ("killed closing" if killed else "finished")
        log(f"round {r + 1:3d}  {op:<7s} " + ("no kill (timing)   " if calibrating else f"kill after {delay:5.2f} s ")
            + f" {state:14s}"
            f" acks={len(acks)}  {'OK' if ok else 'FAILED ' + '; '.join(problems + lost + res)}"
            + (f"  repaired: {'; '.join(repaired)}" if repaired else ""))
        if not ok:
            break
    survived = sum(r.ok for r in results)
    summary = {"rounds": len(results), "survived": survived, "killed": sum(r.killed for r in results),
               "killed_mid_operation": sum(r.mid_operation for r in results),
               "lost": sorted({s for r in results for s in r.lost}),
               "resurrected": sorted({s for r in results for s in r.resurrected}),
               "acknowledged_present_at_end": len(present), "by_op": {
                   op: sum(1 for r in results if r.op == op) for op in ("add", "remove", "rebuild")},
               "results": [asdict(r) for r in results]}
    return summary


def kill_at(path: Path, job: dict, workdir: Path) -> tuple[list[str], bool, str]:
    """Run ``job`` (with a ``stop``) in a child and SIGKILL it at the named point.

    Returns (acknowledged ids, whether the child reached the point and was killed there,
    the child's output and errors for a report).
    """
    child = start_child(path, job, workdir)
    lines: list[str] = []
    reached = False
    assert child.stdout is not None
    for line in child.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("AT "):
            reached = line.split()[1] == job["stop"]["name"]
            os.kill(child.pid, signal.SIGKILL)
            break
    out, err = child.communicate()
    lines += out.splitlines()
    reached = reached and child.returncode == -signal.SIGKILL
    acks = [f[2] for f in (ln.split(maxsplit=2) for ln in lines) if len(f) == 3 and f[0] == "ACK"]
    return acks, reached, "\n".join(lines) + ("\n" + err if err else "")


def run_points(workdir: Path, names: list[str] | None = None, log=print) -> list[dict]:
    """Kill a writer at each named point (:data:`POINTS`), in turn, on one database.

    Each point runs its operation twice in one child (``add``: two new scans; ``remove``:
    two stored scans; ``rebuild``: the database's index kind, then the other one) and is
    killed at the point inside the second.  After each kill the database must open and
    deep-verify, hold every acknowledged add (readable, evidence byte for byte), lack
    every acknowledged remove, and show the interrupted operation exactly when its
    transaction had committed at that point.

    Returns one dictionary per point: ``point``, ``op``, ``reached``, ``acknowledged``,
    ``ok``, ``took_effect``, ``expected_effect``, ``lost``, ``resurrected``, ``problems``,
    ``repaired`` (what opening the database repaired) and ``output`` (the child's, for a report).
    """
    from ballistics.database import CaseDatabase

    base = base_entries()
    path = workdir / "db"
    present: set[str] = set()
    absent: set[str] = set()
    evidence: dict[str, bytes] = {}
    next_i = 0
    with CaseDatabase(path) as db:  # a few stored scans to remove
        for _ in range(6):
            sid, e = f"p{next_i}", variant(base, next_i)
            db.add(e, scan_id=sid, case_id="kill", firearm_id=e.scan.metadata.get("firearm"))
            present.add(sid)
            evidence[sid] = e.evidence
            next_i += 1
    out = []
    for name in names or list(POINTS):
        op, _, _, committed = POINTS[name]
        job: dict = {"op": op, "stop": stop_spec(name)}
        with CaseDatabase(path, readonly=True) as db:
            kind_before = db.catalogue.get_parameter("index_kind") or db.index_kind
        if op == "add":
            job["entries"] = [(f"p{next_i + j}", variant(base, next_i + j)) for j in range(2)]
            for sid, e in job["entries"]:
                evidence[sid] = e.evidence
            next_i += 2
            target = job["entries"][-1][0]
        elif op == "remove":
            job["ids"] = sorted(present)[:2]
            target = job["ids"][-1]
        else:
            other = "hnsw" if kind_before != "hnsw" else "flat"
            job["kinds"] = [kind_before, other]
            target = other
        acks, reached, output = kill_at(path, job, workdir)
        for sid in acks:
            if op == "add":
                present.add(sid)
            elif op == "remove":
                present.discard(sid)
                absent.add(sid)
        if op == "add":
            (present if committed else absent).add(target)
        elif op == "remove":
            present.discard(target)
            (absent if committed else present).add(target)
        ok, lost, res, problems, repaired = check(path, present, absent, evidence)
        with CaseDatabase(path, readonly=True) as db:
            live = {x["scan_id"] for x in db.list()}
            kind_after = db.catalogue.get_parameter("index_kind")
        if op == "add":
            took = target in live
        elif op == "remove":
            took = target not in live
        else:
            took = kind_after == target
        expected_acks = len(job.get("entries", job.get("ids", job.get("kinds", [])))) - 1
        good = ok and reached and took == committed and len(acks) == expected_acks
        out.append({"point": name, "op": op, "reached": reached, "acknowledged": acks, "ok": good,
                    "took_effect": took, "expected_effect": committed, "lost": lost, "resurrected": res,
                    "problems": problems, "repaired": repaired, "output": output})
        log(f"{name:26s} {'killed there' if reached else 'NOT REACHED'}  acks={len(acks)}  "
            f"{'took effect' if took else 'no effect  '} (expected {'effect' if committed else 'none'})  "
            f"{'OK' if good else 'FAILED ' + '; '.join(problems + lost + res)}"
            + (f"  repaired: {'; '.join(repaired)}" if repaired else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="keep the database here (default: a temporary directory)")
    ap.add_argument("--json", default=None, help="write the per-round results to this JSON file")
    ap.add_argument("--points", action="store_true",
                    help="first kill a writer at every named point (deterministic), on a database of its own")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    points_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(a.workdir) if a.workdir else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        if a.points:
            (wd / "points").mkdir(exist_ok=True)
            pts = run_points(wd / "points")
            points_ok = all(p["ok"] for p in pts)
            print(f"named points: {sum(p['ok'] for p in pts)}/{len(pts)} OK\n")
        s = run(a.rounds, wd, a.seed)
    if a.json:
        Path(a.json).write_text(json.dumps(s, indent=1))
    print(f"\n{s['survived']}/{s['rounds']} rounds survived; {s['killed']} children killed, "
          f"{s['killed_mid_operation']} of them before their last acknowledgement; "
          f"rounds by operation {s['by_op']}; acknowledged entries lost: {len(s['lost'])} "
          f"{s['lost'] or ''}; removed entries back: {len(s['resurrected'])}; "
          f"{s['acknowledged_present_at_end']} acknowledged scans present at the end; "
          f"{time.monotonic() - t0:.0f} s")
    return 0 if points_ok and s["survived"] == s["rounds"] == a.rounds and not s["lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
