"""Train and evaluate the learned comparison score.

Run from the repository root (venv active)::

    python benchmarks/train_learned_score.py [/work/allpairs/pairs_default.jsonl] [--write]

Input: one JSON object per line with ``set``, ``a_file``, ``b_file``, ``a_firearm``,
``b_firearm``, ``same``, ``error`` and ``result`` (``Comparison.to_dict()`` of the
default ``ballistics.compare``): all pairs of the labelled real scans we hold (Fadul
processed, 40 cases of 10 slides; DFSC, 14 cases of 6 pistols).

Evaluation (never on the training pairs): for every pair, the model is fitted on the
pairs that involve *neither* of its firearms (leave-the-pair's-firearms-out: one
firearm for a same-firearm pair, two for a different-firearm pair), and that model
scores the pair.  The CMC count alone is evaluated on the same folds: its threshold is
chosen on the same training pairs (best balanced accuracy), and the fixed rule C = 6
(Song 2013) is reported too.  Numbers on the training data are labelled so.

``--write`` freezes the model fitted on all pairs to
``ballistics/comparison/data/learned_score.json``, writes the model card next to it
and the results to ``benchmarks/results_learned.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

import ballistics
from ballistics.comparison._learned import FEATURES, MODEL_FILE, score_features

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "ballistics" / "comparison" / "data"
C_REG = 1.0  # inverse L2 strength (scikit-learn default); not tuned, to keep the evaluation honest
THRESHOLD = 0.0  # logit threshold, fixed in advance (balanced class weights)
SONG_C = 6
#: The shipped feature set: evidence both directions must agree on (consistency-checked
#: counts, the pose both directions' cells share, the registration cluster, the rotation
#: peak, the overlap).  A texture shared by different pistols (DFSC's K004 conversion
#: group) raises one-direction counts, cell correlations and the areal correlation, not
#: agreement between the directions (benchmarks/results_evidence.md, change d).
#: (``directions_agree`` is left out: it is implied by a non-zero consistency-checked count, and
#: with both in the model its coefficient came out negative.)
CONSISTENT = ["cmc_log", "cmc_fraction_min", "translation_cluster", "rotation_peak_sharpness", "overlap",
              "pose_agreement"]
#: Ablation: the features that are not CMC counts or outcomes (is there information beyond the count?)
NON_CMC = ["ncc_mean", "ncc_q90", "ncc_frac_above", "translation_cluster", "rotation_peak_sharpness",
           "correlation", "overlap", "pose_agreement"]


def load(path: Path) -> tuple[list[dict], list[dict]]:
    rows, skipped = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        (skipped if d.get("error") or not d.get("result") else rows).append(d)
    return rows, skipped


def fit(x: np.ndarray, y: np.ndarray) -> tuple[StandardScaler, LogisticRegression]:
    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=C_REG, class_weight="balanced", max_iter=5000).fit(sc.transform(x), y)
    return sc, lr


def best_cmc_threshold(c: np.ndarray, y: np.ndarray) -> int:
    """Smallest integer C maximising balanced accuracy of ``cmc >= C`` on training pairs."""
    best, best_ba = 1, -1.0
    for t in range(1, int(c.max()) + 2):
        pred = c >= t
        ba = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
        if ba > best_ba + 1e-12:
            best, best_ba = t, ba
    return best


def rates(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    fp, fn = int((pred & ~y).sum()), int((~pred & y).sum())
    return {"fpr": fp / max(1, int((~y).sum())), "fnr": fn / max(1, int(y.sum())), "fp": fp, "fn": fn}


def balanced_log_loss(logit: np.ndarray, y: np.ndarray) -> float:
    """Mean over the two classes of the mean cross-entropy (bits) of the logits."""
    lp_same = -np.logaddexp(0.0, -logit) / np.log(2)  # log2 sigmoid
    lp_diff = -np.logaddexp(0.0, logit) / np.log(2)
    return float(0.5 * (-lp_same[y].mean() - lp_diff[~y].mean()))


def evaluate(rows: list[dict], x: np.ndarray, y: np.ndarray, cmc: np.ndarray, names: list[str] | None = None) -> dict:
    fa = [(r["a_firearm"], r["b_firearm"]) for r in rows]
    oof = np.full(len(rows), np.nan)
    oof_cmc = np.full(len(rows), np.nan)  # logistic regression on the CMC count alone, same folds
    oof_non = np.full(len(rows), np.nan)  # ablation: without any CMC feature
    non = [i for i, n in enumerate(names or list(FEATURES)) if n in NON_CMC]
    cmc_thr = np.zeros(len(rows), int)
    cache: dict[frozenset, tuple] = {}
    for i, (a, b) in enumerate(fa):
        key = frozenset((a, b))
        if key not in cache:
            train = np.array([a not in p and b not in p for p in fa])
            if y[train].all() or not y[train].any():
                raise SystemExit(f"fold leaving out {sorted(key)} has one class only")
            assert not any(a in fa[j] or b in fa[j] for j in np.flatnonzero(train))
            sc, lr = fit(x[train], y[train])
            sc1, lr1 = fit(x[train][:, :1], y[train])
            sc2, lr2 = fit(x[train][:, non], y[train])
            cache[key] = (sc, lr, sc1, lr1, sc2, lr2, best_cmc_threshold(cmc[train], y[train]))
        sc, lr, sc1, lr1, sc2, lr2, t = cache[key]
        oof_non[i] = float(lr2.decision_function(sc2.transform(x[i:i + 1, non]))[0])
        oof[i] = float(lr.decision_function(sc.transform(x[i:i + 1]))[0])
        oof_cmc[i] = float(lr1.decision_function(sc1.transform(x[i:i + 1, :1]))[0])
        cmc_thr[i] = t
    sets = np.array([r["set"] for r in rows])
    out: dict = {"n_folds": len(cache), "cmc_thresholds_chosen": dict(Counter(int(v) for v in cmc_thr))}
    for name, sel in [("all", np.ones(len(rows), bool))] + [(s, sets == s) for s in sorted(set(sets))]:
        yy = y[sel]
        res = {"n_pairs": int(sel.sum()), "n_same": int(yy.sum()), "n_different": int((~yy).sum())}
        if yy.any() and (~yy).any():
            res["auc_learned"] = float(roc_auc_score(yy, oof[sel]))
            res["auc_cmc"] = float(roc_auc_score(yy, cmc[sel]))
            res["log_loss_bits_learned"] = balanced_log_loss(oof[sel], yy)
            res["log_loss_bits_cmc_only"] = balanced_log_loss(oof_cmc[sel], yy)
            res["cmc_only_at_threshold"] = rates(oof_cmc[sel] >= THRESHOLD, yy)
            res["auc_without_cmc_features"] = float(roc_auc_score(yy, oof_non[sel]))
            res["log_loss_bits_without_cmc_features"] = balanced_log_loss(oof_non[sel], yy)
            res["without_cmc_features_at_threshold"] = rates(oof_non[sel] >= THRESHOLD, yy)
            res["learned_at_threshold"] = rates(oof[sel] >= THRESHOLD, yy)
            res["cmc_at_fold_threshold"] = rates(cmc[sel] >= cmc_thr[sel], yy)
            res["cmc_at_song_c6"] = rates(cmc[sel] >= SONG_C, yy)
            res["learned_gap"] = float(oof[sel][yy].min() - oof[sel][~yy].max())
            res["cmc_gap"] = float(cmc[sel][yy].min() - cmc[sel][~yy].max())
            res["lowest_same_learned"] = float(oof[sel][yy].min())
            res["highest_different_learned"] = float(oof[sel][~yy].max())
        out[name] = res
    out["oof"] = oof
    out["oof_cmc"] = oof_cmc
    out["cmc_thr"] = cmc_thr
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card(model: dict, text: str, model_sha: str) -> str:
    """The model card (markdown)."""
    tr, cv = model["training"], model["cross_validation"]
    feats = "\n".join(f"| `{n}` | {FEATURES[n]} | {c:+.3f} |" for n, c in zip(model["features"], model["coef"]))
    scans = "\n".join(f"| {n} | `{h}` |" for n, h in tr["scans_sha256"].items())
    a = cv["all"]
    dfsc_scans = sum(1 for n in tr["scans_sha256"] if n.startswith("K"))
    dfsc_pistols = tr.get("dfsc_pistols", "?")
    per_set = ", ".join(f"{k}: {v['pairs']} pairs, {v['same']} same-firearm" for k, v in tr["per_set"].items())
    return f"""# Model card: learned comparison score (`ballistics.comparison.learned_score`)

