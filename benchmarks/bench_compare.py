"""Benchmark of ballistics.compare (Congruent Matching Cells) on the Fadul scans.

Run:  python benchmarks/bench_compare.py [--pairs N] [--skip-all] [--out FILE.csv]

Prints, in one run:
1. one pair (Fadul 1-1 vs 1-2) in the cmcR-compatible setting (-30..30 deg by 3, full
   grid) and in the default 360-degree coarse-to-fine setting, each against a
   straightforward NumPy/SciPy implementation of the same computation (scipy.ndimage
   rotation, scipy.signal.fftconvolve per cell and rotation, NumPy statistics);
2. FFT-assembled masked NCC vs the direct Numba kernel for a few translation windows;
3. cmcR 0.1.11's reference counts (../shared/data/fadul/cmcR_reference) vs ours;
4. all 780 pairs of the 40 processed Fadul scans (default setting, one prepare() per
   scan): pairs per second, separation of same- and different-firearm scores and the
   gap, and how the counts compare with NIST's (nist_cmc_counts.csv).

``--vs-old DIR``: one-core CPU time per pair of an older checkout of the
engine (``git worktree add DIR <commit> && ln -s ../kernels DIR/ballistics/kernels``)
and of this one, in the same run, alternating subprocesses (NUMBA_NUM_THREADS=1, FFT
workers 1; ``time.process_time``, minimum over repeats), on prepared Fadul scans.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

if "--worker" in sys.argv and sys.argv[sys.argv.index("--worker") + 1]:
    sys.path.insert(0, sys.argv[sys.argv.index("--worker") + 1])     # the older engine, before any import

import numpy as np  # noqa: E402
import scipy.ndimage as ndi
import scipy.signal as sig

from ballistics import read_scan
from ballistics.comparison import compare, prepare
from ballistics.comparison._ncc import region_corners
from ballistics.kernels._cmc_regions import cut_regions
from ballistics.kernels._ncc import masked_ncc_direct, ncc_from_sums

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))
FADUL = SHARED / "fadul"


# --------------------------------------------------------------------------- baseline
def _cells(data, grid=8, min_valid=0.15):
    H, W = data.shape
    h, w = -(-H // grid), -(-W // grid)
    out = []
    for i in range(grid):
        for j in range(grid):
            c = data[i * h:(i + 1) * h, j * w:(j + 1) * w]
            area = c.size
            if np.isfinite(c).sum() >= max(min_valid * area, 8):
                cc = np.full((h, w), np.nan)
                cc[:c.shape[0], :c.shape[1]] = c
                out.append(((i * h, j * w), cc))
    return out, (h, w)


def _pearson(x, y):
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < 10:
        return np.nan
    a, b = x[m] - x[m].mean(), y[m] - y[m].mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else np.nan


def baseline_direction(ref, tgt, thetas, masked=False):
    """Straightforward NumPy/SciPy: rotate the whole target per angle, then per cell a
    zero-filled FFT correlation (cmcR) or six for the masked NCC (Padfield 2012)."""
    cells, (h, w) = _cells(ref)
    m = h
    cdiff = (np.array(tgt.shape) - 1) / 2 - (np.array(ref.shape) - 1) / 2
    res = []
    for th in thetas:
        rot = ndi.rotate(np.nan_to_num(tgt, nan=0.0), -th, reshape=False, order=0, cval=0.0)
        rmask = ndi.rotate(np.isfinite(tgt).astype(float), -th, reshape=False, order=0, cval=0.0) > 0.5
        rot = np.where(rmask, rot, np.nan)
        big = np.pad(rot, 3 * h, constant_values=np.nan)
        for (r0, c0), cell in cells:
            tr, tc = int(round(r0 + cdiff[0])) + 3 * h - m, int(round(c0 + cdiff[1])) + 3 * h - m
            region = big[tr:tr + h + 2 * m, tc:tc + w + 2 * m]
            mc, mr = np.isfinite(cell), np.isfinite(region)
            c0_ = np.where(mc, (cell - np.nanmean(cell)) / np.nanstd(cell), 0.0)
            r0_ = np.where(mr, (region - np.nanmean(region)) / (np.nanstd(region) or 1.0), 0.0)
            k = c0_[::-1, ::-1]
            if not masked:
                ccf = sig.fftconvolve(r0_, k, mode="valid")
                sr, sc = np.unravel_index(np.argmax(ccf), ccf.shape)
                res.append(_pearson(cell, region[sr:sr + h, sc:sc + w]))
            else:
                mk = mc[::-1, ::-1].astype(float)
                conv = lambda x, y: sig.fftconvolve(x, y, mode="valid")  # noqa: E731
                mrf = mr.astype(float)
                n = np.round(conv(mrf, mk))
                scf, sc_, scc = conv(r0_, k), conv(mrf, k), conv(mrf, k * k)
                sf, sff = conv(r0_, mk), conv(r0_ * r0_, mk)
                with np.errstate(all="ignore"):
                    ncc = (scf - sc_ * sf / n) / np.sqrt((scc - sc_ ** 2 / n) * (sff - sf ** 2 / n))
                ncc[n < 0.5 * mc.sum()] = -np.inf
                res.append(float(np.nanmax(ncc)))
    return res


def timeit(f, repeat=3):
    ts = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


# --------------------------------------------------------------------------- sections
def one_pair(a, b):
    print("\n== 1. One pair: Fadul 1-1 vs Fadul 1-2 (both directions) ==")
    compare(a, b, preset="cmcr")       # compile / load the kernels
    compare(a, b)
    t_c, rc = timeit(lambda: compare(a, b, "high", preset="cmcr"))
    th = np.arange(-30, 31, 3.0)
    t_bc, _ = timeit(lambda: (baseline_direction(a.data, b.data, th), baseline_direction(b.data, a.data, th)), 1)
    print(f"cmcR-compatible (-30..30 by 3, full grid):  ours {t_c:.3f} s/pair   NumPy/SciPy baseline "
          f"{t_bc:.3f} s/pair   ratio {t_bc / t_c:.1f}x   (cmcR 0.1.11: 54.8 s -> {54.8 / t_c:.0f}x)")
    print(f"   result: {rc.summary()}")
    t_d, rd = timeit(lambda: compare(a, b))
    th12 = np.arange(-180, 180, 30.0)        # 12 of the 120 angles a full 3-degree grid needs
    t_b12, _ = timeit(lambda: baseline_direction(a.data, b.data, th12, masked=True), 1)
    t_bd = t_b12 / len(th12) * 120 * 2
    print(f"default 360 deg (coarse-to-fine, masked NCC): ours {t_d:.3f} s/pair   baseline (full 3-deg grid, "
          f"masked NCC, extrapolated from 12 angles) {t_bd:.1f} s/pair   ratio {t_bd / t_d:.0f}x")
    print(f"   result: {rd.summary()}")
    return t_c, t_d, t_bc, t_bd


def fft_vs_direct(a, b):
    print("\n== 2. Masked NCC: FFT (6 correlations + Numba assembly) vs direct Numba kernel, one rotation ==")
    import scipy.fft as sfft
    A, B = prepare(a).level(1), prepare(b).level(1)
    h, w = A.cell_shape
    for margin in (4, 8, 16, 32, 69):
        corners, _ = region_corners(A, B, margin)
        raw, f, m, _ = cut_regions(B.data, corners[:, 0], corners[:, 1], (h + 2 * margin, w + 2 * margin))
        min_n = 0.5 * A.n_valid
        fs = (sfft.next_fast_len(h + 2 * margin, real=True),) * 2

        def fft():
            Cc, Cc2, Cm = A.cell_ffts(fs, 2)
            fw = lambda x: sfft.rfft2(x, s=fs, workers=2)  # noqa: E731
            inv = lambda x: sfft.irfft2(x, s=fs, workers=2)  # noqa: E731
            F, F2, FM = fw(f), fw(f * f), fw(m)
            return ncc_from_sums(inv(Cc * F), inv(Cc * FM), inv(Cc2 * FM), inv(Cm * F), inv(Cm * F2),
                                 inv(Cm * FM), (2 * margin + 1,) * 2, min_n)
        fft()
        masked_ncc_direct(A.cells, raw, (2 * margin + 1,) * 2, min_n)
        t_f, _ = timeit(fft, 3)
        t_d, _ = timeit(lambda: masked_ncc_direct(A.cells, raw, (2 * margin + 1,) * 2, min_n), 1 if margin > 16 else 3)
        print(f"translation +-{margin:3d} px ({len(A.rc)} cells): FFT {1e3 * t_f:8.1f} ms   direct {1e3 * t_d:8.1f} ms"
              f"   -> {'FFT' if t_f < t_d else 'direct'} wins ({max(t_f, t_d) / min(t_f, t_d):.1f}x)")


def cmcr_reference():
    ref = FADUL / "cmcR_reference" / "counts_and_times.csv"
    if not ref.exists():
        print("\n(cmcR reference not found; skipped)")
        return
    print("\n== 3. Agreement with cmcR 0.1.11 (preset='cmcr'; all six reference rows) ==")
    print(f"{'input':6} {'pair':28} {'orig A/B (cmcR)':>18} {'high A/B (cmcR)':>22} {'comb (cmcR)':>12} "
          f"{'theta (cmcR)':>14} {'s/pair (cmcR)':>16}")
    for row in csv.DictReader(open(ref)):
        n1, n2 = row["pair"].split(" vs ")
        if row["input"].startswith("fadul/processed"):
            tag, paths = "2020", [FADUL / "processed" / f"{n}.x3p" for n in (n1, n2)]
        else:
            tag, paths = "cmcR", [FADUL / "cmcR_reference" / f"{n} processed by cmcR 0.1.11.x3p" for n in (n1, n2)]
        a, b = (prepare(read_scan(p)) for p in paths)
        compare(a, b, "high", preset="cmcr")      # per-scan cells and their FFTs are then cached
        dt, r = timeit(lambda: compare(a, b, "high", preset="cmcr"))
        d1, d2 = r.directions["a_to_b"], r.directions["b_to_a"]
        st = lambda d: "p" if d["high_passed"] else "f"  # noqa: E731
        print(f"{tag:6} {row['pair']:28} {d1['original_count']:3d}/{d2['original_count']:<3d} ({row['original_A_ref']}/{row['original_B_ref']})"  # noqa: E501
              f"      {d1['high_count']:3d}{st(d1)}/{d2['high_count']:<3d}{st(d2)} ({row['high_A_ref']}{row['high_A_status'][0]}/"  # noqa: E501
              f"{row['high_B_ref']}{row['high_B_status'][0]})  {r.cmc_count:3d} ({row['combined_high']:>2})"
              f"   {r.directions['a_to_b']['rotation_deg']:6.1f} ({row['theta_A_ref_deg']:>4})  {dt:6.2f} ({row['seconds_per_pair_median']})")  # noqa: E501


def all_pairs(n_limit, out_csv):
    proc = FADUL / "processed"
    truth = {}
    for row in csv.DictReader(open(FADUL / "ground_truth.csv")):
        truth[Path(row["file"]).stem] = row["firearm"]
    nist = {}
    with open(FADUL / "nist_cmc_counts.csv", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            nist[frozenset((row["Reference"].strip(), row["Compare"].strip()))] = (int(row["# CMCs"]), row["KM or KNM"])
    names = sorted(truth)
    print(f"\n== 4. All pairs of the {len(names)} processed Fadul scans (default: 360 deg, convergence CMC) ==")
    t0 = time.perf_counter()
    prepared = {n: prepare(read_scan(proc / f"{n}.x3p")) for n in names}
    t_prep = time.perf_counter() - t0
    pairs = list(itertools.combinations(names, 2))[: n_limit or None]
    rows = []
    t0 = time.perf_counter()
    for i, (n1, n2) in enumerate(pairs):
        r = compare(prepared[n1], prepared[n2])
        same = truth[n1] == truth[n2]
        nc = nist.get(frozenset((n1, n2)), (None, None))
        rows.append({"a": n1, "b": n2, "same_firearm": same, "cmc_count": r.cmc_count, "score": r.score,
                     "a_to_b": r.directions["a_to_b"]["cmc_count"], "b_to_a": r.directions["b_to_a"]["cmc_count"],
                     "original": r.method_counts["original"], "high": r.method_counts["high"],
                     "convergence": r.method_counts["convergence"],
                     "rotation_deg": r.rotation_deg, "correlation": r.correlation, "nist_cmc": nc[0],
                     "seconds": r.elapsed_s})
        if (i + 1) % 100 == 0:
            el = time.perf_counter() - t0
            print(f"   {i + 1}/{len(pairs)} pairs, {(i + 1) / el:.2f} pairs/s", flush=True)
    el = time.perf_counter() - t0
    print(f"prepare() of {len(names)} scans: {t_prep:.2f} s; {len(pairs)} pairs in {el:.1f} s = "
          f"{len(pairs) / el:.2f} pairs/s ({el / len(pairs):.3f} s/pair)")
    if out_csv:
        with open(out_csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
        print(f"per-pair results written to {out_csv}")
    km = [r for r in rows if r["same_firearm"]]
    knm = [r for r in rows if not r["same_firearm"]]
    if km and knm:
        lo_km = min(r["score"] for r in km)
        hi_knm = max(r["score"] for r in knm)
        print(f"same-firearm ({len(km)}): CMC {min(r['cmc_count'] for r in km)}..{max(r['cmc_count'] for r in km)}, "
              f"score min {lo_km:.3f};  different ({len(knm)}): CMC {min(r['cmc_count'] for r in knm)}.."
              f"{max(r['cmc_count'] for r in knm)}, score max {hi_knm:.3f}")
        print(f"separation: {'COMPLETE' if lo_km > hi_knm else 'NOT complete'}; gap (lowest same - highest "
              f"different score) = {lo_km - hi_knm:.3f}")
        worst = sorted(km, key=lambda r: r["score"])[:3]
        print("lowest same-firearm pairs:", ", ".join(f"{r['a']}-{r['b']} {r['cmc_count']}" for r in worst))
        worst = sorted(knm, key=lambda r: -r["score"])[:3]
        print("highest different-firearm pairs:", ", ".join(f"{r['a']}-{r['b']} {r['cmc_count']}" for r in worst))
        for m in ("original", "high", "convergence"):
            a_ = [r[m] for r in km]
            b_ = [r[m] for r in knm]
            print(f"   {m:12s} pair counts: same {min(a_)}..{max(a_)}, different {min(b_)}..{max(b_)}, "
                  f"gap {min(a_) - max(b_)}, different pairs with > 2 CMCs: {sum(x > 2 for x in b_)}, "
                  f"same pairs with < 6: {sum(x < 6 for x in a_)}")
        nn = [(r["cmc_count"], r["nist_cmc"]) for r in rows if r["nist_cmc"] is not None]
        if nn:
            x, y = np.array(nn, float).T
            from scipy.stats import spearmanr
            kmn = [r["nist_cmc"] for r in km if r["nist_cmc"] is not None]
            knmn = [r["nist_cmc"] for r in knm if r["nist_cmc"] is not None]
            print(f"NIST counts: same {min(kmn)}..{max(kmn)}, different {min(knmn)}..{max(knmn)}; ours vs NIST: "
                  f"Spearman {spearmanr(x, y)[0]:.3f}, mean difference {np.mean(x - y):+.2f} over {len(nn)} pairs")


# --------------------------------------------------------------------------- old vs new
VS_PAIRS = [("Fadul 1-1", "Fadul 1-2"), ("Fadul 1-1", "Fadul 2-1"), ("Fadul 2-1", "Fadul 2-2"),
            ("Fadul 1-2", "Fadul 3-1"), ("Fadul 5-1", "Fadul 5-2"), ("Fadul 4-2", "Fadul 9-1")]


def _worker(engine: str, configs_json: str, repeat: int) -> None:
    """Subprocess: time each config on VS_PAIRS with the engine at ``engine`` ("" = this one)."""
    import json

    import ballistics
    from ballistics.comparison import compare as cmp_
    from ballistics.comparison import prepare as prep_
    names = sorted({n for pr in VS_PAIRS for n in pr})
    P = {n: prep_(read_scan(FADUL / "processed" / f"{n}.x3p")) for n in names}
    configs = json.loads(configs_json)
    out = {"engine": ballistics.__file__, "configs": {}}
    for label, kw in configs.items():
        cmp_(P["Fadul 1-1"], P["Fadul 1-2"], workers=1, **kw)          # compile, per-scan caches
        per_pair = []
        for a, b in VS_PAIRS:
            ts = []
            for _ in range(repeat):
                t = time.process_time()
                r = cmp_(P[a], P[b], workers=1, **kw)
                ts.append(time.process_time() - t)
            per_pair.append({"pair": f"{a} vs {b}", "cpu_s": min(ts), "cmc": r.cmc_count,
                             "method_counts": r.method_counts, "rotation_deg": r.rotation_deg,
                             "mirrored": bool(getattr(r, "mirrored", False))})
        out["configs"][label] = per_pair
    print("RESULT " + json.dumps(out))


def vs_old(old_dir: str, repeat: int, rounds: int) -> None:
    import json
    import subprocess
    print(f"\n== 0. Old engine ({old_dir}) vs this one: one-core CPU s per pair (min of {repeat}), "
          f"{rounds} alternating rounds ==")
    old_cfg = {"360 deg default": {}, "cmcR preset": {"preset": "cmcr"}}
    new_cfg = {"360 deg default": {}, "360 deg, as given only": {"handedness": "as_given"},
               "360 deg, previous estimator (coarse 4, fine 1)": {"coarse_factor": 4, "fine_factor": 1},
               "cmcR preset": {"preset": "cmcr"}}
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               OPENBLAS_NUM_THREADS="1")
    best: dict[tuple[str, str], list] = {}
    for _rnd in range(rounds):
        for tag, eng, cfg in (("old", old_dir, old_cfg), ("new", "", new_cfg)):
            cp = subprocess.run([sys.executable, __file__, "--worker", eng, "--configs", json.dumps(cfg),
                                 "--repeat", str(repeat)], env=env, capture_output=True, text=True, check=True)
            res = json.loads([ln for ln in cp.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
            for label, rows in res["configs"].items():
                key = (tag, label)
                if key not in best:
                    best[key] = rows
                else:
                    for o, n in zip(best[key], rows):
                        o["cpu_s"] = min(o["cpu_s"], n["cpu_s"])
    print(f"{'engine':5} {'setting':42} " + " ".join(f"{p[0][6:]}/{p[1][6:]:>5}" for p in VS_PAIRS) + "   mean")
    for (tag, label), rows in best.items():
        m = sum(r["cpu_s"] for r in rows) / len(rows)
        print(f"{tag:5} {label:42} " + " ".join(f"{r['cpu_s']:9.3f}" for r in rows) + f" {m:6.3f}")
    for (tag, label), rows in best.items():
        print(f"   counts {tag} {label}: " + ", ".join(
            f"{r['cmc']}{'m' if r['mirrored'] else ''} ({r['method_counts']['original']}/{r['method_counts']['high']}"
            f"/{r['method_counts']['convergence']}) {r['rotation_deg']:.0f}deg" for r in rows))
    for label in ("360 deg default", "cmcR preset"):
        o = sum(r["cpu_s"] for r in best[("old", label)]) / len(VS_PAIRS)
        n = sum(r["cpu_s"] for r in best[("new", label)]) / len(VS_PAIRS)
        print(f"ratio old/new, {label}: {o:.3f} / {n:.3f} = {o / n:.2f}x")


# --------------------------------------------------------------------------- profile, one vs many
def profile(kw_json: str) -> None:
    """cProfile of 3 comparisons of Fadul 1-1 vs 1-2 (prepared, one FFT worker)."""
    import cProfile
    import json
    import pstats
    kw = json.loads(kw_json)
    a = prepare(read_scan(FADUL / "processed" / "Fadul 1-1.x3p"))
    b = prepare(read_scan(FADUL / "processed" / "Fadul 1-2.x3p"))
    compare(a, b, workers=1, **kw)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(3):
        compare(a, b, workers=1, **kw)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(16)


def one_vs_many() -> None:
    """One prepared query against fresh candidates: the per-candidate constant."""
    names = ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2"]
    scans = [read_scan(FADUL / "processed" / f"{n}.x3p") for n in names]
    q = prepare(scans[0])
    compare(q, scans[1], workers=1)
    for c in scans[1:]:
        t = time.process_time()
        pc = prepare(c)
        tp = time.process_time() - t
        t = time.process_time()
        compare(q, pc, workers=1)
        t1 = time.process_time() - t
        t = time.process_time()
        compare(q, pc, workers=1)
        t2 = time.process_time() - t
        print(f"{c.name}: prepare {tp:.3f} s, first comparison {t1:.3f} s, repeated {t2:.3f} s -> "
              f"per-candidate constant {tp + t1 - t2:.3f} s")


# --------------------------------------------------------------------------- handedness
def handedness_check(out_jsonl: str, sets: str, limit: int) -> None:
    """Every pair of the labelled real scans (Fadul processed, DFSC), default settings (both
    handedness); where the mirrored handedness was refined, the same pair as given too, so
    that the effect of the extra search on each count is known.  Writes one JSON line per
    pair and prints the summary (separation, mirrored choices, counts raised)."""
    import json
    items = []
    if "fadul" in sets:
        for row in csv.DictReader(open(FADUL / "ground_truth.csv")):
            if row["file"].startswith("processed/"):
                items.append(("fadul", FADUL / row["file"], row["firearm"]))
    if "dfsc" in sets:
        for row in csv.DictReader(open(SHARED / "dfsc" / "ground_truth.csv")):
            items.append(("dfsc", SHARED / "dfsc" / row["file"], row["firearm"]))
    done = set()
    if os.path.exists(out_jsonl):
        done = {(d["a"], d["b"]) for d in map(json.loads, open(out_jsonl))}
    prep = {}

    def P(path):
        if path not in prep:
            prep[path] = prepare(read_scan(path))
        return prep[path]
    pairs = [(x, y) for x, y in itertools.combinations(items, 2) if x[0] == y[0]][: limit or None]
    with open(out_jsonl, "a") as fh:
        for (sa, pa, fa), (_, pb, fb) in pairs:
            if (str(pa), str(pb)) in done:
                continue
            t = time.process_time()
            r = compare(P(pa), P(pb))
            cpu = time.process_time() - t
            g = compare(P(pa), P(pb), handedness="as_given") if r.mirrored else r
            fh.write(json.dumps({"set": sa, "a": str(pa), "b": str(pb), "same": fa == fb, "cmc": r.cmc_count,
                                 "score": r.score, "method_counts": r.method_counts, "mirrored": r.mirrored,
                                 "warnings": r.warnings, "handedness": r.handedness, "cmc_as_given": g.cmc_count,
                                 "score_as_given": g.score, "cpu_s": cpu}) + "\n")
            fh.flush()
    rows = [json.loads(x) for x in open(out_jsonl)]
    for st in sorted({r["set"] for r in rows}):
        rs = [r for r in rows if r["set"] == st]
        km, knm = [r for r in rs if r["same"]], [r for r in rs if not r["same"]]
        print(f"\n{st}: {len(rs)} pairs ({len(km)} same firearm, {len(knm)} different); mean CPU "
              f"{statistics.mean(r['cpu_s'] for r in rs):.3f} s/pair (both handedness)")
        if km:
            print(f"   same firearm: CMC {min(r['cmc'] for r in km)}..{max(r['cmc'] for r in km)}, score min "
                  f"{min(r['score'] for r in km):.3f}; mirrored chosen {sum(r['mirrored'] for r in km)}")
        if knm:
            up = [r for r in knm if r["cmc"] > r["cmc_as_given"]]
            print(f"   different firearm: CMC {min(r['cmc'] for r in knm)}..{max(r['cmc'] for r in knm)}, score max "
                  f"{max(r['score'] for r in knm):.3f}; mirrored refined {sum(r['mirrored'] for r in knm)}, of them "
                  f"with a warning (CMCs > 0) {sum(bool(r['warnings']) for r in knm)}; counts raised by the "
                  f"mirrored search: {len(up)}" + (": " + ", ".join(f"{Path(r['a']).stem}/{Path(r['b']).stem} "
                                                                     f"{r['cmc_as_given']}->{r['cmc']}" for r in up)
                                                   if up else ""))
        if km and knm:
            gap = min(r["score"] for r in km) - max(r["score"] for r in knm)
            print(f"   separation {'COMPLETE' if gap > 0 else 'NOT complete'}, gap {gap:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=0, help="limit the all-pairs section to N pairs (0: all)")
    ap.add_argument("--skip-all", action="store_true", help="skip the all-pairs section")
    ap.add_argument("--only-all", action="store_true", help="run only the all-pairs section")
    ap.add_argument("--out", default=None, help="CSV file for the per-pair results")
    ap.add_argument("--vs-old", default=None, metavar="DIR", help="time an older checkout against this one")
    ap.add_argument("--rounds", type=int, default=2, help="--vs-old: alternating rounds")
    ap.add_argument("--repeat", type=int, default=2, help="--vs-old: repeats per pair (minimum kept)")
    ap.add_argument("--handedness", default=None, metavar="OUT.jsonl",
                    help="all Fadul + DFSC pairs with both handedness (resumable JSON lines)")
    ap.add_argument("--sets", default="fadul,dfsc", help="--handedness: data sets")
    ap.add_argument("--profile", default=None, metavar="JSON", help="cProfile 3 comparisons with these params")
    ap.add_argument("--one-vs-many", action="store_true", help="per-candidate constant of one-against-many")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--configs", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        _worker(args.worker, args.configs, args.repeat)
        return 0
    if args.vs_old:
        vs_old(args.vs_old, args.repeat, args.rounds)
        return 0
    if args.handedness:
        handedness_check(args.handedness, args.sets, args.pairs)
        return 0
    if args.profile is not None:
        profile(args.profile)
        return 0
    if args.one_vs_many:
        one_vs_many()
        return 0
    if not (FADUL / "processed").exists():
        print(f"Fadul data not found at {FADUL}; set BALLISTICS_SHARED_DATA", file=sys.stderr)
        return 1
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    a = read_scan(FADUL / "processed" / "Fadul 1-1.x3p")
    b = read_scan(FADUL / "processed" / "Fadul 1-2.x3p")
    if not args.only_all:
        one_pair(a, b)
        fft_vs_direct(a, b)
        cmcr_reference()
    if not args.skip_all:
        all_pairs(args.pairs, args.out)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
