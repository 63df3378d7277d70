"""Reading and writing scans: real files, repairs, round trips and every corruption case."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ballistics
from ballistics import datasets, reading
from ballistics.errors import (BallisticsError, EmptyScanError, ScanFormatError, ScanReadError,
                               ScanTooLargeError, UnitsError)
from conftest import shared_path


# ---------------------------------------------------------------- helpers
def _x3p_bytes(z: np.ndarray, spacing: float = 6.25e-6) -> bytes:
    import x3pio

    buf = io.BytesIO()
    x3pio.write(buf, z, x_scale=spacing, y_scale=spacing)
    return buf.getvalue()


def _rewrite(raw: bytes, edit) -> bytes:
    """Rewrite main.xml of an x3p archive with ``edit(bytes) -> bytes`` (checksum kept stale)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("main.xml"):
                data = edit(data)
            dst.writestr(info.filename, data)
    return out.getvalue()


def _fix_md5(raw: bytes) -> bytes:
    """Make md5checksum.hex match main.xml again (a well-formed but non-standard file)."""
    import hashlib

    src = zipfile.ZipFile(io.BytesIO(raw))
    main = src.read("main.xml")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "md5checksum.hex":
                data = (hashlib.md5(main).hexdigest() + " *main.xml\n").encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


@pytest.fixture()
def surface() -> np.ndarray:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1e-6, (40, 50))
    z[:5, :5] = np.nan
    return z


# ---------------------------------------------------------------- bundled sample
def test_bundled_sample_reads_with_identifiers():
    scans = datasets.fadul("processed")
    assert [s.exhibit_id for s in scans] == ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2",
                                             "Fadul 3-1", "Fadul 3-2"]
    for s in scans:
        assert s.spacing == pytest.approx((6.25e-6, 6.25e-6))
        assert 0.6 < s.missing_fraction < 0.8
        assert 0.5e-6 < np.nanstd(s.data) < 5e-6  # heights in metres, micrometre roughness
        assert len(s.provenance.sha256) == 64
    raw = datasets.fadul("raw")
    assert len(raw) == 3 and all(s.shape[0] > 550 for s in raw)
    assert raw[0].metadata["firearm"] == "slide-1"


def test_roundtrip_is_exact(tmp_path, surface):
    scan = ballistics.scan_from_array(surface, 3.125e-6, name="t", exhibit_id="E1", case_id="C7")
    scan = scan.derive(scan.data * 1.0, "identity", {"why": "test"})
    back = ballistics.read_scan(ballistics.write_x3p(scan, tmp_path / "a b.x3p"))
    np.testing.assert_array_equal(back.mask, scan.mask)
    np.testing.assert_array_equal(back.data[back.mask], scan.data[scan.mask])
    assert back.spacing == scan.spacing
    assert (back.case_id, back.exhibit_id) == ("C7", "E1")
    assert back.provenance.steps[0]["step"] == "identity"  # history survives the file


