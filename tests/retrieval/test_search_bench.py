"""The scale benchmark with outside queries (a labelled CSV) among decoys: runs and reports its last line.

The benchmark reads a signature and decoy cache; the developer's one
(``benchmarks/out/search_features.pkl``, 300 synthetic decoys and 6 augmented copies of
each real scan) takes minutes to build, so the test builds a small but real one of its
own with the same commands: the real scans of ``../shared/data``, a codebook trained on
8 synthetic firearms instead of 20, 10 synthetic decoy firearms instead of 150 and one
augmented copy of each real scan instead of 6.  The collection is then filled to 1,500
entries with replicas of those decoys, as the benchmark always does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from shared_files import shared_path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _bench_search():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import bench_search
    return bench_search


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory) -> Path:
    """A small signature and decoy cache built from ../shared/data (about a minute on 2 cores)."""
    shared_path("dfsc", "ground_truth.csv")
    shared_path("fadul", "ground_truth.csv")
    cache = tmp_path_factory.mktemp("search_bench") / "search_features.pkl"
    bench = _bench_search()
    bench.main(["features", "--cache", str(cache), "--train-firearms", "8", "--decoy-firearms", "10"])
    bench.main(["decoys-real", "--cache", str(cache), "--copies", "1"])
    assert cache.exists()
    return cache


@pytest.mark.parametrize("design", ["global", "local"])
def test_outside_queries_among_decoys(design, small_cache, capsys):
    csv = shared_path("dfsc", "ground_truth.csv")
    capsys.readouterr()
    _bench_search().main(["scale", "--cache", str(small_cache), "--queries", str(csv), "--entries", "1500",
                          "--design", design, "--shortlist", "100", "--rerank", "0", "--time-every", "7"])
    out = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"recall@10 ([0-9.]+) hit@1 ([0-9.]+) median ([0-9.]+) s/query", out[-1])
    assert m, out[-1]
    assert any("14 labelled scans + 1,486 decoys" in line for line in out), out
    assert 0.0 <= float(m.group(1)) <= 1.0 and 0.0 <= float(m.group(2)) <= 1.0
    assert float(m.group(3)) > 0
    if design == "global":
        # Measured with this small cache: 0.643 (0.607 with a codebook of 5 synthetic firearms and
        # 5 decoy firearms, 0.571 with 12 and 10; 0.5+ with the developer cache).  The floor leaves
        # about two queries of margin.  The local design is weak on DFSC (0.14 here): no floor.
        assert float(m.group(1)) >= 0.5, out


def test_outside_queries_tolerate_a_messy_csv(small_cache, tmp_path, capsys, caplog):
    """A lab's CSV as it comes: byte-order mark, spaced headers, absolute paths, a missing file, a
    file that is no scan, a repeated file and an empty label.  The bad lines are named and left out;
    the run goes on with the 14 readable scans."""
    import logging

    src = shared_path("dfsc", "ground_truth.csv")
    lines = src.read_text().strip().splitlines()[1:]
    junk = tmp_path / "junk.x3p"
    junk.write_bytes(b"not a scan")
    rows = [f"{(src.parent / f).resolve()},{fa}" for f, fa in (x.split(",") for x in lines)]
    rows += [f"{tmp_path / 'missing.x3p'},SR9-B", f"{junk},SR9-B", rows[0], f"{lines[1].split(',')[0]},"]
    messy = tmp_path / "messy.csv"
    messy.write_text("\ufeff File , Firearm \n" + "\n".join(rows) + "\n", encoding="utf-8")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="bench_search"):
        _bench_search().main(["scale", "--cache", str(small_cache), "--queries", str(messy), "--entries", "1500",
                              "--design", "global", "--shortlist", "100", "--rerank", "0", "--time-every", "7"])
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"recall@10 [0-9.]+ hit@1 [0-9.]+ median [0-9.]+ s/query", out[-1]), out[-1]
    assert any("14 labelled scans + 1,486 decoys" in line for line in out), out
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    n = len(lines) + 2
    assert [m.split(" ")[2] for m in left_out] == [str(n), str(n + 1), str(n + 2), str(n + 3)], left_out
    assert "the same file as line 2" in left_out[2] and "empty file or firearm" in left_out[3]


@pytest.mark.parametrize("text,message", [("name,label\na.x3p,G1\n", "needs the columns file,firearm"),
                                          ("file,firearm\nmissing.x3p,G1\n", "no firearm")])
def test_outside_queries_refuse_an_unusable_csv(small_cache, tmp_path, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(SystemExit, match=message):
        _bench_search().main(["scale", "--cache", str(small_cache), "--queries", str(bad), "--entries", "1500"])
