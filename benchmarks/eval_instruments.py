"""Discrimination across instruments: DFSC (Cadre TopMatch) and Fadul (confocal) under one
named engine configuration, with firearms left out for everything that is learned.

Run from the repository root (venv active).  Two steps, so that comparisons are computed
once and every evaluation reuses them::

    # 1. compare every pair (resumable; per-pair results cached under benchmarks/.cache/)
    NUMBA_NUM_THREADS=1 python benchmarks/eval_instruments.py run CONFIG [--sets dfsc fadul] [--shard 0 2]
    # 2. the table (AUCs, CMC ranges, leave-firearm-out learned score, LR metrics)
    python benchmarks/eval_instruments.py report CONFIG [CONFIG ...] [--sets dfsc fadul] [--markdown]

Sets: ``dfsc`` (14 TopMatch cases of 6 SR9 pistols, 91 pairs), ``fadul`` (40 confocal
cases of 10 P95 slides, 780 pairs), ``fadul-sub`` (fixed subset for iterating: all 63
mates and 150 non-mates drawn with seed 0), ``mates-mirrored`` (every real same-firearm
pair of both collections with ``b`` mirrored, rows reversed).

Evaluation (``report``):

- AUC of the CMC count (no fitting) and of the learned score.  The learned score is
  re-fitted for every pair without any pair that involves its firearms (one pistol or
  slide left out for a mate, two for a non-mate), on all labelled pairs of *both*
  collections in the same configuration (``train_learned_score.evaluate``); the shipped
  model's score is shown too, labelled in-sample (it was trained on Fadul and 7 of the
  DFSC cases).
- Likelihood ratios: ``ballistics.calibration.fit`` (logistic) on the leave-firearm-out
  learned scores of both collections pooled, itself cross-validated leaving one firearm
  out; Cllr, Cllr_min and the rates of misleading evidence (LR < 1, > 1, beyond 10 and
  100) per collection from those out-of-fold LLRs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BALLISTICS_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "benchmarks" / ".cache"

#: Named engine configurations: compare() parameters (all else at the library's defaults
#: of the checked-out tree).  "v0-*" pin the settings of the engine before this work.
_V0 = {"coarse_factor": 6, "fine_factor": 2, "handedness": "both", "mirror_margin": 1,
       "handedness_decision": "coarse"}
_HEV = dict(_V0, handedness_decision="evidence", mirror_margin=6)
CONFIGS: dict[str, dict] = {
    "v0": _V0,                                            # the engine before this work
    "v0_after": _V0,                                      # the same settings on a later tree (behaviour check)
    "as_given": dict(_V0, handedness="as_given"),         # one handedness only (for the rule's analysis)
    "mirrored": dict(_V0, handedness="mirrored"),
    "hev": _HEV,                                          # (a) handedness decided on the final evidence
    "hev_ff1": dict(_HEV, fine_factor=1),                 # (b) fine stage at full resolution
    "hev_cf4": dict(_HEV, coarse_factor=4),               # (b) coarse stage at 1/4
    "hev_cf4ff1": dict(_HEV, coarse_factor=4, fine_factor=1),
    "hev_tt17": dict(_HEV, translation_threshold_px=17.0),  # (c) 125 um on DFSC's 7.38 um pixels, as 20 px on Fadul
}


def _labelled() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {"fadul": [], "dfsc": []}
    for r in csv.DictReader(open(DATA / "fadul" / "ground_truth.csv")):
        if r["file"].startswith("processed/"):
            out["fadul"].append((str(DATA / "fadul" / r["file"]), r["firearm"]))
    for r in csv.DictReader(open(DATA / "dfsc" / "ground_truth.csv")):
        out["dfsc"].append((str(DATA / "dfsc" / r["file"]), r["firearm"]))
    return out


def pairs(set_name: str) -> list[dict]:
    """The pairs of a set: a_file, b_file, firearms, same, mirror_b."""
    lab = _labelled()
    if set_name in ("dfsc", "fadul"):
        return [{"set": set_name, "a_file": a, "b_file": b, "a_firearm": fa, "b_firearm": fb, "same": fa == fb,
                 "mirror_b": False} for (a, fa), (b, fb) in itertools.combinations(lab[set_name], 2)]
    if set_name == "fadul-sub":
        allp = pairs("fadul")
        mates = [p for p in allp if p["same"]]
        non = random.Random(0).sample([p for p in allp if not p["same"]], 150)
        return [dict(p, set="fadul") for p in allp if p in mates or p in non]
    if set_name == "mates-mirrored":
        return [dict(p, mirror_b=True) for s in ("dfsc", "fadul") for p in pairs(s) if p["same"]]
    raise SystemExit(f"unknown set {set_name!r}")


def key(p: dict) -> str:
    return f"{Path(p['a_file']).name}|{Path(p['b_file']).name}|{'M' if p['mirror_b'] else ''}"


def cache_file(config: str, set_name: str) -> Path:
    base = "fadul" if set_name == "fadul-sub" else set_name
    return CACHE / config / f"{base}.jsonl"


def load_cache(config: str, set_name: str) -> dict[str, dict]:
    f = cache_file(config, set_name)
    out = {}
    if f.exists():
        for line in open(f):
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:   # a line cut short by a kill
                    continue
                out[d["key"]] = d
    return out


def run(config: str, sets: list[str], shard: int, nshard: int) -> None:
    import ballistics as b
    from ballistics.comparison import compare, prepare
    params = CONFIGS[config]
    prepared: dict[tuple[str, bool], object] = {}

    def prep(path: str, mirror: bool = False):
        k = (path, mirror)
        if k not in prepared:
            s = b.read_scan(path)
            if mirror:
                s = s.derive(np.ascontiguousarray(s.data[::-1]), "mirror_rows", {"note": "benchmark"})
            prepared[k] = prepare(s)
        return prepared[k]

    for s in sets:
        todo = pairs(s)
        done = load_cache(config, s)
        f = cache_file(config, s)
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a") as fh:
            for i, p in enumerate(todo):
                if i % nshard != shard or key(p) in done:
                    continue
                t = time.process_time()
                w = time.perf_counter()
                try:
                    r, err = compare(prep(p["a_file"]), prep(p["b_file"], p["mirror_b"]), lr_system=None,
                                     **params).to_dict(), None
                except b.BallisticsError as e:
                    r, err = None, f"{type(e).__name__}: {e}"
                rec = dict(p, key=key(p), config=config, params=params, cpu_s=time.process_time() - t,
                           wall_s=time.perf_counter() - w, error=err, result=r)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()


# ----------------------------------------------------------------------------- evaluation

def _rows(config: str, sets: list[str]) -> list[dict]:
    rows = []
    for s in sets:
        c = load_cache(config, s)
        want = pairs(s)
        missing = [key(p) for p in want if key(p) not in c]
        if missing:
            raise SystemExit(f"{config}/{s}: {len(missing)} of {len(want)} pairs not computed yet "
                             f"(run: python benchmarks/eval_instruments.py run {config} --sets {s})")
        rows += [c[key(p)] for p in want]
    return [r for r in rows if not r["error"]]


#: The learned score's features before this work (12); the 13th is ``pose_agreement``.
FEATURES_V0 = ["cmc_log", "cmc_fraction_min", "cmc_fraction_max", "directions_agree", "high_passed", "ncc_mean",
               "ncc_q90", "ncc_frac_above", "translation_cluster", "rotation_peak_sharpness", "correlation",
               "overlap"]


#: Feature sets compared for the learned score (``report --feature-set``).
FEATURE_SETS = {
    "v0": FEATURES_V0,
    "all": None,
    # only evidence that both directions must agree on (consistency-checked counts, the
    # pose both directions' cells share, the registration cluster and rotation peak):
    # a texture shared by different pistols (e.g. one conversion group) raises one-direction
    # counts, cell correlations and the areal correlation, not agreement between directions
    "consistent": ["cmc_log", "cmc_fraction_min", "translation_cluster", "rotation_peak_sharpness", "overlap",
                   "pose_agreement"],
}


def learned_oof(rows: list[dict], features: list[str] | None = None) -> np.ndarray:
    """Each pair's learned score from a logistic regression fitted without its firearms
    (``train_learned_score.evaluate``, on all rows given)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_learned_score import evaluate

    from ballistics.comparison._learned import FEATURES, score_features
    names = list(features or FEATURES)
    x = np.array([[score_features(r["result"])[n] for n in names] for r in rows])
    y = np.array([bool(r["same"]) for r in rows])
    cmc = np.array([int(r["result"]["cmc_count"]) for r in rows])
    return evaluate(rows, x, y, cmc, names)["oof"]


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s)) if y.any() and (~y).any() else float("nan")


