"""The README's five-line public API works as written, on the bundled sample."""

from __future__ import annotations

import pytest

import ballistics as b
from ballistics import datasets


def test_readme_api_end_to_end(tmp_path):
    raw = datasets.fadul_paths("raw")  # Fadul 1-1, 1-2, 2-1 (whole primers)
    scan = b.read_scan(raw[0])
    bf = b.extract_breech_face(scan)
    assert bf.region["type"] == "breech_face" and bf.spacing == (6.25e-6, 6.25e-6)
    result = b.compare(bf, b.extract_breech_face(b.read_scan(raw[1])))
    other = b.compare(bf, b.extract_breech_face(b.read_scan(raw[2])))
    assert result.cmc_count > other.cmc_count and result.score > other.score
    assert result.inputs[0]["sha256"] == scan.provenance.sha256  # traceable to the file
    db = b.CaseDatabase(tmp_path / "lab.db")
    for p in raw[1:]:
        db.add(b.read_scan(p), case_id="C-1")
    hits = db.search(scan, k=2)
    assert hits[0].scan_id.startswith("Fadul 1-2") and hits[0].rank == 1
    db.close()


def test_lazy_stage_attributes():
    """The heavier stages are reached lazily, and each name is the stage's own object."""
    import importlib

    expected = {
        "extract_breech_face": ("ballistics.features", "extract_breech_face"),
        "extract_firing_pin": ("ballistics.features", "extract_firing_pin"),
        "find_regions": ("ballistics.features", "find_regions"),
        "compare": ("ballistics.comparison", "compare"),
        "Comparison": ("ballistics.comparison", "Comparison"),
        "CaseDatabase": ("ballistics.database", "CaseDatabase"),
        "report": ("ballistics.review.report", "report"),
    }
    for name, (module, attr) in expected.items():
        assert getattr(b, name) is getattr(importlib.import_module(module), attr), name
    for name, module in (("plot", "ballistics.review.plot"), ("datasets", "ballistics.datasets"),
                         ("synth", "ballistics.synth")):
        assert getattr(b, name) is importlib.import_module(module), name
    with pytest.raises(AttributeError):
        b.no_such_stage  # noqa: B018
