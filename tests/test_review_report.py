"""Reports and comparison figures on real comparisons of the bundled Fadul scans.

Same-firearm pair: Fadul 1-1 vs 1-2; different-firearm pair: Fadul 1-1 vs 2-1.
"""

from __future__ import annotations

import base64
import re
from html import escape as html_escape

import matplotlib.pyplot as plt
import numpy as np
import pytest

import ballistics
from ballistics import BallisticsError, datasets
from ballistics.review import plot
from ballistics.review._html import fmt
from ballistics.review.reference import ReferenceScores, reference_scores


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scans():
    return {s.name: s for s in datasets.fadul("processed")}


@pytest.fixture(scope="module")
def same_pair(scans):
    a, b = scans["Fadul 1-1"], scans["Fadul 1-2"]
    return a, b, ballistics.compare(a, b)


@pytest.fixture(scope="module")
def diff_pair(scans):
    a, b = scans["Fadul 1-1"], scans["Fadul 2-1"]
    return a, b, ballistics.compare(a, b)


@pytest.fixture(scope="module")
def reference():
    return reference_scores("bundled")


# --------------------------------------------------------------------- reference scores
def test_reference_scores_bundled(reference, scans):
    assert isinstance(reference, ReferenceScores)
    assert len(reference.same) == 3 and len(reference.different) == 12
    assert reference.library_version == ballistics.__version__
    assert reference.comparison_method == "convergence"        # compare's default
    # every pair is labelled by the ground truth, not by its score
    for p in reference.pairs:
        assert p.same == (scans[p.a].metadata["firearm"] == scans[p.b].metadata["firearm"])
    assert sorted(reference.same) == sorted(p.cmc_count for p in reference.pairs if p.same)
    with pytest.raises(BallisticsError):
        reference_scores("nowhere")
    with pytest.raises(BallisticsError):
        reference_scores([scans["Fadul 1-1"]])


def test_reference_scores_are_read_from_the_cache(scans, tmp_path, monkeypatch):
    """A cached entry under the computation's key is returned without comparing anything."""
    import json

    from ballistics.review._reference_cache import cache_key, write_cached

    monkeypatch.setenv("BALLISTICS_CACHE", str(tmp_path))
    chosen = [scans["Fadul 1-1"], scans["Fadul 2-1"]]
    planted = ReferenceScores(source="planted entry", same=(), different=(7.0,), elapsed_s=0.5)
    key = cache_key("original", {"cell_grid": (4, 4)}, [s.checksum for s in chosen])
    write_cached(key, json.dumps(planted.to_dict()).encode())
    got = reference_scores(chosen, method="original", cell_grid=(4, 4))
    assert got == planted
    # another method is another key: not served from this entry (would compare; not run here)
    assert cache_key("high", {"cell_grid": (4, 4)}, [s.checksum for s in chosen]) != key


# --------------------------------------------------------------------- figures on real results
def _filled_patches(ax):
    return [p for p in ax.patches if p.get_fill()]


@pytest.mark.parametrize("which", ["same_pair", "diff_pair"])
def test_comparison_figure_marks_every_cell(which, request):
    a, b, cmp = request.getfixturevalue(which)
    direction = next(iter(cmp.directions)) if cmp.directions else "a_to_b"
    sel = [c for c in cmp.cells if c["direction"] == direction]
    n_cong = sum(bool(c["congruent"]) for c in sel)
    fig = plot.comparison(a, b, cmp, direction=direction)
    ref_ax, tgt_ax = fig.axes[0], fig.axes[1]
    assert len(ref_ax.patches) == len(sel)            # every cell outlined on the reference
    assert len(_filled_patches(ref_ax)) == n_cong      # congruent ones filled
    assert len(_filled_patches(tgt_ax)) == n_cong      # ... and drawn on the target too
    numbers = sorted(int(t.get_text().split("\n")[0]) for t in ref_ax.texts
                     if t.get_text().split("\n")[0].isdigit())
    assert numbers == list(range(1, n_cong + 1))
    # the shared colour scale: both height panels use the same limits
    assert ref_ax.get_images()[0].get_clim() == tgt_ax.get_images()[0].get_clim()
    assert a.name in ref_ax.get_title() and b.name in tgt_ax.get_title()
    assert ref_ax.get_xlabel() == "x (mm)"


