"""Hostile and non-conforming input: each file is crafted here, small, and must be refused
(or read) for the stated reason before memory is spent on it."""

from __future__ import annotations

import io
import re
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest
from reading_tools import fix_md5, rewrite, x3p_bytes

import ballistics
from ballistics import reading
from ballistics.errors import ParameterError, ScanFormatError, ScanTooLargeError
from ballistics.reading import LIMITS
from ballistics.reading._provenance import MARKER


@pytest.fixture()
def surface() -> np.ndarray:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1e-6, (30, 40))
    z[:3, :3] = np.nan
    return z


def _axis(main: bytes, axis: str, field: str, value: bytes) -> bytes:
    """``main.xml`` with ``<axis><field>`` set to ``value``."""
    pat = re.compile(rb"(<" + axis.encode() + rb">.*?<" + field.encode() + rb">)[^<]*", re.S)
    out, n = pat.subn(lambda m: m.group(1) + value, main, count=1)
    assert n == 1
    return out


def _no_decoding(monkeypatch):
    """Make x3pio's reader fail loudly: a check must fire before any point is decoded."""
    import x3pio

    def boom(*a, **k):
        raise AssertionError("x3pio.read was called")

    monkeypatch.setattr(x3pio, "read", boom)


# ---------------------------------------------------------------- amplification
def test_small_x3p_promising_a_huge_matrix_is_refused_before_decoding(tmp_path, surface, monkeypatch):
    raw = fix_md5(rewrite(x3p_bytes(surface), lambda m: re.sub(rb"<SizeX>\d+", b"<SizeX>200000",
                                                                  re.sub(rb"<SizeY>\d+", b"<SizeY>1000", m))))
    p = tmp_path / "promise.x3p"
    p.write_bytes(raw)
    _no_decoding(monkeypatch)
    with pytest.raises(ScanTooLargeError, match=r"max_expansion.*limits=LIMITS\.replace\(max_expansion="):
        ballistics.read_scan(p)
    # with the expansion allowed, the data member's declared size still disagrees: refused unread
    with pytest.raises(ScanFormatError, match="declares .* bytes in the archive directory"):
        ballistics.read_scan(p, limits=LIMITS.replace(max_expansion=1e9))


def test_real_compression_bomb_x3p_is_refused_from_the_header(tmp_path, monkeypatch):
    z = np.zeros((3000, 3000))  # 72 MB of float64 zeros deflate to ~70 KB
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(x3p_bytes(z))) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    p = tmp_path / "bomb.x3p"
    p.write_bytes(buf.getvalue())
    assert p.stat().st_size < 200_000
    _no_decoding(monkeypatch)
    with pytest.raises(ScanTooLargeError, match="expansion") as err:
        ballistics.read_scan(p)
    assert "Limits.max_expansion = 256" in str(err.value) and str(p) in str(err.value)