def test_write_is_atomic_and_keeps_old_file_on_failure(tmp_path, surface, monkeypatch):
    scan = ballistics.scan_from_array(surface, 3.125e-6)
    target = ballistics.write_x3p(scan, tmp_path / "s.x3p")
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reading, "write_x3p_file", boom)
    with pytest.raises(RuntimeError):
        ballistics.write_x3p(scan, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.x3p"]  # no temp file left behind


# ---------------------------------------------------------------- real files
def test_every_shared_scan_reads_and_roundtrips(shared_data, tmp_path):
    files = sorted(p for p in shared_data.rglob("*")
                   if p.suffix.lower() in (".x3p", ".png", ".tif", ".tiff", ".al3d"))
    fixed = {}
    for p in files:
        s = ballistics.read_scan(p)
        assert s.mask.any(), p
        fixed[p.name] = s.provenance.fixes
        if s.kind == "height" and "processed/" in str(p) and not p.name.startswith("Fadul 1-"):
            continue  # the round trip of 37 more processed Fadul files adds time, not information
        back = ballistics.read_scan(ballistics.write_x3p(s, tmp_path / "rt.x3p"))
        np.testing.assert_array_equal(back.mask, s.mask)
        np.testing.assert_allclose(back.data[back.mask], s.data[s.mask], rtol=0, atol=0)
        assert back.spacing == s.spacing and back.kind == s.kind
    assert len(files) == 58  # 54 x3p, 2 NBIDE PNG, 2 Alicona al3d (../shared/data/README.md)
    dfsc = {k: v for k, v in fixed.items() if k.startswith("K0")}
    assert len(dfsc) == 7 and all(any("revision" in f for f in v) for v in dfsc.values())
    # only the SR9-J files store micrometres
    for name, v in dfsc.items():
        assert any("micrometres" in f for f in v) == ("J" in name), name


def test_dfsc_micrometre_file_gets_metres(shared_data):
    s = ballistics.read_scan(shared_data / "dfsc" / "K002fJ1.x3p")
    assert s.spacing[1] == pytest.approx(7.38452e-6)
    assert 0.2e-6 < np.nanstd(s.data) < 5e-6


def test_cli_info_on_dfsc_reports_metres_and_fix(shared_data):
    out = subprocess.run([sys.executable, "-m", "ballistics.cli", "info",
                          str(shared_data / "dfsc" / "K002fJ1.x3p")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "7.3845e-06 m" in out.stdout
    assert "revision 'ISO5436-2000'" in out.stdout and "micrometres" in out.stdout
    js = subprocess.run([sys.executable, "-m", "ballistics.cli", "info", "--json",
                         str(shared_data / "dfsc" / "K002fJ1.x3p")], capture_output=True, text=True)
    info = json.loads(js.stdout)
    assert info["spacing_m"][1] == pytest.approx(7.38452e-6)
    assert len(info["provenance"]["fixes"]) == 4


def test_nbide_png_spacing_from_header(shared_data):
    s = ballistics.read_scan(shared_data / "nbide_2d" / "NBIDE R BF 118.png")
    assert s.kind == "intensity"
    assert s.spacing[0] == pytest.approx(2.53e-6, rel=1e-3)


# ---------------------------------------------------------------- repairs
def test_revision_without_spaces_is_repaired(tmp_path, surface):
    raw = _fix_md5(_rewrite(_x3p_bytes(surface), lambda m: re.sub(rb"<Revision>[^<]*", b"<Revision>ISO5436-2000", m)))
    (tmp_path / "r.x3p").write_bytes(raw)
    s = ballistics.read_scan(tmp_path / "r.x3p")
    assert any("revision" in f for f in s.provenance.fixes)
    np.testing.assert_allclose(s.data[s.mask], surface[np.isfinite(surface)])


def test_foreign_root_element_is_repaired(tmp_path, surface):
    def edit(m: bytes) -> bytes:
        return m.replace(b"p:ISO5436_2", b"p:SurfaceFile").replace(b"<ISO5436_2", b"<SurfaceFile")
    raw = _fix_md5(_rewrite(_x3p_bytes(surface), edit))
    assert b"SurfaceFile" in zipfile.ZipFile(io.BytesIO(raw)).read("main.xml")
    (tmp_path / "r.x3p").write_bytes(raw)
    s = ballistics.read_scan(tmp_path / "r.x3p")
    assert any("root element" in f for f in s.provenance.fixes)
    assert s.shape == surface.shape


def test_micrometre_increments_and_heights_are_converted(tmp_path, surface):
    raw = _x3p_bytes(surface * 1e6, spacing=6.25)  # everything in micrometres
    (tmp_path / "um.x3p").write_bytes(raw)
    s = ballistics.read_scan(tmp_path / "um.x3p")
    assert s.spacing == pytest.approx((6.25e-6, 6.25e-6))
    np.testing.assert_allclose(s.data[s.mask], surface[np.isfinite(surface)], rtol=1e-9)
    assert sum("micrometres" in f for f in s.provenance.fixes) == 2


# ---------------------------------------------------------------- corruption
def test_truncated_x3p(tmp_path, surface):
    raw = _x3p_bytes(surface)
    (tmp_path / "t.x3p").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ScanFormatError, match="t.x3p.*(truncated|corrupt)"):
        ballistics.read_scan(tmp_path / "t.x3p")


def test_corrupt_payload_is_detected(tmp_path):
    z = np.random.default_rng(1).normal(0, 1e-6, (64, 64))
    raw = bytearray(_x3p_bytes(z))
    start = raw.find(b"bindata/data.bin") + 200
    for i in range(start, start + 64):
        raw[i] ^= 0xFF
    (tmp_path / "c.x3p").write_bytes(bytes(raw))
    with pytest.raises(ScanFormatError, match="c.x3p"):
        ballistics.read_scan(tmp_path / "c.x3p")


def test_altered_main_xml_fails_checksum(tmp_path, surface):
    raw = _rewrite(_x3p_bytes(surface), lambda m: re.sub(rb"<Revision>[^<]*", b"<Revision>ISO5436-2000", m))
    (tmp_path / "a.x3p").write_bytes(raw)
    with pytest.raises(ScanFormatError, match="checksum"):
        ballistics.read_scan(tmp_path / "a.x3p")


def test_empty_file(tmp_path):
    (tmp_path / "e.x3p").write_bytes(b"")
    with pytest.raises(ScanReadError, match="empty"):
        ballistics.read_scan(tmp_path / "e.x3p")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ScanReadError, match="no such file"):
        ballistics.read_scan(tmp_path / "nope.x3p")
    with pytest.raises(ScanReadError, match="directory"):
        ballistics.read_scan(tmp_path)


def test_not_an_x3p(tmp_path):
    (tmp_path / "n.x3p").write_text("hello, I am a text file\n")
    with pytest.raises(ScanFormatError, match="not a scan file"):
        ballistics.read_scan(tmp_path / "n.x3p")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no main.xml")
    (tmp_path / "z.x3p").write_bytes(buf.getvalue())
    with pytest.raises(ScanFormatError, match="no main.xml"):
        ballistics.read_scan(tmp_path / "z.x3p")


def test_all_nan_scan(tmp_path):
    (tmp_path / "nan.x3p").write_bytes(_x3p_bytes(np.full((10, 10), np.nan)))
    with pytest.raises(EmptyScanError, match="all NaN"):
        ballistics.read_scan(tmp_path / "nan.x3p")
    assert ballistics.read_scan(tmp_path / "nan.x3p", allow_empty=True).missing_fraction == 1.0


def test_huge_file_limits(tmp_path, surface, monkeypatch):
    (tmp_path / "s.x3p").write_bytes(_x3p_bytes(surface))
    monkeypatch.setattr(reading.LIMITS, "max_file_bytes", 100)
    with pytest.raises(ScanTooLargeError, match="limit"):
        ballistics.read_scan(tmp_path / "s.x3p")


def test_absurd_matrix_size_is_refused_before_reading(tmp_path, surface):
    raw = _fix_md5(_rewrite(_x3p_bytes(surface), lambda m: re.sub(rb"<SizeX>\d+", b"<SizeX>90000000", m)))
    (tmp_path / "big.x3p").write_bytes(raw)
    with pytest.raises(ScanTooLargeError, match="exceed"):
        ballistics.read_scan(tmp_path / "big.x3p")


def test_xml_entity_attack_is_refused(tmp_path, surface):
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n')
    raw = _fix_md5(_rewrite(_x3p_bytes(surface), lambda m: bomb + m.split(b"?>", 1)[1]))
    (tmp_path / "bomb.x3p").write_bytes(raw)
    with pytest.raises(ScanFormatError, match="DOCTYPE"):
        ballistics.read_scan(tmp_path / "bomb.x3p")


def test_implausible_units_raise(tmp_path, surface):
    (tmp_path / "u.x3p").write_bytes(_x3p_bytes(surface, spacing=5e4))
    with pytest.raises(UnitsError, match="increments"):
        ballistics.read_scan(tmp_path / "u.x3p")


def test_images(tmp_path):
    from PIL import Image

    arr = (np.random.default_rng(2).random((30, 40)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "nodpi.png")
    with pytest.raises(UnitsError, match="spacing"):
        ballistics.read_scan(tmp_path / "nodpi.png")
    s = ballistics.read_scan(tmp_path / "nodpi.png", spacing=2e-6)
    assert s.kind == "intensity" and s.spacing == (2e-6, 2e-6)
    np.testing.assert_array_equal(s.data, arr)
    rgb = np.stack([arr, arr, arr], -1)
    Image.fromarray(rgb).save(tmp_path / "rgb.tif", dpi=(12700, 12700))
    s = ballistics.read_scan(tmp_path / "rgb.tif")
    assert s.spacing[0] == pytest.approx(2e-6) and any("colour" in f for f in s.provenance.fixes)
    (tmp_path / "bad.png").write_bytes((tmp_path / "nodpi.png").read_bytes()[:60])
    with pytest.raises(ScanFormatError, match="cannot decode"):
        ballistics.read_scan(tmp_path / "bad.png", spacing=1e-6)


def test_scan_model_validates_spacing():
    with pytest.raises(UnitsError, match="metres"):
        ballistics.scan_from_array(np.zeros((3, 3)), 6.25)  # micrometres given as metres
    with pytest.raises(EmptyScanError):
        ballistics.scan_from_array(np.zeros((0, 3)), 1e-6)


def test_every_error_is_a_ballistics_error():
    for cls in (ScanReadError, ScanFormatError, ScanTooLargeError, UnitsError, EmptyScanError,
                ballistics.RegionNotFoundError, ballistics.ComparisonError, ballistics.DatabaseError):
        assert issubclass(cls, BallisticsError)


def test_cli_reports_errors_without_traceback(tmp_path):
    (tmp_path / "bad.x3p").write_text("garbage")
    out = subprocess.run([sys.executable, "-m", "ballistics.cli", "info", str(tmp_path / "bad.x3p")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "error" in out.stderr and "Traceback" not in out.stderr


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "ballistics.cli", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"ballistics {ballistics.__version__}"
    out = subprocess.run([sys.executable, "-m", "ballistics.cli", "--help"], capture_output=True, text=True)
    assert "info" in out.stdout


def test_al3d_matches_vendor_x3p_export(shared_data):
    al = ballistics.read_scan(shared_data / "alicona" / "Klein_replica_mode.al3d")
    x3 = ballistics.read_scan(shared_data / "alicona" / "Klein_replica_mode_X3P_Alicona.x3p")
    assert al.shape == x3.shape
    assert al.spacing == pytest.approx(x3.spacing, rel=1e-4)
    both = al.mask & x3.mask
    assert both.sum() > 0.98 * x3.mask.sum()
    assert np.corrcoef(al.data[both], x3.data[both])[0, 1] > 0.9999


def test_truncated_al3d(shared_data, tmp_path):
    raw = (shared_data / "alicona" / "Klein_replica_mode.al3d").read_bytes()
    (tmp_path / "t.al3d").write_bytes(raw[:100_000])
    with pytest.raises(ScanFormatError, match="truncated"):
        ballistics.read_scan(tmp_path / "t.al3d")
