"""Score-to-LR calibration on the NFI Glock comparison scores, with the NFI's weapon-level splits.

Run:  python benchmarks/bench_calibration.py [--data NAME ...] [--splits split1 ...] [--out TABLE.md]
(all data and splits: about a minute on one core; ``--data breech_face_impression --splits split1``
is a short check).

Data: ``../shared/data/nfi_scores`` (Netherlands Forensic Institute, ``lr_module_scratch``,
Apache-2.0): breech-face and firing-pin comparison scores of Glock test fires with three
weapon-level splits (``t`` training, ``v`` validation, ``n`` pairs across the two, not
used).  For every split and calibrator the LR system is fitted on the ``t`` pairs only
(:func:`ballistics.calibration.fit`, which also cross-validates inside ``t`` with whole
weapons left out) and evaluated on the ``v`` pairs, whose weapons it never saw.

Scores: CMC/n (congruent cells over cells), one score per pair, for the three
calibrators; and, as a fourth row, a two-score logistic regression on (CMC/n, log ACCF)
-- a fusion of the two scores the data hold, fitted on ``t`` only like the others.

Prints a Markdown table: validation Cllr, Cllr_min, Cllr_cal, EER, rates of misleading
evidence and ELUB bounds (all on the bounded LLRs the system outputs), the validation
Cllr the same calibrator would get without the bounds (for information only: unbounded
LRs are not what the system reports), and the cross-validated Cllr inside the training
set.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path

import numpy as np

from ballistics import calibration as cal

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load(name: str):
    rows = list(csv.DictReader(open(SHARED / "nfi_scores" / f"{name}.csv")))
    y = np.array([r["hypothesis"] == "1" for r in rows])
    cmc_n = np.array([float(r["cmc"]) / float(r["n"]) for r in rows])
    log_accf = np.array([math.log(max(float(r["accf"]), 1e-3)) for r in rows])
    groups = [(r["weapon1"], r["weapon2"]) for r in rows]
    splits = {s: np.array([r[s] for r in rows]) for s in ("split1", "split2", "split3")}
    return y, cmc_n, log_accf, groups, splits


def run(name: str, lines: list[str], only: list[str] | None = None) -> list[dict]:
    y, cmc_n, log_accf, groups, splits = load(name)
    splits = {k: v for k, v in splits.items() if not only or k in only}
    results = []
    configs = [("logistic", "CMC/n", cmc_n), ("kde", "CMC/n", cmc_n), ("isotonic", "CMC/n", cmc_n),
               ("logistic", "CMC/n + log ACCF", np.c_[cmc_n, log_accf])]
    for split, sp in splits.items():
        tr, va = sp == "t", sp == "v"
        gtr = [g for g, t in zip(groups, tr) if t]
        for method, label, x in configs:
            t0 = time.perf_counter()
            s = cal.fit(x[tr], y[tr], gtr, method, bootstrap=0, n_folds=10,
                        score_column=["cmc/n", "log accf"] if x.ndim == 2 else "cmc/n",
                        reference={"description": f"NFI {name} {split} training"})
            llr = s.llr(x[va])
            m = cal.metrics(llr, y[va])
            unb = cal.cllr(s.llr_unbounded(x[va]), y[va])
            row = {"data": name, "split": split, "calibrator": method, "score": label,
                   "n_train": f"{int(y[tr].sum())}/{int((~y[tr]).sum())}",
                   "n_val": f"{m.n_same}/{m.n_different}", "cllr": m.cllr, "cllr_min": m.cllr_min,
                   "cllr_cal": m.cllr_cal, "eer": m.eer, "rmep": m.rmep, "rmed": m.rmed,
                   "elub": s.elub, "cllr_unbounded": unb,
                   "cv_cllr_train": s.cv_metrics["cllr"], "seconds": time.perf_counter() - t0}
            results.append(row)
            lines.append(f"| {name} | {split} | {method} | {label} | {row['n_train']} | {row['n_val']} | "
                         f"**{m.cllr:.3f}** | {m.cllr_min:.3f} | {m.cllr_cal:.3f} | {m.eer:.3f} | {m.rmep:.3f} | "
                         f"{m.rmed:.3f} | [{s.elub[0]:+.2f}, {s.elub[1]:+.2f}] | {unb:.3f} | "
                         f"{row['cv_cllr_train']:.3f} |")
            print(lines[-1], flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="also write the table to this Markdown file")
    ap.add_argument("--data", nargs="+", default=["breech_face_impression", "firing_pin_impression"],
                    choices=["breech_face_impression", "firing_pin_impression"], help="score tables to use")
    ap.add_argument("--splits", nargs="+", default=None, choices=["split1", "split2", "split3"],
                    help="weapon-level splits to run (default: all three)")
    args = ap.parse_args()
    if not (SHARED / "nfi_scores").is_dir():
        raise SystemExit("the NFI scores are not in ../shared/data/nfi_scores (set BALLISTICS_SHARED_DATA)")
    lines = ["| data | split | calibrator | score | train same/diff | validation same/diff | Cllr | Cllr_min | "
             "Cllr_cal | EER | RMEP | RMED | ELUB (log10) | Cllr without ELUB | CV Cllr inside t |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines))
    allres = []
    for name in args.data:
        allres += run(name, lines, args.splits)
    summary = ["", "Worst split per calibrator (validation Cllr):", ""]
    for name in args.data:
        for method, label in (("logistic", "CMC/n"), ("kde", "CMC/n"), ("isotonic", "CMC/n"),
                              ("logistic", "CMC/n + log ACCF")):
            rs = [r for r in allres if r["data"] == name and r["calibrator"] == method and r["score"] == label]
            worst = max(rs, key=lambda r: r["cllr"])
            summary.append(f"- {name}, {method} on {label}: worst {worst['cllr']:.3f} ({worst['split']}), "
                           f"Cllr_min there {worst['cllr_min']:.3f}; all splits <= 0.25: "
                           f"{'yes' if all(r['cllr'] <= 0.25 for r in rs) else 'no'}")
    print("\n".join(summary))
    if args.out:
        Path(args.out).write_text("\n".join(lines + summary) + "\n")


if __name__ == "__main__":
    main()
