"""Reading and writing scans: real files, repairs, round trips and every corruption case."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from reading_tools import fix_md5, rewrite, x3p_bytes

import ballistics
from ballistics import datasets, reading
from ballistics.errors import (
    BallisticsError,
    EmptyScanError,
    ScanFormatError,
    ScanReadError,
    ScanTooLargeError,
    UnitsError,
)
from ballistics.reading import _write

# ---------------------------------------------------------------- helpers
_x3p_bytes, _rewrite, _fix_md5 = x3p_bytes, rewrite, fix_md5


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
    assert back.provenance.steps[0]["step"] == "identity"  # history survives the file
    # identifiers recorded in the file are claims, not facts: kept aside, never applied
    assert (back.case_id, back.exhibit_id) == (None, "a b")
    assert back.provenance.steps[-1]["unverified_record"]["exhibit_id"] == "E1"
    again = ballistics.read_scan(tmp_path / "a b.x3p", case_id="C7", exhibit_id="E1")
    assert (again.case_id, again.exhibit_id) == ("C7", "E1")


def test_write_is_atomic_and_keeps_old_file_on_failure(tmp_path, surface, monkeypatch):
    scan = ballistics.scan_from_array(surface, 3.125e-6)
    target = ballistics.write_x3p(scan, tmp_path / "s.x3p")
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(_write, "write_x3p_file", boom)
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
        written = ballistics.write_x3p(s, tmp_path / "rt.x3p")
        if s.kind == "intensity":  # the record's kind is a claim: the caller says what the file holds
            with pytest.raises(ScanFormatError, match="kind='intensity'"):
                ballistics.read_scan(written)
        back = ballistics.read_scan(written, kind=s.kind)
        np.testing.assert_array_equal(back.mask, s.mask)
        np.testing.assert_allclose(back.data[back.mask], s.data[s.mask], rtol=0, atol=0)
        assert back.spacing == s.spacing and back.kind == s.kind
    assert len(files) >= 58  # at least 54 x3p, 2 NBIDE PNG, 2 Alicona al3d (../shared/data/README.md)
    known = ("K002fJ1", "K002fJ2", "K004dB1", "K004dB2", "K004dB3", "K004dD1", "K004dD3")
    dfsc = {k: v for k, v in fixed.items() if k.removesuffix(".x3p") in known}
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


def _bad_files(tmp_path, surface) -> dict[str, bytes]:
    """One damaged file per reader path (the repair path included)."""
    from PIL import Image

    good = _x3p_bytes(surface)
    dfsc = _fix_md5(_rewrite(good, lambda m: re.sub(rb"<Revision>[^<]*", b"<Revision>ISO5436-2000", m)))
    buf = io.BytesIO()
    Image.fromarray((np.nan_to_num(surface) * 1e8).astype(np.uint8)).save(buf, format="PNG", dpi=(5000, 5000))
    png = buf.getvalue()
    return {"truncated.x3p": good[: len(good) // 2],
            "repair-damaged.x3p": _damage_member(dfsc, "bindata/data.bin"),
            "bad-crc.png": png[:40] + bytes([png[40] ^ 0xFF]) + png[41:],
            "garbage.x3p": b"garbage",
            "short.al3d": b"AliconaImaging\x00\r\n" + b"Rows".ljust(20, b"\x00") + b"9".ljust(30, b"\x00") + b"\r\n"}


def _damage_member(raw: bytes, name: str) -> bytes:
    """Flip bytes inside a member's compressed data (its local header left intact)."""
    zf = zipfile.ZipFile(io.BytesIO(raw))
    info = zf.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out = bytearray(raw)
    for i in range(start + 10, start + 40):
        out[i] ^= 0x5A
    return bytes(out)


