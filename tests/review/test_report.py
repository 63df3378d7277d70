"""The comparison report on real comparisons of the bundled Fadul scans.

Same-firearm pair: Fadul 1-1 vs 1-2; different-firearm pair: Fadul 1-1 vs 2-1
(tests/review/conftest.py).
"""

from __future__ import annotations

import base64
import re
from html import escape as html_escape

import numpy as np
import pytest

import ballistics
from ballistics import BallisticsError, datasets
from ballistics.review._html import fmt

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
    # not mirrored: an alert box only for the comparison's own warnings, never about mirroring
    if cmp.warnings:
        box = html[html.index("<div class='alert'"):]
        box = box[:box.index("</div>")]
        assert "Warning about this comparison" in box and "Mirrored" not in box
        for w in cmp.warnings:
            assert html_escape(w) in box
    else:
        assert "class='alert'" not in html


@pytest.fixture(scope="module")
def flipped_pair(scans):
    """Fadul 1-2 with its rows reversed and no instrument named: matches mirrored, and lies outside any domain."""
    a, b = scans["Fadul 1-1"], scans["Fadul 1-2"]
    mirrored = ballistics.scan_from_array(b.data[::-1].copy(), b.spacing, name="Fadul 1-2 flipped")
    return a, mirrored, ballistics.compare(a, mirrored)


def test_report_warns_prominently_about_a_mirrored_match(flipped_pair):
    """A same-firearm partner with its rows reversed matches mirrored; the report says check provenance."""
    a, mirrored, cmp = flipped_pair
    assert cmp.mirrored and cmp.warnings
    html = ballistics.report(a, mirrored, comparison=cmp, reference=None, dpi=30)
    box = html[html.index("<div class='alert'"):]
    box = box[:box.index("</div>")]
    assert "Mirrored match" in box and "provenance of both files" in box
    for w in cmp.warnings:
        assert html_escape(w) in box
    assert html.index("<div class='alert'") < html.index("<h2>Summary</h2>")   # at the top


def _applicability(html):
    box = html[html.index("<div class='applicability'>"):]
    return box[:box.index("</div>")]


def test_report_opens_with_what_the_files_say_and_the_domain(same_pair):
    """Instrument family, pixel size, the LR system, its domain and how to calibrate, before any number."""
    from ballistics.calibration import CALIBRATE_HINT

    a, b, cmp = same_pair
    html = ballistics.report(a, b, comparison=cmp, reference=None, dpi=30)
    box = _applicability(html)
    assert html.index("<div class='applicability'>") < html.index("<h2>Summary</h2>")
    for s in (a, b):
        assert f"<b>{s.name}</b>: confocal (NanoFocus usurf), pixel size 6.25 µm" in box
    assert f"LR system <code>{cmp.lr['system']['name']}</code>; this comparison lies inside its validated" in box
    assert html_escape(cmp.lr["domain_summary"]) in box and "Domain of the system: confocal scans" in box
    lo, hi = cmp.llr_interval
    line = f"log10 LR {cmp.llr:+.2f}, interval {lo:+.2f} to {hi:+.2f}"
    assert line in box
    assert (f"<b>{line} &mdash; held at" in box) == bool(cmp.lr.get("interval_at_bound"))   # a bound is bold
    assert "Reference scores: none requested" in box
    assert "starting point, valid only for its declared domain" in box and html_escape(CALIBRATE_HINT) in box


def test_report_outside_the_domain_gives_no_lr_and_no_foreign_reference(flipped_pair):
    """A scan naming no instrument makes a mixed pair: no LR (with the reason), no confocal reference."""
    a, mirrored, cmp = flipped_pair
    assert cmp.llr is None
    reasons = cmp.lr["warnings"]
    assert any("outside the domain" in w or "no LR" in w for w in reasons), reasons
    html = ballistics.report(a, mirrored, comparison=cmp, reference="bundled", dpi=30)
    box = _applicability(html)
    assert "unknown (instrument not named)" in box
    assert "<b>No likelihood ratio is given.</b>" in box and html_escape(reasons[0]) in box
    assert "reference pairs are confocal scans and this pair is mixed" in box
    assert "same-firearm pairs scoring" not in html and "of 3 same-firearm pairs" not in html


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


# --------------------------------------------------------------------- raw scans: regions
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
