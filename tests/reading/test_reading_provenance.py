"""Writer provenance and the handedness hint: who wrote each file, whether the record
survives write_x3p -> read_scan, and that only the known mirrored route is flagged."""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin, TiffImagePlugin
from reading_tools import fuzz_harness
from shared_files import shared_path

import ballistics
from ballistics.reading import handedness_hint
from ballistics.reading._archive import rewrite_main
from ballistics.reading._provenance import MAX_FIELD_CHARS, clean_writer, x3p_writer
from ballistics.scan import Provenance

BUNDLED = Path(ballistics.__file__).parent / "datasets" / "data"
ALWAYS = ("format", "creator", "date", "software", "instrument")

#: What the DFSC K004* files (converted 2020-12-27) say about themselves, Record2 verbatim.
K004_LIKE = {"format": "x3p", "creator": "Converted from Cadre TMD Format", "date": "2020-12-27T22:53:52",
             "software": None, "instrument": "Cadre TopMatch-GS 3D", "instrument_manufacturer": "Cadre",
             "instrument_model": "TopMatch-GS 3D", "calibration_date": "2020-10-13"}


@pytest.fixture(scope="module")
def bundled_scan():
    return ballistics.read_scan(BUNDLED / "Fadul 1-2 processed.x3p")


def _with_writer(scan, writer, hint=None):
    prov = Provenance.from_dict({**scan.provenance.to_dict(), "writer": writer, "handedness_hint": hint})
    meta = {**scan.metadata, "instrument": writer.get("instrument")} if isinstance(writer.get("instrument"), str) \
        else dict(scan.metadata)
    return dataclasses.replace(scan, provenance=prov, metadata=meta)


# ------------------------------------------------------------------ bundled files (always)
def test_bundled_files_name_their_writer():
    files = sorted(BUNDLED.glob("*.x3p"))
    assert len(files) >= 9
    for f in files:
        s = ballistics.read_scan(f)
        w = s.provenance.writer
        assert set(ALWAYS) <= set(w), f.name
        assert w["format"] == "x3p" and w["creator"] == "Xiaoyu Zheng", f.name
        # written by ballistics 0.1.0's make_sample: the software is named, the instrument
        # (stored twice by that version) is not doubled
        assert w["software"].startswith("ballistics "), f.name
        assert w["instrument"] == s.metadata["instrument"] == "NanoFocus usurf", f.name
        assert w["comment"] == "Written by ballistics.", f.name  # the JSON record is not copied
        assert s.provenance.handedness_hint is None, f.name
        assert s.summary()["provenance"]["writer"] == w


def test_writer_survives_the_round_trip(bundled_scan, tmp_path):
    back = ballistics.read_scan(ballistics.write_x3p(bundled_scan, tmp_path / "rt.x3p"))
    assert back.provenance.writer == bundled_scan.provenance.writer
    assert back.metadata["instrument"] == bundled_scan.metadata["instrument"]
    step = back.provenance.steps[-1]
    assert step["step"] == "read" and step["file_written_by"] == f"ballistics {ballistics.__version__}"
    # twice: still the first file's writer, not the intermediate one
    again = ballistics.read_scan(ballistics.write_x3p(back, tmp_path / "rt2.x3p"))
    assert again.provenance.writer == bundled_scan.provenance.writer


def test_hint_and_full_writer_survive_write_and_processing(bundled_scan, tmp_path):
    s = _with_writer(bundled_scan, dict(K004_LIKE), handedness_hint(K004_LIKE))
    assert s.provenance.handedness_hint.startswith("possibly y-flipped: converted by ")
    assert "2020-12-27" in s.provenance.handedness_hint
    back = ballistics.read_scan(ballistics.write_x3p(s, tmp_path / "k.x3p"))
    assert back.provenance.writer == {**K004_LIKE}
    assert back.provenance.handedness_hint == s.provenance.handedness_hint
    # Record2 of the new file keeps manufacturer and model apart and the calibration date
    main = zipfile.ZipFile(tmp_path / "k.x3p").read("main.xml").decode()
    assert "<Manufacturer>Cadre</Manufacturer>" in main and "<Model>TopMatch-GS 3D</Model>" in main
    assert "<CalibrationDate>2020-10-13" in main
    derived = back.derive(back.data * 1.0, "noop")
    assert derived.provenance.writer == back.provenance.writer
    assert derived.provenance.handedness_hint == back.provenance.handedness_hint


