"""Benchmark of ballistics.batch: all pairs of the processed Fadul scans, serial vs Dask.

Run:  python benchmarks/bench_batch.py [--n-scans 40] [--workers 2] [--tile-size N]
                                       [--skip-serial] [--json FILE]

1. serial: one process, each scan read and ``prepare``-d once, then ``compare`` on every
   pair ``i < j`` (default parameters: 360 degrees, coarse-to-fine) -- the fastest way
   to run all pairs without the batch engine;
2. ``ballistics.batch.all_pairs`` on a ``LocalCluster`` of ``--workers`` processes (one
   thread each), timed with and without starting the cluster;
3. checks that both give the same CMC count, score and registration for every pair, and
   how the scores separate same- and different-firearm pairs (ground_truth.csv);
4. the projection to larger collections: pairs = n (n - 1) / 2, wall time = pairs x
   seconds per pair / (machines x cores per machine), for the measured and the
   target (0.5 s) time per pair.

The full run is ``--n-scans 40`` (780 pairs, ~20 min serial at 1.5 s per pair).  The
machine's load average is printed before each part: on a shared machine the ratio, not
the absolute time, is what carries over.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))
FADUL = SHARED / "fadul"


def projection(n_scans: int, seconds_per_pair: float, machines: int, cores: int) -> dict:
    """Wall time of an all-pairs run: n (n - 1) / 2 pairs x s per pair / (machines x cores)."""
    n_pairs = n_scans * (n_scans - 1) // 2
    wall = n_pairs * seconds_per_pair / (machines * cores)
    return {"n_scans": n_scans, "pairs": n_pairs, "s_per_pair": seconds_per_pair, "machines": machines,
            "cores": cores, "wall_s": wall, "wall_h": wall / 3600, "wall_days": wall / 86400}


def _firearms() -> dict[str, str]:
    with open(FADUL / "ground_truth.csv", newline="") as fh:
        return {Path(r["file"]).stem: r["firearm"] for r in csv.DictReader(fh)}


def _code_state() -> str:
    """Digest of the comparison engine's and kernels' source files (to detect edits mid-run)."""
    import hashlib
    h = hashlib.sha256()
    for p in sorted([*(ROOT / "ballistics" / "comparison").glob("*.py"), *(ROOT / "kernels").glob("*.py")]):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-scans", type=int, default=10, help="first N processed Fadul scans by name (40 = all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--skip-serial", action="store_true")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)


    from ballistics import read_scan
    from ballistics.batch import all_pairs, read_results
    from ballistics.batch._cluster import cluster_client
    from ballistics.comparison import compare, prepare

    paths = sorted((FADUL / "processed").glob("*.x3p"), key=lambda p: p.name)[: args.n_scans]
    if len(paths) < 2:
        print(f"need the processed Fadul scans in {FADUL / 'processed'}", file=sys.stderr)
        return 2
    n = len(paths)
    n_pairs = n * (n - 1) // 2
    truth = _firearms()
    out: dict = {"n_scans": n, "pairs": n_pairs, "workers": args.workers, "cpu_count": os.cpu_count(),
                 "code_before": _code_state()}
    print(f"{n} scans, {n_pairs} pairs; load average {_load()}")

    serial: dict[tuple[int, int], tuple] = {}
    if not args.skip_serial:
        out["load_before_serial"] = _load()
        t0 = time.perf_counter()
        prep = [prepare(read_scan(p, exhibit_id=p.stem)) for p in paths]
        for i, j in itertools.combinations(range(n), 2):
            r = compare(prep[i], prep[j])
            serial[(i, j)] = (r.cmc_count, r.rotation_deg, tuple(r.translation_m), r.score)
        out["serial_s"] = time.perf_counter() - t0
        print(f"serial: {out['serial_s']:.1f} s = {out['serial_s'] / n_pairs:.2f} s per pair")

    out["load_before_dask"] = _load()
    t0 = time.perf_counter()
    # the library's own local cluster (as all_pairs starts it without a client)
    with cluster_client(n_workers=args.workers) as client:
        client.wait_for_workers(args.workers)
        out["cluster_start_s"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            summary = all_pairs(paths, Path(tmp) / "run", client=client, tile_size=args.tile_size)
            out["dask_s"] = time.perf_counter() - t1
            table = read_results(Path(tmp) / "run", require_complete=True)
            rows = table.to_pylist()
    out["dask_with_startup_s"] = out["dask_s"] + out["cluster_start_s"]
    out["tiles"] = summary.n_tiles
    out["pair_errors"] = summary.pair_errors
    worker_s = sum(r["elapsed_s"] or 0.0 for r in rows)
    out["worker_s_per_pair"] = worker_s / n_pairs
    print(f"dask ({args.workers} workers, {summary.n_tiles} tiles): {out['dask_s']:.1f} s "
          f"(+{out['cluster_start_s']:.1f} s cluster start) = {out['dask_s'] / n_pairs:.2f} s per pair wall, "
          f"{out['worker_s_per_pair']:.2f} s per pair inside the workers")
    if serial:
        out["speedup"] = out["serial_s"] / out["dask_s"]
        out["speedup_with_startup"] = out["serial_s"] / out["dask_with_startup_s"]
        same = sum(serial[(r["i"], r["j"])][:3] == (r["cmc_count"], r["rotation_deg"],
                                                     (r["translation_dy_m"], r["translation_dx_m"])) for r in rows)
        dscore = max(abs(serial[(r["i"], r["j"])][3] - r["score"]) for r in rows)
        out["pairs_same_count_and_registration"] = same
        out["max_score_difference"] = dscore
        print(f"speed-up {out['speedup']:.2f}x ({out['speedup_with_startup']:.2f}x with cluster start); "
              f"{same} of {n_pairs} pairs with the same CMC count and registration as serial, "
              f"largest score difference {dscore:.2g}")

    def firearm(name: str) -> str:
        return truth.get(name, "?")

    km = [r["score"] for r in rows if r["score"] is not None and firearm(r["a_name"]) == firearm(r["b_name"])]
    knm = [r["score"] for r in rows if r["score"] is not None and firearm(r["a_name"]) != firearm(r["b_name"])]
    if km and knm:
        out.update(same_firearm=len(km), different_firearm=len(knm), min_same=min(km), max_different=max(knm))
        print(f"same-firearm {len(km)} pairs, min score {min(km):.2f}; different-firearm {len(knm)}, "
              f"max score {max(knm):.2f}")

    out["code_after"] = _code_state()
    if out["code_after"] != out["code_before"]:
        print("WARNING: the comparison code changed during the benchmark (another checkout/agent): "
              f"{out['code_before']} -> {out['code_after']}; serial and Dask may have run different code")
    measured = out["worker_s_per_pair"]
    out["projection"] = [projection(ns, spp, m, c) for ns in (1_000, 100_000) for spp in (measured, 1.5, 0.5)
                         for m, c in ((1, 2), (10, 32), (100, 32))]
    print("projection (all pairs, wall = pairs x s/pair / (machines x cores)):")
    for p in out["projection"]:
        print(f"  {p['n_scans']:>7,} scans {p['pairs']:>13,} pairs x {p['s_per_pair']:.2f} s / "
              f"({p['machines']} x {p['cores']}) = {p['wall_h']:,.1f} h ({p['wall_days']:,.2f} days)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
