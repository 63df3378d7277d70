"""Comparison time quiet and beside one busy process, before and after one-thread compute.

On a machine shared with other jobs, thread pools that spin-wait for work (Numba's
OpenMP threading layer, OpenCV's pool) fight the other processes for the cores.  This
benchmark times the default comparison and the cmcR preset on one bundled Fadul pair
(processed breech faces, prepared once) in four situations, in one run:

* ``before``: the libraries' own thread settings (``ballistics.set_threads(None)``:
  Numba on every core, OpenMP's default wait policy), what the engine did before it
  ran each comparison on one compute thread;
* ``after``: the engine's default (one compute thread per comparison);

each once on a quiet machine and once beside one busy process (``python -c "while
True: pass"``).  Every mode runs in its own child process (OpenMP reads its
environment once), with ``OMP_WAIT_POLICY`` removed from the environment, as a library
user's program would have it.  It prints the median of ``--repeats`` timings and the
ratio busy / quiet; the goal is <= 1.5.

Usage::

    python benchmarks/bench_under_load.py [--repeats 3]

CPU use is modest: two pairs' worth of comparisons per mode and situation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("before", "after")
CASES = ("default", "cmcr")


def _busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def child(mode: str, repeats: int) -> dict[str, dict[str, float]]:
    """Time both cases quiet, then beside one busy process, in this process."""
    import ballistics as bl
    from ballistics import datasets
    from ballistics.comparison import compare, prepare

    if mode == "before":
        bl.set_threads(None)
    scans = datasets.fadul("processed")
    a, b = prepare(scans[0]), prepare(scans[1])
    for case in CASES:      # compile every kernel before timing
        compare(a, b, preset=case, lr_system=None)

    def timed(case: str) -> tuple[float, float]:
        ts, cs = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            compare(a, b, preset=case, lr_system=None)
            ts.append(time.perf_counter() - t0)
            cs.append(time.process_time() - c0)
        return statistics.median(ts), statistics.median(cs)

    out: dict[str, dict[str, float]] = {c: {} for c in CASES}
    for c in CASES:
        out[c]["quiet"], out[c]["quiet_cpu"] = timed(c)
    busy = _busy()
    try:
        time.sleep(0.5)   # let the busy process get going
        for c in CASES:
            out[c]["busy"], out[c]["busy_cpu"] = timed(c)
    finally:
        busy.kill()
        busy.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timings per case and situation (median)")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats)))
        return
    load = os.getloadavg()
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    results = {}
    for mode in MODES:
        res = subprocess.run([sys.executable, __file__, "--child", mode, "--repeats", str(args.repeats)],
                             env=env, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"the {mode} child failed:\n{res.stderr}")
        results[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{os.cpu_count()} cores, load average before the run {load[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
          f"median of {args.repeats} comparisons of Fadul processed 1-1 vs 1-2 (prepared)")
    print(f"{'mode':<8}{'case':<9}{'quiet s':>9}{'busy s':>9}{'busy/quiet':>12}{'CPU quiet s':>13}{'CPU busy s':>12}")
    for mode in MODES:
        for case in CASES:
            r = results[mode][case]
            print(f"{mode:<8}{case:<9}{r['quiet']:>9.3f}{r['busy']:>9.3f}{r['busy'] / r['quiet']:>12.2f}"
                  f"{r['quiet_cpu']:>13.3f}{r['busy_cpu']:>12.3f}")
    print("wall time: the comparison's elapsed time; CPU: its process's CPU time (threads that spin-wait "
          "burn CPU without progress). Other jobs on the machine count as load in both columns.")


if __name__ == "__main__":
    main()