def test_every_reader_error_is_a_ballistics_error_naming_the_file(tmp_path, surface):
    # every exception class the library exports is part of the one hierarchy
    from ballistics import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), BallisticsError), name
    # and what the readers raise on damaged files of every kind is one of them, naming the file
    for name, raw in _bad_files(tmp_path, surface).items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(BallisticsError) as ei:
            ballistics.read_scan(tmp_path / name)
        assert name in str(ei.value), ei.value
        assert isinstance(ei.value, ScanReadError), (name, type(ei.value))


def test_repair_path_damage_is_a_format_error_not_badzipfile(tmp_path, surface):
    """Regression: the repacking of a repaired file read members unguarded (zlib.error escaped)."""
    dfsc = _fix_md5(_rewrite(_x3p_bytes(surface), lambda m: re.sub(rb"<Revision>[^<]*",
                                                                    b"<Revision>ISO5436-2000", m)))
    (tmp_path / "ok.x3p").write_bytes(dfsc)
    assert any("revision" in f for f in ballistics.read_scan(tmp_path / "ok.x3p").provenance.fixes)
    (tmp_path / "d.x3p").write_bytes(_damage_member(dfsc, "bindata/data.bin"))
    with pytest.raises(ScanFormatError, match=r"d\.x3p.*bindata/data\.bin.*damaged"):
        ballistics.read_scan(tmp_path / "d.x3p")


def test_point_data_checksum_is_verified(tmp_path, surface):
    """A changed data.bin with a valid zip CRC is still caught by main.xml's MD5ChecksumPointData."""
    src = zipfile.ZipFile(io.BytesIO(_x3p_bytes(surface)))
    assert b"MD5ChecksumPointData" in src.read("main.xml")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            data = src.read(n)
            if n == "bindata/data.bin":
                arr = np.frombuffer(data, dtype="<f8").copy()
                arr[-1] += 1e-7  # a plausible height, a new zip CRC: only the MD5 can tell
                data = arr.tobytes()
            dst.writestr(n, data)
    (tmp_path / "p.x3p").write_bytes(out.getvalue())
    with pytest.raises(ScanFormatError, match=r"p\.x3p.*checksum"):
        ballistics.read_scan(tmp_path / "p.x3p")


def test_limits_are_read_at_call_time(tmp_path, surface, monkeypatch):
    from PIL import Image

    (tmp_path / "s.x3p").write_bytes(_x3p_bytes(surface))
    assert ballistics.read_scan(tmp_path / "s.x3p").shape == (40, 50)
    monkeypatch.setattr(reading.LIMITS, "max_pixels", 40 * 50 - 1)
    with pytest.raises(ScanTooLargeError, match="max_pixels"):
        ballistics.read_scan(tmp_path / "s.x3p")
    monkeypatch.undo()
    with pytest.raises(ScanTooLargeError, match="zip bomb"):
        ballistics.read_scan(tmp_path / "s.x3p", limits=reading.Limits(max_total_uncompressed_bytes=1000))
    with pytest.raises(ScanTooLargeError, match="main.xml"):
        ballistics.read_scan(tmp_path / "s.x3p", limits=reading.Limits(max_xml_bytes=100))
    with pytest.raises(ScanFormatError, match="physical bound"):
        ballistics.read_scan(tmp_path / "s.x3p", limits=reading.Limits(max_abs_height_m=1e-7))
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "i.png")
    assert ballistics.read_scan(tmp_path / "i.png", spacing=1e-6).shape == (30, 40)
    monkeypatch.setattr(reading.LIMITS, "max_image_pixels", 30 * 40 - 1)
    with pytest.raises(ScanTooLargeError, match="30 pixels"):
        ballistics.read_scan(tmp_path / "i.png", spacing=1e-6)


def test_image_reading_leaves_pillow_global_alone(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "i.png")
    before = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 123_456_789  # a value our reader would never set
        ballistics.read_scan(tmp_path / "i.png", spacing=1e-6)
        assert Image.MAX_IMAGE_PIXELS == 123_456_789
    finally:
        Image.MAX_IMAGE_PIXELS = before


