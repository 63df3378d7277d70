"""The validation report drawn from a shipped LR system's stored cross-validation.

The report is built from one function per section; these tests check the sections'
order, that each says what its data say, and that pair names never carry folders.
"""

from __future__ import annotations

import re

import pytest

from ballistics import ParameterError
from ballistics import calibration as cal
from ballistics.review import validation_report
from ballistics.review.validation_report import _pairs_from_system, render_validation_report

SECTIONS = ["What this report says, and what it does not", "Validation matrix",
            "Performance characteristics (cross-validated)", "Domain of the fitted system", "Figures",
            "Per firearm", "Misleading pairs", "Verbal equivalents (ENFSI 2015)", "System and provenance"]


@pytest.fixture(scope="module")
def topmatch():
    return cal.get_system("learned-topmatch-v1")


def _h2(html):
    return [re.sub(r" \(\d+\)$", "", t) for t in re.findall(r"<h2>([^<]*)</h2>", html)]


def test_sections_in_order_from_a_system(topmatch, tmp_path):
    out = validation_report(system=topmatch, output=tmp_path / "v.html")
    html = out.read_text(encoding="utf-8")
    assert _h2(html) == SECTIONS
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html and len(re.findall(r'src="data:image/png;base64,', html)) >= 3
    # the verdict counts the pairs it was given
    pairs = _pairs_from_system(topmatch)
    n_same = sum(p["same"] for p in pairs)
    assert f"{len(pairs)} pairs evaluated ({n_same} same-firearm, {len(pairs) - n_same} different-firearm)" in html
    # every misleading pair is listed, and their number is in the heading
    mis = [p for p in pairs if (p["same"] and p["llr"] < 0) or (not p["same"] and p["llr"] > 0)]
    assert f"<h2>Misleading pairs ({len(mis)})</h2>" in html
    section = html[html.index("<h2>Misleading pairs"):html.index("<h2>Verbal equivalents")]
    assert section.count("<td class='num fail'>") == len(mis) > 0
    assert topmatch.domain.summary().split(",")[0] in html and topmatch.name in html


def test_failed_pairs_criteria_and_names(topmatch):
    pairs = _pairs_from_system(topmatch)
    pairs[0] = dict(pairs[0], llr=None, error="ScanReadError: unreadable")
    pairs[1] = dict(pairs[1], a="/lab/scans/A 1.x3p", b="/lab/scans/B 2.x3p", llr=5.0, same=False)
    html = render_validation_report(system=topmatch, pairs=pairs, title="Study <1>", criteria={"cllr": 1e-6},
                                    parameters={"note": "kept", "criteria": "not repeated"})
    assert _h2(html) == SECTIONS[:7] + ["Pairs that could not be compared"] + SECTIONS[7:]
    assert "ScanReadError: unreadable" in html and "; 1 pairs could not be compared" in html
    assert "<title>Study &lt;1&gt;</title>" in html
    assert "A 1.x3p" in html and "/lab/scans" not in html              # file names only, never folders
    assert "validation criteria are not met" in html                   # an impossible Cllr bar fails
    assert "<th>note</th><td><code>kept</code></td>" in html and "not repeated" not in html


def test_needs_a_result_or_a_system():
    with pytest.raises(ParameterError):
        render_validation_report()
