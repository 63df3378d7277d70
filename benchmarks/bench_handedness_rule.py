"""How the handedness rule of ``compare`` was chosen, on every labelled real pair.

Three inputs, all from the real Fadul and DFSC scans in ``../shared/data``:

1. the coarse CMC-theta curves of both directions in both handedness (this script)::

       NUMBA_NUM_THREADS=1 python benchmarks/bench_handedness_rule.py curves curves.jsonl

2. every pair compared in one handedness only (the final counts each rule would report)::

       python benchmarks/compare_labelled_pairs.py as_given.jsonl --param handedness='"as_given"'
       python benchmarks/compare_labelled_pairs.py mirrored.jsonl --param handedness='"mirrored"'

3. the rules evaluated, for the pairs as given and for a mirrored copy of ``b`` in every
   same-firearm pair (comparing ``a`` with ``b`` mirrored swaps the two handedness)::

       python benchmarks/bench_handedness_rule.py evaluate curves.jsonl as_given.jsonl mirrored.jsonl

A rule picks the mirror when its evidence beats the files as given by more than a margin.
Evidence "one-direction": the a->b coarse peak on the full 6-degree grid (the previous
rule); "consistent": :func:`ballistics.comparison._search.consistent_peak` of both
directions on the mirror screen's 12-degree grid (the rule ``compare`` uses).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import ballistics as b
from ballistics.comparison import PRESETS, prepare
from ballistics.comparison._search import _coarse, consistent_peak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_labelled_pairs import labelled_scans  # noqa: E402


def curves(out: str, data: str) -> None:
    p = PRESETS["default"].replace(workers=1)
    items = labelled_scans(Path(data))
    prepared: dict[str, object] = {}

    def prep(path: Path):
        if str(path) not in prepared:
            prepared[str(path)] = prepare(b.read_scan(path))
        return prepared[str(path)]

    with open(out, "w") as f:
        for s in ("dfsc", "fadul"):
            for (_, pa_, fa), (_, pb_, fb) in itertools.combinations([i for i in items if i[0] == s], 2):
                pa, pb = prep(pa_), prep(pb_)
                row = {"set": s, "a_file": str(pa_), "b_file": str(pb_), "same": fa == fb}
                for h, tb in (("as_given", pb), ("mirrored", pb.mirrored())):
                    row[h] = {"ab": _coarse(pa, tb, p)[1], "ba": _coarse(tb, pa, p, reverse=True)[1]}
                print(json.dumps(row), file=f, flush=True)


def _on(curve, every: int):
    return [(t, c) for t, c in curve if round(t / 6.0) % every == 0]


def evidence(h: dict, kind: str) -> int:
    if kind == "one-direction":
        return max(c for _, c in h["ab"])
    return consistent_peak(_on(h["ab"], 2), _on(h["ba"], 2), 6.0)


def evaluate(curves_path: str, given_path: str, mirrored_path: str) -> None:
    rows = [json.loads(line) for line in open(curves_path)]

    def load(path: str) -> dict:
        out = {}
        for line in open(path):
            d = json.loads(line)
            out[(d["a_file"], d["b_file"])] = d["result"]
        return out

    G, M = load(given_path), load(mirrored_path)
    n_same = sum(r["same"] for r in rows)
    print(f"{len(rows)} pairs ({n_same} same firearm, {len(rows) - n_same} different)")
    for kind in ("one-direction", "consistent"):
        gaps = [evidence(r["as_given"], kind) - evidence(r["mirrored"], kind) for r in rows if r["same"]]
        dg = [evidence(r["mirrored"], kind) - evidence(r["as_given"], kind) for r in rows if not r["same"]]
        print(f"{kind}: same-firearm lead of the right handedness {min(gaps)}..{max(gaps)}; "
              f"different-firearm mirror - given {min(dg)}..{max(dg)}")
        for margin in (0, 1, 2, 3):
            chosen = raised = missed = 0
            lscore = []
            for r in rows:
                k = (r["a_file"], r["b_file"])
                g, m = evidence(r["as_given"], kind), evidence(r["mirrored"], kind)
                if m > g + margin:           # the pair as given would be refined mirrored
                    chosen += 1
                    raised += M[k]["cmc_count"] > G[k]["cmc_count"]
                    lscore.append(M[k]["learned_score"] - G[k]["learned_score"])
                if r["same"] and not g > m + margin:    # b mirrored: the right handedness must win
                    missed += 1
            ls = f", learned score moved {min(lscore):+.2f}..{max(lscore):+.2f}" if lscore else ""
            print(f"   margin {margin}: pairs as given refined mirrored {chosen} (count raised {raised}{ls}); "
                  f"mirrored mates missed {missed} of {n_same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves")
    c.add_argument("out")
    c.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    e = sub.add_parser("evaluate")
    e.add_argument("curves")
    e.add_argument("as_given")
    e.add_argument("mirrored")
    args = ap.parse_args(argv)
    if args.cmd == "curves":
        curves(args.out, args.data)
    else:
        evaluate(args.curves, args.as_given, args.mirrored)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
