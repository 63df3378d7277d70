"""The search report: a database's candidate list for a questioned scan, with aligned thumbnails."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ballistics import datasets
from ballistics.database import CaseDatabase
from ballistics.retrieval import SearchResult
from ballistics.review import plot, search_report
from ballistics.review._html import fmt


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, scans):
    """Three breech faces of three firearms; the query Fadul 1-2 shares its firearm with Fadul 1-1."""
    db = CaseDatabase(tmp_path_factory.mktemp("db") / "cases")
    for name in ("Fadul 1-1", "Fadul 2-1", "Fadul 3-1"):
        s = scans[name]
        db.add(s, scan_id=name, case_id=f"C{name.split()[1]}", firearm_id=s.metadata["firearm"],
               preprocess=False)
    return db


@pytest.fixture(scope="module")
def searched(small_db, scans):
    query = scans["Fadul 1-2"]
    return query, small_db.search(query, k=3, preprocess=False)


def test_search_report_candidate_list(small_db, searched, tmp_path):
    query, hits = searched
    assert isinstance(hits, SearchResult) and len(hits) == 3
    out = tmp_path / "search.html"
    html = search_report(small_db, query, hits=hits, output=out, preprocess=False)
    assert out.read_text(encoding="utf-8") == html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<script" not in html
    # one row per candidate, in rank order, each with its aligned thumbnail
    pos = [html.index(f"<td>{h.scan_id}</td>") for h in hits]
    assert pos == sorted(pos)
    reranked = [h for h in hits if h.comparison and "error" not in h.comparison]
    assert len(re.findall(r'alt="candidate" src="data:image/png;base64,', html)) == len(reranked)
    assert "not a list of identifications" in html
    assert query.provenance.sha256 in html
    # the same-firearm candidate is on top, as the re-ranking comparison says
    assert hits[0].scan_id == "Fadul 1-1"
    # every stage's score: retrieval rank and score, inliers, CMC count / score / log10 LR; per-stage timings
    assert "stage 1: retrieval" in html and "stage 2: verification" in html and "stage 3: comparison" in html
    top = hits[0]
    row = html[html.index(f"<td>{top.scan_id}</td>"):]
    row = row[:row.index("</tr>")]
    for v in (top.retrieval_rank, top.retrieval_score, top.inliers, top.cmc_count, top.score):
        assert f">{fmt(v)}</td>" in row, v
    # a stage-3 comparison seeded by stage 2's pose lies outside the LR system's domain: no LR, and the row
    # and the note under the thumbnail say so
    if top.stage3 and top.stage3.get("seeded"):
        assert top.comparison["llr"] is None and ">n/a</td>" in row
        assert "The log10 LR is of a seeded comparison" in html
    else:
        assert f"{top.comparison['llr']:+.2f}" in row
    assert "Search timings" in html
    assert set(hits.timings) >= {"stage1", "stage2", "stage3"}       # the result brings its own timings
    for stage in ("stage 1: retrieval (signatures, key-point votes)", "stage 2: SIFT + RANSAC verification",
                  "stage 3: compare (CMC)"):
        assert stage in html


def test_search_report_shows_the_searchs_warnings(small_db, scans):
    """A query whose firearm is not stored: nothing verified, and the report says so at the top."""
    query = scans["Fadul 2-2"]
    hits = small_db.search(query, k=3, preprocess=False, exclude=["Fadul 2-1"], rerank=0)
    weak = [w for w in hits.warnings if w.startswith("no candidate reached")]
    assert len(weak) == 1
    html = search_report(small_db, query, hits=hits, preprocess=False, dpi=30)
    assert html.index("<b>Warning:</b> no candidate reached") < html.index("<h2>Candidate list</h2>")


def test_search_report_searches_when_given_no_hits(small_db, searched):
    query, hits = searched
    html = search_report(small_db, query, k=2, preprocess=False, dpi=40)
    assert "<td>Fadul 1-1</td>" in html
    assert len(re.findall(r"<td>Fadul [0-9]-[0-9]</td>", html)) >= 2
    assert hits[0].scan_id == "Fadul 1-1"


def test_search_thumbnail_is_aligned(small_db, searched):
    """The thumbnail's candidate is the stored scan resampled with the hit's registration."""
    from ballistics.comparison import Comparison

    query, hits = searched
    hit = hits[0]
    cand = small_db.load_scan(hit.scan_id)
    _, al = plot.aligned_pair(query, cand, Comparison.from_dict(hit.comparison))
    assert al.shape == query.shape
    win = int(round(150e-6 / query.spacing[1]))
    r = np.nanmean(plot.local_correlation(query.data, al.data, win))
    assert r > 0.2, r   # same slide, aligned: the surfaces agree


@pytest.mark.slow
def test_cli_search_report(small_db, tmp_path):
    from ballistics.cli import main

    q = [p for p in datasets.fadul_paths("processed") if "1-2" in p.name][0]
    out = tmp_path / "search.html"
    assert main(["report", "--db", str(small_db.path), "--query", str(q), "-o", str(out), "-k", "2",
                 "--no-preprocess"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Fadul 1-1" in html and "Candidate list" in html


