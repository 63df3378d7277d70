"""Benchmarks of the search cascade: a dispatcher to one script per question.

    python benchmarks/bench_search.py WHAT [options]

=====================  =========================================================
WHAT                   script
=====================  =========================================================
features, decoys-real  ``search_features.py`` (signatures, key points, decoys; cached)
fadul                  ``search_fadul.py`` (leave-one-out over the 40 Fadul scans)
scale                  ``search_scale.py`` (the cascade among decoys; ``--queries CSV``)
stage1, vlad, index    ``search_stage1.py`` (signature variants, latency up to 1 M)
local                  ``search_local.py`` (stage-1 designs side by side, up to 1 M)
stage2, twostep        ``search_stage2.py``
seeded                 ``search_seeded.py``
=====================  =========================================================

Results and the exact commands: ``benchmarks/results_index.md``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCRIPTS = {"features": "search_features", "decoys-real": "search_features", "fadul": "search_fadul",
           "scale": "search_scale", "stage1": "search_stage1", "vlad": "search_stage1", "index": "search_stage1",
           "local": "search_local", "stage2": "search_stage2", "twostep": "search_stage2",
           "seeded": "search_seeded"}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SCRIPTS:
        print(__doc__)
        raise SystemExit(2 if argv and argv[0] not in ("-h", "--help") else 0)
    importlib.import_module(SCRIPTS[argv[0]]).main(argv)


if __name__ == "__main__":
    main()
