"""``ballistics validate`` / ``ballistics.workflow.validate``: all pairs of labelled scans,
a firearm-cross-validated LR system and a self-contained HTML validation report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ballistics import ParameterError, ScanReadError, datasets
from ballistics import calibration as cal
from ballistics.calibration import CalibrationError
from ballistics.cli import main
from ballistics.review import validation_report
from ballistics.workflow import _inputs as I
from ballistics.workflow import _validate as V
from ballistics.workflow import read_table, validate


def write_table(path, paths):
    path.write_text("file,firearm\n" + "".join(f"{p},{datasets.firearm_of(p.name)}\n" for p in paths))
    return path


@pytest.fixture
def fake_pairs(monkeypatch):
    """Replace the comparisons by scores drawn per ground truth (fitting and reporting are under test)."""
    def run_pairs(inputs, output, **kw):
        rng = np.random.default_rng(0)
        names = [str(p) for p in inputs]
        rows = []
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                same = datasets.firearm_of(names[i].rsplit("/", 1)[-1]) == datasets.firearm_of(
                    names[j].rsplit("/", 1)[-1])
                s = float(rng.normal(20, 3)) if same else float(abs(rng.normal(0, 1)))
                err = "ComparisonError: too little overlap" if (i, j) == (0, 5) else None
                rows.append({"i": i, "j": j, "a_sha256": "a" * 64, "b_sha256": "b" * 64,
                             "score": None if err else s, "cmc_count": None if err else int(s),
                             "correlation": 0.5, "error": err, "params": {"method": "convergence"},
                             "library_version": "test", "result": None})
        return rows
    monkeypatch.setattr(V, "run_pairs", run_pairs)
    monkeypatch.setattr(I, "prepare_inputs", lambda items, extract: (
        [it["file"] for it in items],
        [{"name": it["file"], "family": "confocal", "pixel_size_m": 6.25e-6, "bandpass_m": None, "hints": []}
         for it in items]))


def test_read_table_errors(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("path,gun\nx.x3p,A\n")
    with pytest.raises(ParameterError, match="file"):
        read_table(t)
    t.write_text("file,firearm\nmissing.x3p,A\n")
    with pytest.raises(ScanReadError, match="does not exist"):
        read_table(t)
    p = datasets.fadul_paths()[0]
    t.write_text(f"file,firearm\n{p},A\n{p},A\n")
    with pytest.raises(ParameterError, match="twice"):
        read_table(t)
    t.write_text("file,firearm\n")
    with pytest.raises(ParameterError, match="no rows"):
        read_table(t)
    with pytest.raises(ParameterError):
        read_table(tmp_path / "nope.csv")
    # relative names are read from the table's folder or from folder=
    t.write_text(f"file,firearm\n{p.name},slide-1\n")
    assert read_table(t, folder=p.parent)[0]["file"] == str(p)


def test_design_is_checked_before_any_comparison(tmp_path):
    paths = datasets.fadul_paths()[:4]                       # two firearms only
    with pytest.raises(CalibrationError, match="at least 3 firearms"):
        validate(write_table(tmp_path / "t.csv", paths), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_validate_report_and_outputs(tmp_path, fake_pairs):
    table = write_table(tmp_path / "t.csv", datasets.fadul_paths())
    res = validate(table, tmp_path / "out", bootstrap=20, criteria={"cllr": 0.9})
    res.report = validation_report(res, res.output / "validation_report.html")
    assert res.system.domain.instrument_family == "confocal" and res.system_path.exists()
    assert len(res.pairs) == 15 and sum(p["error"] is not None for p in res.pairs) == 1
    assert res.system.cv_metrics["n_same"] == 3 and res.system.cross_validation["scheme"] == "leave-one-firearm-out"
    assert all(p["llr"] is not None for p in res.pairs if p["error"] is None)
    crit = {c["metric"]: c for c in res.criteria}
    assert crit["cllr"]["max"] == 0.9 and set(crit) >= {"cllr", "cllr_min", "cllr_cal", "eer", "rmep", "rmed"}
    assert res.passed == all(c["passed"] for c in res.criteria)
    # the system is a file a lab can use: get_system(path)
    s = cal.get_system(res.output / "lr_system.json")
    assert s.training_checksum == res.system.training_checksum
    assert s.reference["table_sha256"] and len(s.reference["scans"]) == 6
    assert (res.output / "pairs_llr.csv").read_text().count("\n") == 16
    html = res.report.read_text()
    for text in ("Validation matrix", "performance characteristic", "Tippett", "ECE", "Per firearm",
                 "Misleading pairs", "could not be compared", "too little overlap", "slide-2",
                 "Misleading evidence per instrument family", "this study: confocal", "Domain of the fitted system",
                 res.system.training_checksum):
        assert text in html, text
    assert html.count("data:image/png;base64,") == 5
    assert not re.search(r"(src|href)=['\"]?https?:", html) and "<script" not in html


def test_cli_validate(tmp_path, fake_pairs, capsys):
    table = write_table(tmp_path / "t.csv", datasets.fadul_paths())
    rc = main(["validate", str(table), "-o", str(tmp_path / "o"), "--bootstrap", "5", "--criterion", "cllr=5",
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == (0 if out["passed"] else 1)
    assert out["pairs"] == 15 and out["report"].endswith("validation_report.html")
    # a criterion nobody meets: exit status 1, the failing line named
    rc = main(["validate", str(table), "-o", str(tmp_path / "o2"), "--bootstrap", "0", "--criterion", "cllr=0"])
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL  Cllr (bits)" in text and "criteria not met" in text
    assert main(["validate", str(table), "-o", str(tmp_path / "o"), "--criterion", "nonsense=1"]) == 2
    assert "unknown criterion" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_real_comparisons_resume(tmp_path):
    """Five bundled scans of three slides (10 pairs), compared for real; a rerun resumes."""
    paths = [p for p in datasets.fadul_paths() if not p.name.startswith("Fadul 3-2")]
    table = write_table(tmp_path / "t.csv", paths)
    res = validate(table, tmp_path / "out", bootstrap=20)
    res.report = validation_report(res, res.output / "validation_report.html")
    assert len(res.pairs) == 10 and all(p["error"] is None for p in res.pairs)
    same = [p["score"] for p in res.pairs if p["same"]]
    diff = [p["score"] for p in res.pairs if not p["same"]]
    assert min(same) > max(diff)                      # the engine separates these slides
    tiles = sorted((tmp_path / "out" / "pairs").glob("tile-*.parquet"))
    stamps = [t.stat().st_mtime_ns for t in tiles]
    again = validate(table, tmp_path / "out", bootstrap=20)
    assert [t.stat().st_mtime_ns for t in tiles] == stamps          # nothing recomputed
    assert [p["score"] for p in again.pairs] == [p["score"] for p in res.pairs]
    assert res.report.exists()
