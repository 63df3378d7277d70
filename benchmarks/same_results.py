"""Are two cached evaluation runs identical, pair by pair?

``benchmarks/eval_instruments.py run CONFIG`` caches every pair's ``Comparison`` under
``benchmarks/.cache/CONFIG/``; this compares two such runs (e.g. the same settings run on
two trees, to show that a restructuring changed no result) on the fields that decide the
evidence: CMC counts of every rule, CMC score, registration, areal correlation and
handedness.

    python benchmarks/same_results.py v0 v0_after --sets dfsc fadul
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FIELDS = ("cmc_count", "cmc_score", "rotation_deg", "translation_m", "correlation", "method_counts", "mirrored")


def _load(config: str, name: str) -> dict[str, dict]:
    with open(CACHE / config / f"{name}.jsonl", encoding="utf-8") as fh:
        return {r["key"]: r["result"] for r in map(json.loads, fh) if r.get("result")}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b))
    return a == b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--sets", nargs="+", default=["dfsc", "fadul"])
    args = ap.parse_args(argv)
    differ = 0
    for name in args.sets:
        a, b = _load(args.first, name), _load(args.second, name)
        keys = sorted(set(a) & set(b))
        counts = {f: sum(not _same(a[k].get(f), b[k].get(f)) for k in keys) for f in FIELDS}
        differ += sum(counts.values()) + len(set(a) ^ set(b))
        print(f"{name}: {len(keys)} pairs in both ({len(a)} / {len(b)}); pairs differing per field: {counts}")
    print("identical" if differ == 0 else f"{differ} differences")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