`learned_score.json` (sha256 `{model_sha}`) holds a logistic regression on {len(model["features"])}
standardised features of a `Comparison` (feature names, scaler means and scales,
coefficients, intercept, threshold; plain JSON, no pickle). Trained
{model["trained"]} by `benchmarks/train_learned_score.py` with scikit-learn
{model["versions"]["scikit-learn"]}, ballistics {model["versions"]["ballistics"]}.

## What it is for

A second opinion next to the CMC count in a report: one number that uses everything
the comparison computed, with each feature's contribution to it
(`contributions(result)`), so an examiner can see *why* it is high or low. It is not a
likelihood ratio and not a substitute for the examiner's evaluation.

## Model

- {model["model"]}; the score is the logit; threshold {model["threshold"]:+.1f}
  (fixed before evaluation: with balanced class weights, 0 is where the model finds
  both classes equally likely under equal priors).
- Intercept {model["intercept"]:+.3f}. Features (computed by `score_features`):

| feature | definition | coefficient (standardised) |
|---|---|---|
{feats}

The features are strongly correlated (most of them measure the same agreement); the L2
penalty spreads the weight over them, so single coefficients should not be read as the
importance of one measurement. Not used: the firing-pin comparison (our comparisons do
not compute one).

## Training data

`{tr["pairs_file"]}` (sha256 `{tr["pairs_sha256"]}`): {tr["n_pairs"]} pairs
({tr["n_same"]} same-firearm, {tr["n_different"]} different-firearm; {per_set}),
every pair of the labelled real scans we hold within each set, compared with
`ballistics.compare` defaults (method `{tr["compare"]["method"]}`, library
{tr["compare"]["library_version"]}). Fadul: 40 processed scans of 10 consecutively
manufactured Ruger P95 slides (NanoFocus confocal, CSAFE processing). DFSC: {dfsc_scans} processed
scans of {dfsc_pistols} Ruger SR9 pistols (Cadre TopMatch). Scans and their SHA-256:

