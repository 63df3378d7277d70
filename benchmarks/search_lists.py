"""Search lists of a database of the 40 processed Fadul scans, one per query, for comparing
two trees (stages 1 and 2 only, ``rerank=0``, so that a change of the comparison does not
enter): writes ``{query: [(scan_id, retrieval_rank, inliers), ...]}`` as JSON.

    python benchmarks/search_lists.py lists.json        # with each tree's own environment

Runs on both the ``ballistics.database`` and the older ``ballistics.index`` layout.
"""
import csv
import json
import sys
import tempfile
from pathlib import Path

import ballistics as b

data = Path(__file__).resolve().parents[2] / "shared" / "data" / "fadul"
rows = [r for r in csv.DictReader(open(data / "ground_truth.csv")) if r["file"].startswith("processed/")]
tmp = Path(tempfile.mkdtemp())
try:
    from ballistics.database import CaseDatabase
except ImportError:
    from ballistics.index import CaseDatabase
db = CaseDatabase(tmp / "db")
for r in rows:
    db.add(b.read_scan(data / r["file"]), scan_id=Path(r["file"]).stem, preprocess=False)
out = {}
for r in rows:
    q = b.read_scan(data / r["file"])
    hits = db.search(q, k=10, preprocess=False, rerank=0)
    out[Path(r["file"]).stem] = [(h.scan_id, getattr(h, "retrieval_rank", None), getattr(h, "inliers", None))
                                 for h in hits]
json.dump(out, open(sys.argv[1], "w"), indent=0)
print("queries", len(out))