def test_write_never_touches_umask_and_fsyncs(tmp_path, surface, monkeypatch):
    import os

    scan = ballistics.scan_from_array(surface, 3.125e-6)

    def no_umask(*a):
        raise AssertionError("os.umask must not be called (it races with other threads)")

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "umask", no_umask)
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    target = ballistics.write_x3p(scan, tmp_path / "w.x3p")
    assert len(synced) >= 2  # the file and its directory
    assert ballistics.read_scan(target).shape == surface.shape
    os.chmod(target, 0o640)
    ballistics.write_x3p(scan, target)  # a rewrite keeps the file's permission bits
    assert (os.stat(target).st_mode & 0o777) == 0o640


def test_atomic_write_bytes_keeps_old_content_on_failure(tmp_path, monkeypatch):
    import os

    from ballistics._io import atomic_open, atomic_write_bytes

    target = atomic_write_bytes(tmp_path / "sub" / "f.bin", b"old", mode=0o600)
    assert target.read_bytes() == b"old" and (os.stat(target).st_mode & 0o777) == 0o600
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"old"
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]  # no temp file left


def test_scan_validate_catches_broken_invariants(surface):
    from ballistics.errors import ScanValidationError

    good = ballistics.scan_from_array(surface, 6.25e-6, name="g.x3p")
    assert good.validate() is good
    bad = ballistics.scan_from_array(surface, 6.25e-6, name="h.x3p")
    bad.data[3, 3] = np.inf  # bypassing the constructor, as a buggy step could
    with pytest.raises(ScanValidationError, match="h.x3p.*infinite"):
        bad.validate()
    tall = ballistics.scan_from_array(surface * 1e6, 6.25e-6, name="t.x3p")  # micrometres as metres
    with pytest.raises(ScanValidationError, match="physical bound"):
        tall.validate()
    assert tall.validate(max_abs_height_m=100.0) is tall
    odd = ballistics.scan_from_array(surface, 6.25e-6)
    odd.spacing = (6.25e-6, float("nan"))
    with pytest.raises(ScanValidationError, match="spacing"):
        odd.validate()
    flat = ballistics.scan_from_array(surface, 6.25e-6)
    flat.data = surface.ravel()
    with pytest.raises(ScanValidationError, match="2-D"):
        flat.validate()


def test_png_image_data_crc_is_verified(tmp_path):
    """Regression (found by the fuzzer): Pillow does not check IDAT's CRC, so zeroed image
    data decoded silently to other pixels."""
    import struct

    from PIL import Image

    arr = (np.random.default_rng(3).random((40, 40)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "g.png", dpi=(5000, 5000))
    raw = bytearray((tmp_path / "g.png").read_bytes())
    off = 8
    while raw[off + 4:off + 8] != b"IDAT":
        off += 12 + struct.unpack(">I", raw[off:off + 4])[0]
    n = struct.unpack(">I", raw[off:off + 4])[0]
    raw[off + 8 + n - 40:off + 8 + n - 30] = bytes(10)  # zero ten bytes near the end of the data
    (tmp_path / "z.png").write_bytes(bytes(raw))
    with pytest.raises(ScanFormatError, match=r"z\.png.*IDAT.*CRC"):
        ballistics.read_scan(tmp_path / "z.png")
    assert ballistics.read_scan(tmp_path / "g.png").shape == (40, 40)


def test_pipe_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.x3p")
    with pytest.raises(ScanReadError, match="not a regular file"):
        ballistics.read_scan(tmp_path / "fifo.x3p")


def test_cli_info_on_damaged_repair_path_file(tmp_path, surface):
    bad = _bad_files(tmp_path, surface)["repair-damaged.x3p"]
    (tmp_path / "bad.x3p").write_bytes(bad)
    out = subprocess.run([sys.executable, "-m", "ballistics.cli", "info", str(tmp_path / "bad.x3p")],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "bad.x3p" in out.stderr and "Traceback" not in out.stderr


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