| scan | sha256 |
|---|---|
{scans}

## Cross-validated performance (never on training pairs)

Each pair is scored by a model fitted on the pairs that involve neither of its
firearms ({cv["n_folds"]} fits). The CMC count alone is evaluated on the same folds.

- AUC: learned {a["auc_learned"]:.4f}, CMC count {a["auc_cmc"]:.4f}.
- At the threshold: false-positive rate {a["learned_at_threshold"]["fpr"]:.4f}
  ({a["learned_at_threshold"]["fp"]} of {a["n_different"]}), false-negative rate
  {a["learned_at_threshold"]["fnr"]:.4f} ({a["learned_at_threshold"]["fn"]} of {a["n_same"]}).
  CMC count with its threshold chosen on each training fold: FPR
  {a["cmc_at_fold_threshold"]["fpr"]:.4f}, FNR {a["cmc_at_fold_threshold"]["fnr"]:.4f};
  with the fixed rule C >= 6: FPR {a["cmc_at_song_c6"]["fpr"]:.4f}, FNR {a["cmc_at_song_c6"]["fnr"]:.4f}.
- Balanced cross-entropy (bits): learned {a["log_loss_bits_learned"]:.3f}, logistic
  regression on the CMC count alone {a["log_loss_bits_cmc_only"]:.3f}.
- Ablation, a model without any CMC feature (cell correlations, registration cluster,
  rotation peak, areal correlation, overlap only): AUC {a["auc_without_cmc_features"]:.4f},
  cross-entropy {a["log_loss_bits_without_cmc_features"]:.3f} bits, FPR
  {a["without_cmc_features_at_threshold"]["fpr"]:.4f}, FNR {a["without_cmc_features_at_threshold"]["fnr"]:.4f}.
- On the training data (not an estimate): AUC {model["training_data_auc_not_an_estimate"]:.4f}.

Full table (per set, misclassified pairs):

```
{text}
```

## Limits

- **Few positives.** {tr["n_same"]} same-firearm pairs from {len(tr["per_set"])} studies and
  two pistol models; with so few, an error rate of 0 out of n means only that the true
  rate is probably below about 3/n (the rule of three, 95 %). Both the learned score and
  the CMC count separate the Fadul pairs completely, so these data cannot show that the
  learned score is *better* than the CMC count on them; the cross-entropy shows it is
  more confident on the same pairs, nothing more. The only pairs where the two disagree
  are listed in the table above (on DFSC, {cv["dfsc"]["n_same"] if "dfsc" in cv else 0}
  same-pistol pairs in all): single pairs, not rates.
- **Dependent pairs.** Pairs share scans (each scan is in up to 39 pairs), so the pairs
  are not independent samples; leaving whole firearms out keeps the evaluation honest
  about new firearms, not about new ammunition, instruments or labs.
