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

Usage::

    python benchmarks/kill_campaign.py --rounds 100 [--seed 1] [--workdir DIR]

Prints one line per round and a summary; exit status 0 when every round survived
with nothing lost.
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

CHILD = r"""
import pickle, sys, time
from ballistics.database import CaseDatabase
db_path, job_path = sys.argv[1], sys.argv[2]
with open(job_path, "rb") as fh:
    job = pickle.load(fh)
db = CaseDatabase(db_path)
print("READY", flush=True)
t0 = time.monotonic()
if job["op"] == "add":
    for sid, entry in job["entries"]:
        db.add(entry, scan_id=sid, case_id="kill", firearm_id=entry.scan.metadata.get("firearm"))
        print("ACK add", sid, flush=True)
elif job["op"] == "remove":
    for sid in job["ids"]:
        db.remove(sid, reason="kill campaign")
        print("ACK remove", sid, flush=True)
else:
    for kind in job["kinds"]:
        db.rebuild_index(kind=kind)
        print("ACK rebuild", kind, flush=True)
db.close()
print("DONE", time.monotonic() - t0, flush=True)
"""
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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
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
        job_file = workdir / "job.pkl"
        with open(job_file, "wb") as fh:
            pickle.dump(job, fh)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(job_file)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="keep the database here (default: a temporary directory)")
    ap.add_argument("--json", default=None, help="write the per-round results to this JSON file")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(a.workdir) if a.workdir else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        s = run(a.rounds, wd, a.seed)
    if a.json:
        Path(a.json).write_text(json.dumps(s, indent=1))
    print(f"\n{s['survived']}/{s['rounds']} rounds survived; {s['killed']} children killed, "
          f"{s['killed_mid_operation']} of them before their last acknowledgement; "
          f"rounds by operation {s['by_op']}; acknowledged entries lost: {len(s['lost'])} "
          f"{s['lost'] or ''}; removed entries back: {len(s['resurrected'])}; "
          f"{s['acknowledged_present_at_end']} acknowledged scans present at the end; "
          f"{time.monotonic() - t0:.0f} s")
    return 0 if s["survived"] == s["rounds"] == a.rounds and not s["lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
