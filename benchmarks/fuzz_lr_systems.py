"""Structure-aware fuzzing of LR-system files: a hostile or damaged system file must give a
clean ``BallisticsError`` (or a working system), never another exception, a hang or a
memory blow-up.

Each case takes a shipped system file, applies one to three seeded mutations to its JSON
tree (delete a key, change a value's type, a huge or non-finite number, a long string or
list, deep nesting, a truncated text), and **recomputes the content checksum** the way a
hostile author could, so the mutation reaches the parser and the model rather than being
stopped by the checksum alone.  The file is then loaded and used: LRs and intervals at a
few scores, the verbal scale, the summary.

    python benchmarks/fuzz_lr_systems.py --cases 10000 --seed 1

Prints one line per failure and a summary line; exit status 1 if anything escaped.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ballistics.calibration import DATA_DIR, get_system
from ballistics.calibration._storage import content_sha256
from ballistics.errors import BallisticsError

SCORES = (-20.0, -1.0, 0.0, 0.5, 3.0, 25.0)
PER_CASE_S = 20


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if len(prefix) > 12:                # inside a nest an earlier mutation made
        return out
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d[:8]):
            out += _paths(v, prefix + (i,))
    return out


def _set(d: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _delete(d: Any, path: tuple) -> None:
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    return [None, "x" * rng.choice([0, 1, 10_000]), -1, 0, 10 ** rng.choice([6, 18, 308]), -1e308, 1e-320,
            [], {}, [1.0] * rng.choice([1, 10_000]), {"a": {"b": [{}]}}, True][kind]


def mutate(doc: dict, rng: random.Random) -> str:
    """One mutated system text (JSON), with its content checksum recomputed."""
    d = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(d) if p and p[0] != "content_sha256"]
        p = rng.choice(paths)
        op = rng.randrange(4)
        try:
            if op == 0:
                _delete(d, p)
            elif op == 1:
                _set(d, p, _value(rng))
            elif op == 2:
                nest: Any = 1.0
                for _ in range(rng.choice([10, 60, 5000])):
                    nest = [nest]
                _set(d, p, nest)
            else:
                _set(d, p, rng.choice([float("nan"), float("inf"), -float("inf")]))
        except (KeyError, IndexError, TypeError):
            continue
    d.pop("content_sha256", None)
    try:
        d["content_sha256"] = content_sha256(d)
    except (ValueError, TypeError, RecursionError, BallisticsError):
        pass                                    # unhashable content: the file goes out as it is
    try:
        text = json.dumps(d, allow_nan=True)
    except (ValueError, RecursionError):
        text = json.dumps(doc)[: rng.randrange(10, 2000)]
    if rng.random() < 0.05:
        text = text[: rng.randrange(len(text))]
    return text


def use(path: Path) -> str:
    """Load and apply a system file; 'ok' or 'refused', else raise what escaped."""
    try:
        s = get_system(path)
        for x in SCORES:
            s.llr(x)
            s.interval(x)
            s.verbal(x)
        s.summary()
        s.describe()
        return "ok"
    except BallisticsError:
        return "refused"


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


def run(cases: int, seed: int, quiet: bool = False) -> dict[str, Any]:
    """Run ``cases`` seeded cases; returns counts, failures and peak memory (MiB)."""
    docs = [json.loads(p.read_text()) for p in sorted(DATA_DIR.glob("*.json"))
            if not p.name.endswith(".validation.json")]
    rng = random.Random(seed)
    counts = {"ok": 0, "refused": 0}
    failures: list[str] = []
    slowest = 0.0
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "system.json"
        for i in range(cases):
            f.write_text(mutate(rng.choice(docs), rng))
            t0 = time.perf_counter()
            signal.alarm(PER_CASE_S)
            try:
                counts[use(f)] += 1
            except _Timeout:
                failures.append(f"case {i}: hang (over {PER_CASE_S} s)")
            except Exception as exc:   # noqa: BLE001 - an escape is what we are looking for
                failures.append(f"case {i}: {type(exc).__name__}: {exc}"[:300])
                if not quiet:
                    traceback.print_exc(limit=3)
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**counts, "failures": failures, "slowest_s": slowest, "peak_mib": peak}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.cases, args.seed)
    for line in res["failures"]:
        print(line)
    print(f"{args.cases} cases: {res['refused']} refused, {res['ok']} loaded and used, "
          f"{len(res['failures'])} failures; slowest {res['slowest_s']:.2f} s; peak {res['peak_mib']:.0f} MiB; "
          f"{time.perf_counter() - t0:.0f} s")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