- **Two firearm models, two instruments, already-processed scans.** Other firearms
  (e.g. hemispherical firing pins, weak breech-face marks), raw scans extracted by this
  engine, other comparison parameters or `preset="cmcr"` are outside the training data:
  the features move, and the score must be re-validated before it is used there.
- **Not calibrated as a likelihood ratio**; class weights were balanced and the logit was
  not calibrated on held-out data.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="?", default="/work/allpairs/pairs_default.jsonl")
    ap.add_argument("--write", action="store_true", help="freeze the model, card and results")
    ap.add_argument("--features", default=None,
                    help="comma-separated feature names (default: all of FEATURES); see CONSISTENT")
    ap.add_argument("--oof-out", default=None,
                    help="write the pairs again with the out-of-fold learned score (each pair scored by a model "
                         "that never saw its firearms) as result.learned_score / result.score, for fitting an LR "
                         "system without reusing the learned model's training data")
    args = ap.parse_args(argv)
    path = Path(args.pairs)
    rows, skipped = load(path)
    names = CONSISTENT if args.features == "consistent" else \
        (args.features.split(",") if args.features else list(FEATURES))
    unknown = set(names) - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown features {sorted(unknown)}")
    x = np.array([[score_features(r["result"])[n] for n in names] for r in rows])
    y = np.array([bool(r["same"]) for r in rows])
    cmc = np.array([int(r["result"]["cmc_count"]) for r in rows])
    ev = evaluate(rows, x, y, cmc, names)
    if args.oof_out:
        with open(args.oof_out, "w") as fh:
            for r, v in zip(rows, ev["oof"]):
                res = dict(r["result"])
                res.setdefault("cmc_score", res["score"])
                res.update(learned_score=float(v), score=float(v), score_kind="learned")
                fh.write(json.dumps({**r, "result": res}) + "\n")
    sc, lr = fit(x, y)
    train_logit = lr.decision_function(sc.transform(x))
    train_auc = float(roc_auc_score(y, train_logit))

    lines = [(f"pairs file: {path} (sha256 {sha256(path)}), {len(rows)} pairs used, {len(skipped)} skipped "
              f"(comparison error)"), f"folds: {ev['n_folds']} (one per set of left-out firearms)",
             f"CMC thresholds chosen on the training folds: {ev['cmc_thresholds_chosen']}", ""]
    hdr = (f"{'set':6s} {'pairs':>5s} {'same':>4s} {'AUC learned':>11s} {'AUC CMC':>7s} "
           f"{'learned FPR/FNR (FP/FN) @logit 0':>33s} {'CMC fold-C FPR/FNR (FP/FN)':>27s} "
           f"{'CMC C=6 FPR/FNR (FP/FN)':>24s} {'gap learned':>11s} {'gap CMC':>7s}")
    lines.append(hdr)
    extra: list[str] = []
    for name in ["all"] + sorted(k for k in ev if k not in ("all", "oof", "oof_cmc", "cmc_thr", "n_folds",
                                                            "cmc_thresholds_chosen")):
        r = ev[name]
        if "auc_learned" not in r:
            lines.append(f"{name:6s} {r['n_pairs']:5d} {r['n_same']:4d}  (one class only)")
            continue

        def fmt(q):
            return f"{q['fpr']:.4f}/{q['fnr']:.4f} ({q['fp']}/{q['fn']})"
        lines.append(f"{name:6s} {r['n_pairs']:5d} {r['n_same']:4d} {r['auc_learned']:11.4f} {r['auc_cmc']:7.4f} "
                     f"{fmt(r['learned_at_threshold']):>33s} {fmt(r['cmc_at_fold_threshold']):>27s} "
                     f"{fmt(r['cmc_at_song_c6']):>24s} {r['learned_gap']:11.2f} {r['cmc_gap']:7.0f}")
        extra.append(f"{name:6s} balanced cross-entropy (bits, lower is better; 1 = uninformative): learned "
                     f"{r['log_loss_bits_learned']:.3f}, logistic regression on the CMC count alone "
                     f"{r['log_loss_bits_cmc_only']:.3f} (its FPR/FNR at logit 0: "
                     f"{fmt(r['cmc_only_at_threshold'])})")
        extra.append(f"{name:6s} ablation, model without any CMC feature ({', '.join(NON_CMC)}): AUC "
                     f"{r['auc_without_cmc_features']:.4f}, "
                     f"cross-entropy {r['log_loss_bits_without_cmc_features']:.3f} bits, "
                     f"FPR/FNR at logit 0 {fmt(r['without_cmc_features_at_threshold'])}")
    lines += [""] + extra
    lines += ["", f"training data (all pairs, NOT an estimate of performance): AUC {train_auc:.4f}", "",
              "coefficients of the model fitted on all pairs (standardised features):",
              f"{'feature':26s} {'coef':>8s} {'mean':>9s} {'scale':>9s}"]
    for n, c, m, s in zip(names, lr.coef_[0], sc.mean_, sc.scale_):
        lines.append(f"{n:26s} {c:+8.3f} {m:9.4f} {s:9.4f}")
    lines.append(f"{'intercept':26s} {lr.intercept_[0]:+8.3f}")
    # misclassified pairs out of fold
    oof = ev["oof"]
    bad = [(rows[i], oof[i]) for i in range(len(rows)) if (oof[i] >= THRESHOLD) != y[i]]
    lines += ["", f"pairs misclassified out of fold by the learned score ({len(bad)}):"]
    for r, s in bad:
        lines.append(f"  {Path(r['a_file']).stem} vs {Path(r['b_file']).stem}: same={r['same']}, "
                     f"logit {s:+.2f}, CMC {r['result']['cmc_count']}")
    dis = [i for i in range(len(rows)) if (oof[i] >= THRESHOLD) != (cmc[i] >= ev["cmc_thr"][i])]
    lines += ["", f"pairs where the learned score and the CMC count (fold threshold) disagree ({len(dis)}):"]
    for i in dis:
        r = rows[i]
        lines.append(f"  {Path(r['a_file']).stem} vs {Path(r['b_file']).stem}: same={r['same']}, "
                     f"logit {oof[i]:+.2f}, CMC {cmc[i]} (fold threshold {ev['cmc_thr'][i]}), "
                     f"areal correlation {r['result'].get('correlation') or 0:.3f}")
    text = "\n".join(lines)
    print(text)

    if args.write:
        inputs = {}
        for r in rows:
            for inp in r["result"].get("inputs", []):
                inputs[inp["name"]] = inp.get("sha256")
        model = {
            "model": "logistic regression on standardised features (scikit-learn LogisticRegression, "
                     f"L2, C={C_REG}, class_weight='balanced')",
            "features": names,
            "feature_definitions": {n: FEATURES[n] for n in names},
            "scaler": {"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist()},
            "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]),
            "threshold": THRESHOLD,
            "training": {"pairs_file": path.name, "pairs_sha256": sha256(path), "n_pairs": len(rows),
                         "n_same": int(y.sum()), "n_different": int((~y).sum()),
                         "per_set": {s: {"pairs": int(sum(r['set'] == s for r in rows)),
                                         "same": int(sum(r['set'] == s and r['same'] for r in rows))}
                                     for s in sorted({r['set'] for r in rows})},
                         "compare": {"method": rows[0]["result"].get("method"),
                                     "library_version": rows[0]["result"].get("library_version")},
                         "scans_sha256": dict(sorted(inputs.items())),
                         "dfsc_pistols": len({f for r in rows if r["set"] == "dfsc"
                                              for f in (r["a_firearm"], r["b_firearm"])})},
            "cross_validation": {k: v for k, v in ev.items() if k not in ("oof", "oof_cmc", "cmc_thr")},
            "training_data_auc_not_an_estimate": train_auc,
            "versions": {"ballistics": ballistics.__version__, "scikit-learn": sklearn.__version__,
                         "numpy": np.__version__},
            "trained": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        DATA.mkdir(parents=True, exist_ok=True)
        (DATA / MODEL_FILE).write_text(json.dumps(model, indent=1) + "\n")
        model_sha = sha256(DATA / MODEL_FILE)
        (DATA / "learned_score_card.md").write_text(card(model, text, model_sha))
        results = ROOT / "benchmarks" / "results_learned.md"
        results.write_text(
            "# Learned comparison score: cross-validated results\n\n"
            "Command (repository root, venv active; ~30 s):\n\n"
            f"```\npython benchmarks/train_learned_score.py {path}"
            f"{' --features ' + args.features if args.features else ''} --write\n```\n\n"
            "Every pair is scored by a model fitted without any pair involving its firearms "
            "(leave-the-pair's-firearms-out). See `ballistics/comparison/data/learned_score_card.md` "
            "for the features, the training set and the limits.\n\n```\n" + text + "\n```\n")
        print(f"\nwrote {DATA / MODEL_FILE} (sha256 {model_sha}), the model card and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
