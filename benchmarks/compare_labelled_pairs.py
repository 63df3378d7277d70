"""Compare every same-set pair of the labelled real scans in ../shared/data (Fadul, DFSC).

One JSON line per pair: set, files, firearms, ``same``, CPU seconds, error, and the full
``Comparison.to_dict()`` (every parameter, the library version, input checksums).  These
files are the training and validation data of the learned score
(``benchmarks/train_learned_score.py``) and of the default LR system
(``python -m ballistics.calibration.fit_default``).  Resumable (pairs already in the file
are skipped); ``--shard i n`` lets n processes share the work.

    python benchmarks/compare_labelled_pairs.py OUT.jsonl [--data ../shared/data] [--shard 0 2] [--param K=V]

The comparison is made with ``lr_system=None``: the pairs are the LR system's input, so
they must not depend on a previously fitted system.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import time
from pathlib import Path

import ballistics as b
from ballistics.comparison import compare, prepare


def labelled_scans(root: Path) -> list[tuple[str, Path, str]]:
    """(set, path, firearm) of the processed Fadul and the DFSC breech faces."""
    items = []
    for r in csv.DictReader(open(root / "fadul" / "ground_truth.csv")):
        if r["file"].startswith("processed/"):
            items.append(("fadul", root / "fadul" / r["file"], r["firearm"]))
    for r in csv.DictReader(open(root / "dfsc" / "ground_truth.csv")):
        items.append(("dfsc", root / "dfsc" / r["file"], r["firearm"]))
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--shard", type=int, nargs=2, default=(0, 1), metavar=("I", "N"))
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a compare() parameter (JSON value), e.g. --param fine_factor=1")
    args = ap.parse_args(argv)
    params = {k: json.loads(v) for k, v in (x.split("=", 1) for x in args.param)}
    shard, nshard = args.shard
    items = labelled_scans(Path(args.data))
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in open(out):
            d = json.loads(line)
            done.add((d["a_file"], d["b_file"]))
    prepared: dict[str, object] = {}

    def prep(p: str) -> object:
        if p not in prepared:
            prepared[p] = prepare(b.read_scan(p))
        return prepared[p]

    with open(out, "a") as f:
        for k, ((sa, pa, fa), (sb, pb, fb)) in enumerate(itertools.combinations(items, 2)):
            if k % nshard != shard or sa != sb or (str(pa), str(pb)) in done:
                continue
            t = time.process_time()
            try:
                r, err = compare(prep(str(pa)), prep(str(pb)), lr_system=None, **params).to_dict(), None
            except b.BallisticsError as e:
                r, err = None, f"{type(e).__name__}: {e}"
            f.write(json.dumps({"set": sa, "a_file": str(pa), "b_file": str(pb), "a_firearm": fa,
                                "b_firearm": fb, "same": fa == fb, "cpu_s": time.process_time() - t,
                                "error": err, "result": r}) + "\n")
            f.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
