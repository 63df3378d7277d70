"""The scale benchmark with outside queries (a labelled CSV) among decoys: runs and reports its last line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from shared_files import shared_path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
CACHE = BENCH / "out" / "search_features.pkl"

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.mark.skipif(not CACHE.exists(), reason="needs the decoy cache: python benchmarks/bench_search.py features "
                                               "&& python benchmarks/bench_search.py decoys-real")
@pytest.mark.parametrize("design", ["global", "local"])
def test_outside_queries_among_decoys(design, capsys):
    csv = shared_path("dfsc", "ground_truth.csv")
    sys.path.insert(0, str(BENCH))
    import bench_search
    bench_search.main(["scale", "--queries", str(csv), "--entries", "1500", "--design", design,
                       "--shortlist", "100", "--rerank", "0", "--time-every", "7"])
    out = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"recall@10 ([0-9.]+) hit@1 ([0-9.]+) median ([0-9.]+) s/query", out[-1])
    assert m, out[-1]
    assert any("14 labelled scans + 1,486 decoys" in line for line in out)
    assert 0.0 <= float(m.group(1)) <= 1.0 and float(m.group(3)) > 0
    if design == "global":  # measured 0.5+ on DFSC at 1,500 entries; the local design is weak there (0.29)
        assert float(m.group(1)) >= 0.5
