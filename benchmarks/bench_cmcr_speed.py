"""One-core CPU time per pair of ``preset="cmcr"``, this tree against another.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_cmcr_speed.py [--old /tmp/old-engine] [--rounds 3]
    NUMBA_NUM_THREADS=1 python benchmarks/bench_cmcr_speed.py --profile   # cProfile, this tree
    NUMBA_NUM_THREADS=1 python benchmarks/bench_cmcr_speed.py --steps     # CPU per step, this tree

Each tree runs in its own subprocess (``PYTHONPATH=<tree>``; the old tree needs
``ballistics/kernels`` linked to its ``kernels/``, since the editable install maps
``ballistics.kernels`` to this tree's folder); the subprocesses alternate, ``--rounds``
times.  A subprocess prepares four Fadul pairs (two same-slide, two different), warms up,
then times ``compare(a, b, preset="cmcr")`` per pair with ``time.process_time`` (FFT
workers 1) and prints the per-pair CPU time; the report gives the mean over pairs of the
per-pair minima, the new/old ratio, the counts and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
FADUL = HERE.parent / "shared" / "data" / "fadul" / "processed"
PAIRS = [("Fadul 1-1", "Fadul 1-2"), ("Fadul 1-1", "Fadul 2-1"), ("Fadul 2-1", "Fadul 2-2"),
         ("Fadul 5-1", "Fadul 5-2")]

CHILD = r"""
import json, sys, time, cProfile, pstats, io
import ballistics as b
from ballistics.comparison import compare, prepare
fadul, pairs, reps, profile = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
prep = {n: prepare(b.read_scan(f"{fadul}/{n}.x3p")) for p in pairs for n in p}
out = {"file": b.__file__, "t": {}, "counts": {}}
for a, c in pairs:                                   # warm-up: JIT, cell spectra
    compare(prep[a], prep[c], preset="cmcr", lr_system=None, workers=1)
pr = cProfile.Profile() if profile else None
for a, c in pairs:
    ts = []
    for _ in range(reps):
        if pr: pr.enable()
        t = time.process_time()
        r = compare(prep[a], prep[c], preset="cmcr", lr_system=None, workers=1)
        ts.append(time.process_time() - t)
        if pr: pr.disable()
    out["t"][f"{a} vs {c}"] = ts
    out["counts"][f"{a} vs {c}"] = [r.method_counts[m] for m in ("original", "high", "convergence")]
if pr:
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(12); out["profile"] = s.getvalue()
print(json.dumps(out))
"""


def run(tree: Path, reps: int, profile: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", CHILD, str(FADUL), json.dumps(PAIRS), str(reps), "1" if profile else "0"],
                       env=env, capture_output=True, text=True, cwd="/")
    if p.returncode:
        raise RuntimeError(f"{tree}: {p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def steps(reps: int) -> None:
    """CPU time per step of ``cmcr_features`` (both directions of the first pair), in process:
    the module's kernels and ``scipy.fft`` calls wrapped with ``time.process_time``."""
    import time

    import numpy as np

    import ballistics as b
    import ballistics.comparison._cmcr as C
    from ballistics.comparison import prepare
    a, c = (prepare(b.read_scan(FADUL / f"{n}.x3p")) for n in PAIRS[0])
    th = np.arange(-30, 31, 3.0)
    acc: dict[str, float] = {}

    def wrap(mod, name):
        f = getattr(mod, name)

        def g(*args, **kw):
            t = time.process_time()
            r = f(*args, **kw)
            acc[name] = acc.get(name, 0.0) + time.process_time() - t
            return r
        setattr(mod, name, g)
        return f
    originals = {n: wrap(C, n) for n in ("rotate_nearest", "cut_windows", "ccf_argmax", "window_pearson")}
    ffts = {n: wrap(C.sfft, n) for n in ("rfft", "fft", "ifft", "irfft", "rfft2", "irfft2")}

    def pair():
        C.cmcr_features(a.cmcr(), c.scan.data, th, workers=1, float32=True)
        C.cmcr_features(c.cmcr(), a.scan.data, -th[::-1], workers=1, float32=True)
    try:
        pair()
        acc.clear()
        t = time.process_time()
        for _ in range(reps):
            pair()
        total = (time.process_time() - t) / reps
    finally:
        for n, f in originals.items():
            setattr(C, n, f)
        for n, f in ffts.items():
            setattr(C.sfft, n, f)
    fft = sum(v for k, v in acc.items() if "fft" in k) / reps
    print(f"{PAIRS[0][0]} vs {PAIRS[0][1]}, both directions: {total * 1e3:.0f} ms CPU per pair")
    for k, v in sorted(acc.items(), key=lambda x: -x[1]):
        print(f"  {k:16s} {v / reps * 1e3:6.1f} ms")
    print(f"  {'all FFT passes':16s} {fft * 1e3:6.1f} ms; the rest {(total - fft) * 1e3:.1f} ms")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, default=None, help="another checkout to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="alternating subprocess runs per tree")
    ap.add_argument("--reps", type=int, default=2, help="timed comparisons per pair and run")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of each tree instead")
    ap.add_argument("--steps", action="store_true", help="CPU time per step of this tree's cmcr_features")
    args = ap.parse_args()
    if args.steps:
        steps(args.reps)
        return
    trees = {"new": HERE} | ({"old": args.old} if args.old else {})
    if args.profile:
        for name, tree in trees.items():
            r = run(tree, 1, True)
            print(f"== {name}: {r['file']}\n{r['profile']}")
        return
    best: dict[str, dict[str, float]] = {k: {} for k in trees}
    counts: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            r = run(tree, args.reps)
            counts[name] = r["counts"]
            for pair, ts in r["t"].items():
                best[name][pair] = min(best[name].get(pair, float("inf")), *ts)
    mean = {k: statistics.mean(v.values()) for k, v in best.items()}
    for k in trees:
        print(f"{k}: {mean[k]:.3f} s CPU per pair (mean of per-pair minima); "
              + "; ".join(f"{p} {t:.3f}" for p, t in best[k].items()))
        print(f"   counts (original, high, convergence): {counts[k]}")
    if "old" in mean:
        print(f"new / old = {mean['new'] / mean['old']:.3f}; counts identical: {counts['new'] == counts['old']}")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
