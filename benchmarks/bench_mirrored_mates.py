"""Handedness on real mates: every same-firearm pair compared with one scan mirrored.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_mirrored_mates.py PAIRS.jsonl

``PAIRS.jsonl`` is the output of ``benchmarks/compare_labelled_pairs.py`` (the pairs as
given, default settings).  For every same-firearm pair (Fadul and DFSC), ``b`` is mirrored
(rows reversed, as x3ptools' ``x3p_flip_y``) and compared with ``a`` again with the
default settings; the match must be reported as mirrored, with a warning, and with the
same CMC count as the pair as given.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

import ballistics as b
from ballistics.comparison import compare


def main(path: str) -> int:
    rows = [json.loads(line) for line in open(path)]
    mates = [r for r in rows if r["same"] and not r["error"]]
    same_count = mirrored = warned = 0
    diffs = []
    t0 = time.process_time()
    for r in mates:
        a, bb = b.read_scan(r["a_file"]), b.read_scan(r["b_file"])
        flipped = bb.derive(np.ascontiguousarray(bb.data[::-1]), "mirror_rows", {"note": "benchmark"})
        res = compare(a, flipped, lr_system=None)
        given = r["result"]["cmc_count"]
        same_count += res.cmc_count == given
        mirrored += bool(res.mirrored) or given == 0
        warned += bool(res.warnings) or given == 0
        if res.cmc_count != given:
            diffs.append((r["a_file"].rsplit("/", 1)[-1], r["b_file"].rsplit("/", 1)[-1], given, res.cmc_count,
                          res.mirrored))
    n = len(mates)
    print(f"{n} same-firearm pairs with b mirrored: reported mirrored {mirrored}/{n}, warning {warned}/{n}, "
          f"same CMC count as given {same_count}/{n}; {(time.process_time() - t0) / n:.2f} s CPU per pair")
    for d in diffs:
        print(f"   {d[0]} vs {d[1]}: as given {d[2]}, b mirrored {d[3]} (mirrored={d[4]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