def test_rotation_curve_figure_shows_the_curve(same_pair):
    _, _, cmp = same_pair
    ax = plot.rotation_curve(cmp)
    lines = [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "")]
    assert len(lines) == len(cmp.rotation_curve)
    for ln, pts in zip(lines, cmp.rotation_curve.values()):
        arr = np.asarray(pts, float)
        arr = arr[np.argsort(arr[:, 0])]
        np.testing.assert_allclose(ln.get_xdata(), arr[:, 0])
        np.testing.assert_allclose(ln.get_ydata(), arr[:, 1])
    assert "degrees" in ax.get_xlabel()


def test_agreement_is_higher_for_the_same_firearm(same_pair, diff_pair):
    def mean_local_corr(a, b, cmp):
        a_al, b_al = plot.aligned_pair(a, b, cmp)
        assert a_al.shape == b_al.shape
        win = int(round(150e-6 / a_al.spacing[1]))
        return float(np.nanmean(plot.local_correlation(a_al.data, b_al.data, win)))

    r_same = mean_local_corr(*same_pair)
    r_diff = mean_local_corr(*diff_pair)
    assert r_same > r_diff + 0.05, (r_same, r_diff)
    fig = plot.agreement(*same_pair)
    assert "um" in fig.axes[2].get_ylabel() or any("um" in a.get_ylabel() for a in fig.axes)


# --------------------------------------------------------------------- reports
_IMG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _check_report(html, a, b, cmp):
    # self-contained: every image embedded, nothing fetched from the network
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html and "<script" not in html
    imgs = _IMG.findall(html)
    assert len(imgs) >= 5
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # provenance: names, file checksums, surface checksums, version, date, parameters
    for s in (a, b):
        assert s.name in html
        assert s.provenance.sha256 and s.provenance.sha256 in html
        assert s.checksum in html
        assert s.provenance.source in html
    assert ballistics.__version__ in html
    assert re.search(r"Date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    for k in cmp.params:
        assert str(k) in html
    # the plain-language summary states the count and what it does not mean
    assert f"<b>{cmp.cmc_count}</b> cells were congruent" in html
    assert "not a probability" in html


def test_report_same_firearm_pair(same_pair, reference, tmp_path):
    a, b, cmp = same_pair
    out = tmp_path / "same.html"
    html = ballistics.report(a, b, comparison=cmp, output=out, reference=reference)
    assert out.read_text(encoding="utf-8") == html
    _check_report(html, a, b, cmp)
    # the reported pair is left out of its own reference: 2 same + 12 different remain
    assert "of 2 same-firearm pairs" in html and "of 12 different-firearm pairs" in html


def test_report_different_firearm_pair(diff_pair, reference, tmp_path):
    a, b, cmp = diff_pair
    html = ballistics.report(a, b, comparison=cmp, output=tmp_path / "diff.html", reference=reference)
    _check_report(html, a, b, cmp)
    assert "of 3 same-firearm pairs" in html and "of 11 different-firearm pairs" in html


def test_report_places_same_above_different(same_pair, diff_pair):
    assert same_pair[2].cmc_count > diff_pair[2].cmc_count


def test_report_write_is_atomic_and_replaces(same_pair, tmp_path):
    a, b, cmp = same_pair
    out = tmp_path / "sub" / "r.html"
    out.parent.mkdir()
    out.write_text("old report")
    html = ballistics.report(a, b, comparison=cmp, output=out, reference=None, dpi=40)
    assert out.read_text(encoding="utf-8") == html
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]   # no temporary file left
    with pytest.raises(BallisticsError):                                 # a directory is no file
        ballistics.report(a, b, comparison=cmp, output=tmp_path, reference=None, dpi=40)


def test_report_warns_when_the_reference_is_on_another_scale(same_pair):
    a, b, cmp = same_pair
    other = {"same": [30, 40], "different": [0, 1], "source": "another method",
             "comparison_method": "original"}
    html = ballistics.report(a, b, comparison=cmp, reference=other, dpi=40)
    assert "on a different scale and must not be relied on" in html
    assert "of 2 same-firearm pairs" in html