def _png(width: int, height: int, idat: bytes, bit_depth: int = 8, colour: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_with_huge_header_dimensions_is_refused_before_decoding(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png(100_000, 100_000, zlib.compress(b"\x00" * 64)))
    t0 = time.perf_counter()
    with pytest.raises(ScanTooLargeError, match=r"100000 x 100000 pixels exceeds Limits\.max_image_pixels"):
        ballistics.read_scan(p, spacing=1e-6)
    assert time.perf_counter() - t0 < 2.0


def test_png_bomb_under_the_pixel_limit_is_refused_by_expansion(tmp_path):
    # 12000 x 12000 one-bit pixels: 144 million points (1.15 GB as float64) from ~20 KB
    row = b"\x00" + b"\x00" * (12000 // 8)
    p = tmp_path / "bomb.png"
    p.write_bytes(_png(12000, 12000, zlib.compress(row * 12000, 9), bit_depth=1))
    assert p.stat().st_size < 100_000
    assert 12000 * 12000 < LIMITS.max_image_pixels
    t0 = time.perf_counter()
    with pytest.raises(ScanTooLargeError, match="max_expansion"):
        ballistics.read_scan(p, spacing=1e-6)
    assert time.perf_counter() - t0 < 5.0


def test_small_uniform_images_stay_readable(tmp_path):
    """The expansion limit spares surfaces under its floor, however well they compress."""
    from PIL import Image

    Image.fromarray(np.zeros((1000, 1000), np.uint8)).save(tmp_path / "flat.png")
    assert (tmp_path / "flat.png").stat().st_size * LIMITS.max_expansion < 8e6
    assert ballistics.read_scan(tmp_path / "flat.png", spacing=1e-6).shape == (1000, 1000)


# ---------------------------------------------------------------- the record in the comment
def _with_comment_record(tmp_path, surface, record: bytes) -> bytes:
    p = ballistics.write_x3p(ballistics.scan_from_array(surface, 2e-6, exhibit_id="E9", case_id="C9"),
                             tmp_path / "w.x3p")
    marker = MARKER.encode()
    return fix_md5(rewrite(p.read_bytes(),
                           lambda m: re.sub(re.escape(marker) + rb"[^<]*", lambda _: marker + record, m)))


def test_deeply_nested_record_is_ignored_with_a_note(tmp_path, surface):
    p = tmp_path / "deep.x3p"
    p.write_bytes(_with_comment_record(tmp_path, surface, b"[" * 200_000 + b"]" * 200_000))
    s = ballistics.read_scan(p)  # never a RecursionError
    assert any("ignored the ballistics record" in f and "nested" in f for f in s.provenance.fixes)
    assert s.provenance.steps == [] and s.case_id is None
    np.testing.assert_array_equal(s.mask, np.isfinite(surface))


def test_malformed_records_are_ignored_not_fatal(tmp_path, surface):
    for bad in (b"{not json", b'{"steps": [1, 2]}', b"[]", b'{"fixes": "x"}', b'{"a": NaN}'):
        p = tmp_path / "bad.x3p"
        p.write_bytes(_with_comment_record(tmp_path, surface, bad.replace(b"<", b"")))
        s = ballistics.read_scan(p)
        assert any("ignored the ballistics record" in f for f in s.provenance.fixes), bad


def test_record_cannot_set_ids_or_kind(tmp_path, surface):
    rec = b'{"case_id":"FORGED","exhibit_id":"FORGED","kind":"height","handedness_hint":"x","steps":[]}'
    p = tmp_path / "ids.x3p"
    p.write_bytes(_with_comment_record(tmp_path, surface, rec))
    s = ballistics.read_scan(p)
    assert (s.case_id, s.exhibit_id, s.provenance.handedness_hint) == (None, "ids", None)
    assert s.provenance.steps[-1]["unverified_record"]["case_id"] == "FORGED"
    img = ballistics.scan_from_array(np.arange(1200.0).reshape(30, 40) % 255, 2e-6, kind="intensity")
    q = ballistics.write_x3p(img, tmp_path / "img.x3p")
    with pytest.raises(ScanFormatError, match="kind='intensity'"):
        ballistics.read_scan(q)
    back = ballistics.read_scan(q, kind="intensity")
    assert back.kind == "intensity" and np.array_equal(back.data, img.data)
    with pytest.raises(ParameterError):
        ballistics.read_scan(q, kind="colour")


# ---------------------------------------------------------------- axes
def test_negative_lateral_increments_reverse_the_axis_and_say_so(tmp_path, surface):
    raw = x3p_bytes(surface, spacing=2e-6)
    p = tmp_path / "negx.x3p"
    p.write_bytes(fix_md5(rewrite(raw, lambda m: _axis(m, "CX", "Increment", b"-2e-06"))))
    s = ballistics.read_scan(p)
    assert s.spacing == (2e-6, 2e-6)
    np.testing.assert_array_equal(s.data, surface[:, ::-1])  # columns reversed: handedness kept
    assert any("CX increment -2e-06 is negative" in f and "reversed" in f for f in s.provenance.fixes)
    p.write_bytes(fix_md5(rewrite(raw, lambda m: _axis(m, "CY", "Increment", b"-2e-06"))))
    s = ballistics.read_scan(p)
    np.testing.assert_array_equal(s.data, surface[::-1, :])
    assert any("CY increment" in f and "rows reversed" in f for f in s.provenance.fixes)


def test_negative_z_increment_negates_heights_and_is_recorded(tmp_path, surface):
    p = tmp_path / "negz.x3p"
    p.write_bytes(fix_md5(rewrite(x3p_bytes(surface), lambda m: _axis(m, "CZ", "Increment", b"-1.0"))))
    s = ballistics.read_scan(p)
    np.testing.assert_array_equal(s.data, -surface)
    assert any("CZ increment -1 is negative" in f for f in s.provenance.fixes)


def test_incremental_z_axis_is_refused_with_the_reason(tmp_path, surface, monkeypatch):
    p = tmp_path / "incz.x3p"
    p.write_bytes(fix_md5(rewrite(x3p_bytes(surface), lambda m: _axis(m, "CZ", "AxisType", b"I"))))
    _no_decoding(monkeypatch)
    with pytest.raises(ScanFormatError, match=r"incremental \(CZ AxisType 'I'\).*must be absolute|"
                                              r"incremental \(CZ AxisType 'I'\).*requires the z axis"):
        ballistics.read_scan(p)


# ---------------------------------------------------------------- container members
def _archive(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # bypass zipfile's own clean-up of names
            z.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(("name", "why"), [
    ("../x", "climbs out"), ("bindata/../../x", "climbs out"), ("/etc/passwd", "absolute path"),
    ("C:/x", "drive letter"), ("bindata\\data.bin", "backslash"),
])
def test_members_outside_the_archive_root_are_refused(tmp_path, surface, name, why):
    with zipfile.ZipFile(io.BytesIO(x3p_bytes(surface))) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    p = tmp_path / "escape.x3p"
    p.write_bytes(_archive([*members, (name, b"x")]))
    with pytest.raises(ScanFormatError, match=why) as err:
        ballistics.read_scan(p)
    assert str(p) in str(err.value)


def test_duplicate_main_xml_is_refused(tmp_path, surface):
    with zipfile.ZipFile(io.BytesIO(x3p_bytes(surface))) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    main = dict(members)["main.xml"]
    p = tmp_path / "dup.x3p"
    with pytest.warns(UserWarning, match="Duplicate"):
        p.write_bytes(_archive([*members, ("main.xml", main.replace(b"1e-06", b"2e-06"))]))
    with pytest.raises(ScanFormatError, match="two members named 'main.xml'"):
        ballistics.read_scan(p)
    p.write_bytes(_archive([*members, ("other/MAIN.XML", main)]))
    with pytest.raises(ScanFormatError, match="2 main.xml members"):
        ballistics.read_scan(p)


def test_limits_object_is_the_base_one():
    import ballistics.limits

    assert reading.LIMITS is ballistics.limits.LIMITS and reading.Limits is ballistics.limits.Limits