def test_hint_is_recomputed_when_the_record_has_none(bundled_scan, tmp_path):
    # a record without the handedness_hint key (as ballistics 0.1.0 wrote) gets one from the writer
    s = _with_writer(bundled_scan, dict(K004_LIKE))
    p = ballistics.write_x3p(s, tmp_path / "old.x3p")
    main = zipfile.ZipFile(p).read("main.xml").replace(b',"handedness_hint":null', b"")
    assert b"handedness_hint" not in main
    p.write_bytes(rewrite_main(p.read_bytes(), main))
    back = ballistics.read_scan(p)
    assert back.provenance.handedness_hint == handedness_hint(K004_LIKE) is not None


def test_record_cannot_set_or_suppress_the_hint(bundled_scan, tmp_path):
    """The hint is computed from the writer record, never taken from the file's JSON."""
    s = _with_writer(bundled_scan, dict(K004_LIKE), hint=None)  # a record that says: no hint
    p = ballistics.write_x3p(s, tmp_path / "k.x3p")
    assert b'"handedness_hint":null' in zipfile.ZipFile(p).read("main.xml")
    back = ballistics.read_scan(p)
    assert back.provenance.handedness_hint == handedness_hint(K004_LIKE)  # not suppressed
    plain = ballistics.write_x3p(bundled_scan, tmp_path / "plain.x3p")
    main = zipfile.ZipFile(plain).read("main.xml").replace(b'"handedness_hint":null',
                                                           b'"handedness_hint":"possibly y-flipped: forged"')
    plain.write_bytes(rewrite_main(plain.read_bytes(), main))
    back = ballistics.read_scan(plain)
    assert back.provenance.handedness_hint is None  # not injected
    assert back.provenance.steps[-1]["unverified_record"]["handedness_hint"].endswith("forged")


def test_in_memory_scan_gets_the_ballistics_file_as_writer(tmp_path):
    s = ballistics.scan_from_array(np.zeros((8, 8)), 3e-6)
    assert s.provenance.writer == {} and s.provenance.handedness_hint is None
    back = ballistics.read_scan(ballistics.write_x3p(s, tmp_path / "a.x3p"))
    w = back.provenance.writer
    assert w["format"] == "x3p" and w["software"] == f"ballistics {ballistics.__version__}"
    assert w["creator"] == "ballistics" and back.provenance.handedness_hint is None


def test_unreadable_writer_record_is_ignored_with_a_warning(bundled_scan, tmp_path, caplog):
    s = _with_writer(bundled_scan, {"format": 5, "creator": ["x"]})
    p = ballistics.write_x3p(s, tmp_path / "bad.x3p")
    with caplog.at_level(logging.WARNING, logger="ballistics.reading"):
        back = ballistics.read_scan(p)
    assert "unreadable writer record" in caplog.text
    assert back.provenance.writer["software"] == f"ballistics {ballistics.__version__}"  # this file's Record2


def test_handedness_hint_only_for_the_known_route():
    assert handedness_hint(K004_LIKE)
    assert handedness_hint({**K004_LIKE, "creator": " converted from CADRE TMD format "})
    # the same converter on another day, another creator on that day, another format: no hint
    assert handedness_hint({**K004_LIKE, "date": "2021-03-11T14:52:35"}) is None
    assert handedness_hint({**K004_LIKE, "creator": "CSAFE"}) is None
    assert handedness_hint({**K004_LIKE, "format": "al3d"}) is None
    assert handedness_hint({**K004_LIKE, "instrument_manufacturer": "NanoFocus", "instrument": "NanoFocus"}) is None
    assert handedness_hint({}) is None and handedness_hint(None) is None


def test_x3p_writer_of_sparse_and_oversize_records():
    from defusedxml import ElementTree as ET
    root = ET.fromstring(b"<p:ISO5436_2 xmlns:p='x'><Record1><Revision>ISO5436 - 2000</Revision></Record1>"
                         b"</p:ISO5436_2>")
    w = x3p_writer(root)
    assert {k: w[k] for k in ALWAYS} == {"format": "x3p", "creator": None, "date": None, "software": None,
                                         "instrument": None}
    long = "y" * (3 * MAX_FIELD_CHARS)
    root = ET.fromstring(f"<r><Record2><Creator>  a\n b </Creator><Comment>{long}</Comment>"
                         "<ProbingSystem><Type>Software</Type><Identification>tool 2</Identification>"
                         "</ProbingSystem></Record2></r>".encode())
    w = x3p_writer(root)
    assert w["creator"] == "a b" and len(w["comment"]) == MAX_FIELD_CHARS and w["software"] == "tool 2"
    assert clean_writer({"format": "x3p", "creator": 3}) is None and clean_writer([1]) is None
    assert clean_writer({"creator": "x"}) is None  # no format: not a writer record


