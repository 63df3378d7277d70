"""Structure-aware fuzzing of exchange-bundle import.

A real bundle (three processed Fadul scans) is mutated -- members dropped, duplicated,
renamed or truncated; JSON values replaced, deepened or enlarged; ``.npy`` headers
given other shapes, dtypes or huge row counts; key-point blobs and signature values
corrupted -- with the manifest's hashes re-made (a hostile exporter) or left (a damaged
file), and imported into a database.  Each case checks: only a ``BallisticsError``
escapes, no hang (per-case time limit), the database is byte-identical after a refused
import, and peak memory stays under a budget.

    python benchmarks/fuzz_bundles.py --cases 10000 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

#: Per-case wall-time limit (s) and peak-memory budget (resident MiB) of the whole run.
CASE_LIMIT_S = 20.0
MEMORY_BUDGET_MIB = 2048


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "write.lock"}


def make_bundle(workdir: Path) -> dict[str, bytes]:
    """The members of a real bundle of three processed Fadul scans."""
    from ballistics import datasets
    from ballistics.database import CaseDatabase

    with CaseDatabase(workdir / "src") as db:
        for s in datasets.fadul("processed")[:3]:
            db.add(s, scan_id=s.exhibit_id, preprocess=False)
        db.export_bundle(workdir / "seed.zip", lab="Lab F", include_surfaces=False)
    with zipfile.ZipFile(workdir / "seed.zip") as z:
        return {n: z.read(n) for n in z.namelist()}


def _json_mutation(rng: random.Random, doc: object) -> object:
    choices = [None, -1, 10**18, "x" * rng.randint(0, 300), "\x00\x07", [], {}, 1.5, True, "\ud800"]
    if isinstance(doc, dict) and doc:
        k = rng.choice(sorted(doc, key=str))
        if rng.random() < 0.4:
            doc[k] = _json_mutation(rng, doc[k])
        elif rng.random() < 0.5:
            doc[k] = rng.choice(choices)
        else:
            del doc[k]
        return doc
    if isinstance(doc, list) and doc:
        i = rng.randrange(len(doc))
        if rng.random() < 0.5:
            doc[i] = _json_mutation(rng, doc[i])
        else:
            doc.append(doc[i]) if rng.random() < 0.5 else doc.pop(i)
        return doc
    if rng.random() < 0.1:
        nested: object = 0
        for _ in range(rng.randint(20, 5000)):
            nested = [nested]
        return nested
    return rng.choice(choices)


def _npy_mutation(rng: random.Random, data: bytes) -> bytes:
    end = data.index(b"\n") + 1
    header, body = data[:end].decode("latin1"), data[end:]
    kind = rng.randrange(5)
    if kind == 0:
        header = header.replace("'shape': (", f"'shape': ({rng.choice([0, 10**13, 2**62, 7])}, ", 1)
        header = header.replace(", ", ",", 1)
    elif kind == 1:
        header = header.replace("<f4", rng.choice(["<f8", "|O", "<i4", ">f4", "<c8"]))
    elif kind == 2:
        header = header.replace("False", "True")
    elif kind == 3:
        body = body[: rng.randrange(len(body) + 1)]
    else:
        arr = np.frombuffer(body, "<f4").copy()
        if arr.size:
            arr[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf, 3e38])
        body = arr.tobytes()
    return header.encode("latin1") + body


def mutate(rng: random.Random, members: dict[str, bytes]) -> tuple[dict[str, bytes], bool]:
    """A mutated copy of ``members`` and whether the manifest's hashes should be re-made."""
    m = dict(members)
    names = sorted(m)
    op = rng.randrange(8)
    name = rng.choice(names)
    if op == 0:
        del m[name]
    elif op == 1:
        m[name] = m[name][: rng.randrange(len(m[name]) + 1)]
    elif op == 2:
        m[rng.choice(["extra.bin", "../evil", "blobs/999999-0.bin", "surfaces/" + "0" * 64 + ".x3p"])] = \
            rng.randbytes(rng.randint(0, 200))
    elif op in (3, 4):
        target = rng.choice([n for n in names if n.endswith(".json")])
        try:
            doc = json.loads(m[target])
            m[target] = json.dumps(_json_mutation(rng, doc)).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            m[target] = rng.randbytes(50)
    elif op == 5:
        npys = [n for n in names if n.endswith(".npy")]
        if npys:
            n = rng.choice(npys)
            m[n] = _npy_mutation(rng, m[n])
    elif op == 6:
        blobs = [n for n in names if n.startswith("blobs/")]
        if blobs:
            n = rng.choice(blobs)
            b = bytearray(m[n])
            for _ in range(rng.randint(1, 20)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            m[n] = bytes(b) if rng.random() < 0.7 else b"BSK1" + b[4:12] + rng.randbytes(rng.randint(0, 64))
    else:
        m[name] = rng.randbytes(rng.randint(0, 2000))
    return m, rng.random() < 0.8


def _zip(members: dict[str, bytes], out: Path, fix: bool) -> Path:
    m = dict(members)
    if fix and "manifest.json" in m:
        try:
            man = json.loads(m["manifest.json"])
            if isinstance(man, dict):
                man["members"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in m.items()
                                  if not n.startswith("manifest.json")}
                m["manifest.json"] = json.dumps(man).encode()
        except (ValueError, RecursionError):
            pass
        m["manifest.json.sha256"] = (hashlib.sha256(m["manifest.json"]).hexdigest() + "  manifest.json\n").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in m.items():
            z.writestr(n, d)
    return out


def run(cases: int, seed: int, workdir: Path, log=print) -> dict:
    """Fuzz ``cases`` mutated bundles; returns counts and every failure found."""
    from ballistics.database import CaseDatabase
    from ballistics.errors import BallisticsError

    rng = random.Random(seed)
    members = make_bundle(workdir)
    target = workdir / "target"
    with CaseDatabase(target) as db:
        db.import_bundle(_zip(members, workdir / "ok.zip", False))  # the unmutated bundle imports
        assert len(db.list()) == 3
    before = _hashes(target)
    out = {"cases": 0, "refused": 0, "imported": 0, "failures": [], "slowest_s": 0.0}
    t_all = time.perf_counter()
    for i in range(cases):
        m, fix = mutate(rng, members)
        path = _zip(m, workdir / "case.zip", fix)
        t0 = time.perf_counter()
        try:
            with CaseDatabase(target) as db:
                db.import_bundle(path)
            out["imported"] += 1
            changed = _hashes(target) != before
            if changed:  # an accepted mutation (e.g. a harmless edit) may add entries: start over
                shutil.rmtree(target)
                with CaseDatabase(target) as db:
                    db.import_bundle(workdir / "ok.zip")
                before = _hashes(target)
        except BallisticsError:
            out["refused"] += 1
            if _hashes(target) != before:
                out["failures"].append((i, "refused import changed the database"))
        except Exception as exc:  # noqa: BLE001 - the point of fuzzing
            out["failures"].append((i, f"{type(exc).__name__}: {exc}"[:300]))
        dt = time.perf_counter() - t0
        out["slowest_s"] = max(out["slowest_s"], dt)
        if dt > CASE_LIMIT_S:
            out["failures"].append((i, f"took {dt:.1f} s"))
        out["cases"] += 1
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out["peak_rss_mib"] > MEMORY_BUDGET_MIB:
        out["failures"].append((-1, f"peak memory {out['peak_rss_mib']:.0f} MiB over {MEMORY_BUDGET_MIB}"))
    out["wall_s"] = time.perf_counter() - t_all
    log(f"{out['cases']} cases: {out['refused']} refused, {out['imported']} imported, "
        f"{len(out['failures'])} failures; slowest {out['slowest_s']:.2f} s; peak {out['peak_rss_mib']:.0f} MiB; "
        f"{out['wall_s']:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = run(a.cases, a.seed, Path(tmp))
    for f in res["failures"][:20]:
        print("FAIL", f)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