def lr_metrics(score: np.ndarray, y: np.ndarray, groups: list, strata: list[str]) -> tuple[dict[str, dict], np.ndarray]:
    """Out-of-fold LLRs of ``calibration.fit`` (logistic, leave-one-firearm-out), metrics per stratum."""
    from ballistics.calibration import cllr, cllr_min, fit
    sysm = fit(score, y, groups, method="logistic", bootstrap=0, store_training=False)
    llr = np.asarray(sysm.cross_validation["llr"], float)
    out = {}
    st = np.array(strata)
    for s in sorted(set(strata)):
        sel = st == s
        ll, yy = llr[sel], y[sel]
        out[s] = {"cllr": cllr(ll, yy), "cllr_min": cllr_min(ll, yy),
                  "mis_same_lt1": int((ll[yy] < 0).sum()), "mis_same_lt_0.1": int((ll[yy] < -1).sum()),
                  "mis_same_lt_0.01": int((ll[yy] < -2).sum()),
                  "mis_diff_gt1": int((ll[~yy] > 0).sum()), "mis_diff_gt10": int((ll[~yy] > 1).sum()),
                  "mis_diff_gt100": int((ll[~yy] > 2).sum()), "n_same": int(yy.sum()), "n_diff": int((~yy).sum()),
                  "llr_same_min": float(ll[yy].min()), "llr_diff_max": float(ll[~yy].max())}
    return out, llr


