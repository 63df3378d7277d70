"""One-core CPU time per pair of the comparison settings, in one process.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_settings.py [--rounds 2]

Four prepared Fadul pairs (two same-slide, two different), each setting timed per pair
with ``time.process_time`` after a warm-up; prints the mean of the per-pair minima.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import ballistics as b
from ballistics.comparison import compare, prepare

FADUL = Path(__file__).resolve().parents[2] / "shared" / "data" / "fadul" / "processed"
PAIRS = [("Fadul 1-1", "Fadul 1-2"), ("Fadul 1-1", "Fadul 2-1"), ("Fadul 2-1", "Fadul 2-2"),
         ("Fadul 5-1", "Fadul 5-2")]
SETTINGS = [{}, {"coarse_factor": 4, "fine_factor": 1}, {"handedness": "as_given"}, {"preset": "cmcr"}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    prepared = {n: prepare(b.read_scan(FADUL / f"{n}.x3p")) for pair in PAIRS for n in pair}
    for a, c in PAIRS:
        compare(prepared[a], prepared[c], lr_system=None)
    times: dict[str, dict[tuple[str, str], list[float]]] = {}
    counts: dict[str, list[int]] = {}
    for _ in range(args.rounds):
        for cfg in SETTINGS:
            for a, c in PAIRS:
                t = time.process_time()
                r = compare(prepared[a], prepared[c], lr_system=None, **cfg)
                times.setdefault(str(cfg), {}).setdefault((a, c), []).append(time.process_time() - t)
                counts.setdefault(str(cfg), []).append(r.cmc_count)
    for k, v in times.items():
        print(f"{k:28s} {statistics.mean(min(x) for x in v.values()):.3f} s CPU per pair; "
              f"counts {counts[k][:len(PAIRS)]}")


if __name__ == "__main__":
    main()