def test_image_and_al3d_writers(tmp_path, bundled_scan):
    grey = (np.arange(64 * 64) % 251).reshape(64, 64).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Microscope Suite 4.2")
    info.add_text("Author", "Lab A")
    Image.fromarray(grey).save(tmp_path / "a.png", dpi=(10000, 10000), pnginfo=info)
    s = ballistics.read_scan(tmp_path / "a.png")
    assert s.provenance.writer["software"] == s.metadata["software"] == "Microscope Suite 4.2"
    assert s.provenance.writer["creator"] == "Lab A" and s.provenance.writer["format"] == "png"
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[305], tags[271], tags[272], tags[306] = "ScanTool 1.0", "Leica", "DCM8", "2024:05:01 10:00:00"
    Image.fromarray(grey).save(tmp_path / "a.tif", dpi=(10000, 10000), tiffinfo=tags)
    t = ballistics.read_scan(tmp_path / "a.tif")
    w = t.provenance.writer
    assert (w["format"], w["software"], w["instrument"], w["date"]) == ("tiff", "ScanTool 1.0", "Leica DCM8",
                                                                        "2024:05:01 10:00:00")
    assert t.metadata["software"] == "ScanTool 1.0" and t.provenance.handedness_hint is None
    (tmp_path / "d.al3d").write_bytes(fuzz_harness._al3d_bytes(bundled_scan.data[:32, :32], bundled_scan.spacing[1]))
    a = ballistics.read_scan(tmp_path / "d.al3d", allow_empty=True)
    assert a.provenance.writer["format"] == "al3d" and a.provenance.writer["instrument"] == "Alicona"
    assert a.provenance.writer["creator"] is None and a.provenance.writer["software"] is None


# ------------------------------------------------------------------ ../shared/data (skips if absent)
def test_shared_dfsc_k004_group_is_flagged_and_k002fj_is_not():
    for name in ("K004dB1", "K004dB2", "K004dB3", "K004dD1", "K004dD3"):
        s = ballistics.read_scan(shared_path("dfsc", f"{name}.x3p"))
        w = s.provenance.writer
        assert w["creator"] == "Converted from Cadre TMD Format" and w["date"].startswith("2020-12-27"), name
        assert w["instrument"] == "Cadre TopMatch-GS 3D" and w["converted_from"] == "Cadre TMD", name
        assert s.provenance.handedness_hint and "2020-12-27" in s.provenance.handedness_hint, name
    for name in ("K002fJ1", "K002fJ2"):
        s = ballistics.read_scan(shared_path("dfsc", f"{name}.x3p"))
        w = s.provenance.writer
        assert w["creator"] == "CSAFE" and w["date"].startswith("2021-03-11"), name
        assert w["instrument"] == "Cadre TopMatch-GS 3D" and w["converted_from"] == "Cadre TMD", name
        assert s.provenance.handedness_hint is None, name


def test_shared_k004_hint_survives_the_round_trip(tmp_path):
    s = ballistics.read_scan(shared_path("dfsc", "K004dD3.x3p"))
    back = ballistics.read_scan(ballistics.write_x3p(s, tmp_path / "k.x3p"))
    assert back.provenance.writer == s.provenance.writer
    assert back.provenance.handedness_hint == s.provenance.handedness_hint is not None


def test_shared_collection_writers(shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.suffix in (".x3p", ".al3d", ".png"))
    assert len(files) >= 58
    flagged = set()
    for f in files:
        s = ballistics.read_scan(f)
        w = s.provenance.writer
        assert set(ALWAYS) <= set(w) and w["format"] in ("x3p", "al3d", "png"), f.name
        if s.provenance.handedness_hint:
            flagged.add(f.name)
        if f.parent.name in ("processed", "raw", "cmcR_reference"):
            assert (w["creator"], w["instrument"]) == ("Xiaoyu Zheng", "NanoFocus usurf"), f.name
            assert w["date"].startswith("2011-01-24"), f.name
    assert flagged == {f"{n}.x3p" for n in ("K004dB1", "K004dB2", "K004dB3", "K004dD1", "K004dD3")}
    png = ballistics.read_scan(shared_data / "nbide_2d" / "NBIDE R BF 118.png").provenance.writer
    assert png["software"] is None and png["modified"] == "2016-05-02T17:01:40+00:00"
    x = ballistics.read_scan(shared_data / "alicona" / "Klein_replica_mode_X3P_Alicona.x3p").provenance.writer
    assert x["instrument"] == "Alicona Imaging GmbH OpenGPS Export" and x["creator"] is None