def evaluate(config: str, sets: list[str], features: list[str] | None = None) -> dict:
    rows = _rows(config, sets)
    y = np.array([bool(r["same"]) for r in rows])
    cmc = np.array([int(r["result"]["cmc_count"]) for r in rows], float)
    shipped = np.array([float(r["result"]["learned_score"]) for r in rows])
    oof = learned_oof(rows, features)
    groups = [(r["a_firearm"], r["b_firearm"]) for r in rows]
    strata = [r["set"] for r in rows]
    lr_cmc, _ = lr_metrics(cmc, y, groups, strata)
    lr_learned, llr = lr_metrics(oof, y, groups, strata)
    cpu = np.array([r["cpu_s"] for r in rows])
    label = config + ("" if features is None else f" [{next(k for k, v in FEATURE_SETS.items() if v == features)}]")
    out = {"config": label, "params": CONFIGS.get(config), "sets": {}}
    for s in sorted(set(strata)):
        sel = np.array(strata) == s
        yy = y[sel]
        out["sets"][s] = {
            "n_pairs": int(sel.sum()), "n_same": int(yy.sum()),
            "auc_cmc": _auc(yy, cmc[sel]), "auc_learned_lofo": _auc(yy, oof[sel]),
            "auc_learned_shipped_insample": _auc(yy, shipped[sel]),
            "cmc_same": [int(cmc[sel][yy].min()), int(np.median(cmc[sel][yy])), int(cmc[sel][yy].max())],
            "cmc_diff": [int(cmc[sel][~yy].min()), int(np.median(cmc[sel][~yy])), int(cmc[sel][~yy].max())],
            "same_zero_cmc": int((cmc[sel][yy] == 0).sum()),
            "lr_learned": lr_learned[s], "lr_cmc": lr_cmc[s],
            "cpu_s_median": float(np.median(cpu[sel])), "cpu_s_mean": float(np.mean(cpu[sel])),
            "mirrored_refined": int(sum(bool(r["result"].get("mirrored")) for r, k in zip(rows, sel) if k)),
        }
    out["_rows"] = rows
    out["_oof"] = oof
    out["_llr"] = llr
    return out