def test_report_rejects_a_bad_reference_clearly(same_pair):
    a, b, cmp = same_pair
    html = ballistics.report(a, b, comparison=cmp, reference={"same": [1]}, dpi=40)
    assert "No reference distribution" in html
    with pytest.raises(BallisticsError):
        ballistics.report(a, b, comparison=cmp, reference=None, dpi=0)


def test_report_shows_the_lr_system_and_learned_score(same_pair):
    """The LR (number, interval, words), its system, its figures and the learned score's contributions."""
    a, b, cmp = same_pair
    assert cmp.llr is not None and cmp.lr, "compare() gave no LR"
    html = ballistics.report(a, b, comparison=cmp, reference=None, dpi=40)
    lr = cmp.lr
    assert f"log10 LR = <b>{cmp.llr:+.2f}</b>" in html
    lo, hi = cmp.llr_interval
    assert f"{lo:+.2f} to {hi:+.2f}" in html                      # interval in the headline
    assert "ENFSI 2015" in html and html_escape(lr["verbal"]) in html
    sysd = lr["system"]
    assert sysd["name"] in html and "cross-validated Cllr" in html and fmt(sysd["cv_cllr"]) in html
    assert html_escape(sysd["reference"]) in html                 # the reference population
    for w in lr["warnings"]:                                       # applicability warnings shown
        assert html_escape(w) in html
    for kind in ("tippett", "ece", "pav"):                         # shipped calibration figures embedded
        assert f"alt='{kind}' src='data:image/png;base64," in html
    assert 'alt="LR curve with this comparison"' in html
    # learned score: every feature with its description, sorted by |contribution|
    from ballistics.comparison._learned import FEATURES

    assert "contribution to the logit" in html
    feats = sorted((k for k in cmp.score_contributions if k != "intercept"),
                   key=lambda k: -abs(cmp.score_contributions[k]))
    pos = [html.index(f"<td>{k}</td>") for k in feats]
    assert pos == sorted(pos)
    for k in feats:
        assert html_escape(FEATURES[k]) in html
    assert f"<b>{cmp.cmc_count}</b> cells were congruent" in html   # the CMC count is still there
    # the caveats an LR needs
    for phrase in ("not the probability that the same firearm fired both cases", "source level",
                   "reference population", "ELUB"):
        assert phrase in html
    assert "class='alert'" not in html                              # not mirrored: no alarm


def test_report_warns_prominently_about_a_mirrored_match(scans):
    """A same-firearm partner with its rows reversed matches mirrored; the report says check provenance."""
    a, b = scans["Fadul 1-1"], scans["Fadul 1-2"]
    mirrored = ballistics.scan_from_array(b.data[::-1].copy(), b.spacing, name="Fadul 1-2 flipped")
    cmp = ballistics.compare(a, mirrored)
    assert cmp.mirrored and cmp.warnings
    html = ballistics.report(a, mirrored, comparison=cmp, reference=None, dpi=30)
    box = html[html.index("<div class='alert'"):]
    box = box[:box.index("</div>")]
    assert "Mirrored match" in box and "provenance of both files" in box
    for w in cmp.warnings:
        assert html_escape(w) in box
    assert html.index("<div class='alert'") < html.index("<h2>Summary</h2>")   # at the top


def test_lr_headline_without_an_lr():
    from ballistics.review._lr_sections import learned_section, lr_headline, lr_section, mirror_warning

    d = {"cmc_count": 3, "llr": None, "lr": {}}
    assert "No likelihood ratio was computed" in lr_headline(d)
    assert lr_section(d, 40) == "" and learned_section(d) == "" and mirror_warning(d) == ""