def handedness(sets: list[str], margins: list[int]) -> None:
    """The handedness rule simulated from the caches of the two single-handedness
    configurations ("as_given", "mirrored": every pair refined in each handedness): for
    the pairs as given and with ``b`` mirrored (which swaps the two), which handedness
    the rule keeps, whether a mate is found in its right handedness, whether a
    different-source pair gains evidence over the files as given, and how often both
    handedness are refined (the rule's extra cost)."""
    G = {k: v for s in sets for k, v in load_cache("as_given", s).items()}
    M = {k: v for s in sets for k, v in load_cache("mirrored", s).items()}
    rows = [p for s in sets for p in pairs(s) if key(p) in G and key(p) in M]

    def ev(r):
        res = r["result"]
        cp = next(iter(res["handedness"].values()))["consistent_peak"]
        return cp, (int(res["cmc_count"]), float(res["learned_score"]))

    print(f"{len(rows)} pairs ({sum(p['same'] for p in rows)} mates) in both caches")
    for m in margins:
        stats = {"mates found (as given)": 0, "mates found (b mirrored)": 0, "refined both": 0,
                 "non-mates gaining CMCs": 0, "non-mates gaining learned score": 0, "non-mates": 0, "mates": 0}
        gains = []
        for p in rows:
            g, mm = ev(G[key(p)]), ev(M[key(p)])
            for flipped in (False, True):
                a, b = (mm, g) if flipped else (g, mm)       # (as given, mirrored) of the pair seen
                if a[0] > b[0] + m:
                    pick_mirror = False
                elif b[0] > a[0] + m:
                    pick_mirror = True
                else:
                    stats["refined both"] += 1
                    pick_mirror = b[1][0] > a[1][0] or (b[1][0] == a[1][0] > 0 and b[1][1] > a[1][1])
                right = flipped                                # the true handedness of a mate
                if p["same"]:
                    stats["mates"] += 1
                    ok = pick_mirror == right or (b[1][0] == a[1][0] == 0)
                    stats["mates found (b mirrored)" if flipped else "mates found (as given)"] += int(ok)
                elif not flipped:
                    stats["non-mates"] += 1
                    got = b[1] if pick_mirror else a[1]
                    stats["non-mates gaining CMCs"] += int(got[0] > a[1][0])
                    stats["non-mates gaining learned score"] += int(got[1] > a[1][1] + 1e-9)
                    if got[0] > a[1][0]:
                        gains.append((p["key"], a[1][0], got[0]))
        print(f"mirror_margin {m}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
        for g_ in gains:
            print(f"    gained: {g_}")


TIMING_PAIRS = [("dfsc", "K002eG1_proc.x3p", "K227iG3_proc.x3p"), ("dfsc", "K004dB2.x3p", "K004dD1.x3p"),
                ("dfsc", "K011sR1.x3p", "K065jN3.x3p"), ("fadul", "processed/Fadul 1-1.x3p", "processed/Fadul 1-2.x3p"),
                ("fadul", "processed/Fadul 1-1.x3p", "processed/Fadul 2-1.x3p"),
                ("fadul", "processed/Fadul 5-1.x3p", "processed/Fadul 9-2.x3p")]


def timing(configs: list[str], repeat: int) -> None:
    """CPU seconds per comparison of each configuration in one process, interleaved (the
    minimum of ``repeat`` runs per pair; prepared scans, caches warmed by a first run)."""
    import ballistics as b
    from ballistics.comparison import compare, prepare
    prepared = {}
    for s_, x, y in TIMING_PAIRS:
        for f in (x, y):
            if f not in prepared:
                prepared[f] = prepare(b.read_scan(DATA / s_ / f))
    best = {c: [] for c in configs}
    for _, x, y in TIMING_PAIRS:
        for c in configs:
            compare(prepared[x], prepared[y], lr_system=None, **CONFIGS[c])     # warm
        for c in configs:
            ts = []
            for _ in range(repeat):
                t = time.process_time()
                r = compare(prepared[x], prepared[y], lr_system=None, **CONFIGS[c])
                ts.append(time.process_time() - t)
            best[c].append(min(ts))
            print(f"{c:12s} {Path(x).stem:16s} {Path(y).stem:16s} {min(ts):6.3f} s  CMC {r.cmc_count}", flush=True)
    base = configs[0]
    for c in configs:
        mean = float(np.mean(best[c]))
        print(f"{c:12s} mean {mean:.3f} s per comparison (DFSC {np.mean(best[c][:3]):.3f}, Fadul "
              f"{np.mean(best[c][3:]):.3f}); ratio to {base}: {mean / np.mean(best[base]):.2f}")


def table(results: list[dict], markdown: bool) -> str:
    hdr = ["config", "set", "pairs (same)", "AUC CMC", "AUC learned LOFO", "AUC learned shipped (in-sample)",
           "CMC same min/med/max", "CMC diff min/med/max", "mates at 0", "Cllr", "Cllr_min",
           "same LR<1 (<1/10, <1/100)", "diff LR>1 (>10, >100)", "Cllr (CMC only)", "CPU s/pair (median)"]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for res in results:
        for s, v in res["sets"].items():
            L, C = v["lr_learned"], v["lr_cmc"]
            cells = [res["config"], s, f"{v['n_pairs']} ({v['n_same']})", f"{v['auc_cmc']:.3f}",
                     f"{v['auc_learned_lofo']:.3f}", f"{v['auc_learned_shipped_insample']:.3f}",
                     "/".join(map(str, v["cmc_same"])), "/".join(map(str, v["cmc_diff"])),
                     f"{v['same_zero_cmc']}", f"{L['cllr']:.3f}", f"{L['cllr_min']:.3f}",
                     f"{L['mis_same_lt1']} ({L['mis_same_lt_0.1']}, {L['mis_same_lt_0.01']})",
                     f"{L['mis_diff_gt1']} ({L['mis_diff_gt10']}, {L['mis_diff_gt100']})",
                     f"{C['cllr']:.3f}", f"{v['cpu_s_median']:.2f}"]
            lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("config", choices=sorted(CONFIGS))
    r.add_argument("--sets", nargs="+", default=["dfsc", "fadul"])
    r.add_argument("--shard", type=int, nargs=2, default=(0, 1), metavar=("I", "N"))
    e = sub.add_parser("report")
    e.add_argument("configs", nargs="+")
    e.add_argument("--sets", nargs="+", default=["dfsc", "fadul"])
    e.add_argument("--markdown", action="store_true")
    e.add_argument("--pairs", action="store_true", help="list the DFSC pairs and the worst Fadul pairs")
    e.add_argument("--feature-set", default="all", choices=sorted(FEATURE_SETS),
                   help="the learned score's features: v0 (12, before this work), all (13), consistent")
    h = sub.add_parser("handedness")
    h.add_argument("--sets", nargs="+", default=["dfsc", "fadul"])
    h.add_argument("--margins", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6, 8, 10, 64])
    t = sub.add_parser("timing")
    t.add_argument("configs", nargs="+")
    t.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cmd == "timing":
        timing(args.configs, args.repeat)
        return 0
    if args.cmd == "handedness":
        handedness(args.sets, args.margins)
        return 0
    if args.cmd == "run":
        run(args.config, args.sets, *args.shard)
        return 0
    results = [evaluate(c, args.sets, FEATURE_SETS[args.feature_set]) for c in args.configs]
    print(table(results, args.markdown))
    if args.pairs:
        for res in results:
            print(f"\n{res['config']}:")
            for r, o, ll in zip(res["_rows"], res["_oof"], res["_llr"]):
                if r["set"] == "dfsc" and (r["same"] or r["result"]["cmc_count"] > 0 or ll > 0) or \
                        (r["same"] and ll < 0) or (not r["same"] and ll > 0):
                    print(f"  {Path(r['a_file']).stem:18s} {Path(r['b_file']).stem:18s} same={int(r['same'])} "
                          f"cmc={r['result']['cmc_count']:2d} mirrored={int(bool(r['result']['mirrored']))} "
                          f"lofo={o:+.2f} log10LR={ll:+.2f} corr={r['result'].get('correlation') or 0:.3f} "
                          f"dirs={[d['cmc_count'] for d in r['result']['directions'].values()]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