@pytest.mark.slow
def test_cli_report_from_files(tmp_path, reference):
    from ballistics.cli import main

    paths = {p.stem.replace(" processed", ""): p for p in datasets.fadul_paths("processed")}
    out = tmp_path / "cli.html"
    rc = main(["report", str(paths["Fadul 1-1"]), str(paths["Fadul 2-1"]), "-o", str(out)])
    assert rc == 0
    html = out.read_text(encoding="utf-8")
    assert "Fadul 1-1 processed.x3p" in html and "Fadul 2-1 processed.x3p" in html
    assert len(_IMG.findall(html)) >= 5


def test_cli_report_errors(tmp_path, capsys):
    from ballistics.cli import main

    p = str(datasets.fadul_paths("processed")[0])
    assert main(["report", p, "-o", str(tmp_path / "x.html")]) == 2
    assert "exactly two scan files" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path / "db"), "-o", str(tmp_path / "x.html")]) == 2


def test_report_rejects_bad_input(tmp_path):
    with pytest.raises(BallisticsError):
        ballistics.report(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(BallisticsError):
        ballistics.report(tmp_path / "missing.x3p", tmp_path / "missing2.x3p")


# --------------------------------------------------------------------- search report
@pytest.fixture(scope="module")
def small_db(tmp_path_factory, scans):
    db = ballistics.CaseDatabase(tmp_path_factory.mktemp("db") / "cases")
    for name in ("Fadul 1-1", "Fadul 2-1", "Fadul 3-1"):
        s = scans[name]
        db.add(s, scan_id=name, case_id=f"C{name.split()[1]}", firearm_id=s.metadata["firearm"],
               preprocess=False)
    return db


def test_search_report_candidate_list(small_db, scans, tmp_path):
    from ballistics.review import search_report

    query = scans["Fadul 1-2"]
    hits = small_db.search(query, k=3, preprocess=False)
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
    assert f"{top.comparison['llr']:+.2f}" in row
    assert "Search timings" in html
    for stage in ("stage 1: FAISS retrieval", "stage 2: SIFT + RANSAC verification", "stage 3: compare (CMC)"):
        assert stage in html


def test_search_thumbnail_is_aligned(small_db, scans):
    """The thumbnail's candidate is the stored scan resampled with the hit's registration."""
    from ballistics.comparison import Comparison

    query = scans["Fadul 1-2"]
    hit = small_db.search(query, k=1, preprocess=False)[0]
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


# --------------------------------------------------------------------- raw scans: regions
def test_regions_figure_on_found_regions():
    raw = datasets.fadul("raw")[0]
    found = ballistics.find_regions(raw)
    ax = plot.regions(raw, found)
    circles = [p for p in ax.patches if type(p).__name__ == "Circle"]
    assert circles[0].center == pytest.approx((found.centre_m[1] * 1e3, found.centre_m[0] * 1e3))
    assert circles[0].radius == pytest.approx(found.primer_radius_m * 1e3)
    # the extracted scan's region, shifted back, lands on the same circles
    ext = ballistics.extract_breech_face(raw)
    ax2 = plot.regions(raw, ext)
    c2 = [p for p in ax2.patches if type(p).__name__ == "Circle"]
    assert c2[0].center == pytest.approx(circles[0].center, abs=1e-3)   # within 1 um
    assert c2[1].center == pytest.approx(circles[1].center, abs=1e-3)


@pytest.mark.slow
def test_raw_report_says_reference_was_prepared_differently(tmp_path):
    raw = {s.name: s for s in datasets.fadul("raw")}
    html = ballistics.report(raw["Fadul 1-1"], raw["Fadul 2-1"], extract=True, reference="bundled")
    assert "placement is indicative only" in html
    processed = datasets.fadul("processed")
    html = ballistics.report(processed[0], processed[2], reference="bundled")
    assert "placement is indicative only" not in html


def test_report_from_raw_scans_with_extraction(tmp_path):
    raw = {s.name: s for s in datasets.fadul("raw")}
    a, b = raw["Fadul 1-1"], raw["Fadul 1-2"]
    html = ballistics.report(a, b, extract=True, reference=None, output=tmp_path / "raw.html")
    assert "Regions found on the raw scans" in html
    assert a.provenance.sha256 in html and b.provenance.sha256 in html
    assert "extract_breech_face" in html          # the processing steps are listed
    assert len(_IMG.findall(html)) >= 5
