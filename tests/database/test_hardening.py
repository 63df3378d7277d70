"""Each defect reproduced, then refused cleanly: a BallisticsError, a byte-identical database
that still opens, and bounded time and memory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ballistics.cli import main
from ballistics.database import CaseDatabase, generate_signing_key, prepare_entry, read_bundle
from ballistics.errors import BallisticsError, BundleError, BundleSignatureError, DatabaseError, OutputError
from ballistics.retrieval._models import LOCAL_BLOB


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "write.lock"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, entries):
    d = tmp_path_factory.mktemp("hard")
    with CaseDatabase(d / "a", model="global-640") as a:  # its blobs are the stage-2 key points only
        for e in entries[:3]:
            a.add(e, scan_id=e.scan.exhibit_id)
        a.export_bundle(d / "a.zip", lab="Lab A")
    return d / "a.zip"


@pytest.fixture()
def target(tmp_path, entries):
    with CaseDatabase(tmp_path / "b") as b:
        b.add(entries[4], scan_id="own")
    return tmp_path / "b"


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rezip(members: dict[str, bytes], out: Path, fix_manifest: bool = True) -> Path:
    """A bundle with edited members; the manifest's hashes are re-made (a hostile exporter)."""
    m = dict(members)
    if fix_manifest:
        man = json.loads(m["manifest.json"])
        man["members"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in m.items()
                          if not n.startswith("manifest.json")}
        m["manifest.json"] = json.dumps(man).encode()
        m["manifest.json.sha256"] = (hashlib.sha256(m["manifest.json"]).hexdigest() + "  manifest.json\n").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in m.items():
            z.writestr(n, d)
    return out


def _refused(target: Path, bundle: Path, exc: type[BaseException] = BundleError) -> None:
    before = _hashes(target)
    t0 = time.perf_counter()
    with CaseDatabase(target) as db, pytest.raises(exc):
        db.import_bundle(bundle)
    assert time.perf_counter() - t0 < 30
    assert _hashes(target) == before
    with CaseDatabase(target, readonly=True) as db:
        assert [r["scan_id"] for r in db.list()] == ["own"] and db.verify()["ok"]


def test_nan_and_inf_signatures_are_refused(bundle, target, tmp_path):
    m = _members(bundle)
    for bad in (np.nan, np.inf):
        sig = np.load(io.BytesIO(m["signatures/breech_face.npy"]))
        sig[1, 5] = bad
        buf = io.BytesIO()
        np.save(buf, sig.astype(np.float32))
        _refused(target, _rezip({**m, "signatures/breech_face.npy": buf.getvalue()}, tmp_path / "nan.zip"))


def test_nan_signature_refused_at_add(tmp_path, entries):
    e = prepare_entry(entries[0].scan, preprocess=False)
    e.signatures["breech_face"] = e.signatures["breech_face"].copy()
    e.signatures["breech_face"][0] = np.nan
    with CaseDatabase(tmp_path / "db") as db:
        before = _hashes(tmp_path / "db")
        with pytest.raises(DatabaseError, match="NaN"):
            db.add(e)
        assert _hashes(tmp_path / "db") == before and db.list() == []


def test_npy_header_declaring_huge_rows_is_refused_before_allocation(bundle, target, tmp_path):
    m = _members(bundle)
    raw = m["signatures/breech_face.npy"]
    header = raw[:raw.index(b"\n") + 1].decode("latin1")
    rows = header.split("'shape': (")[1].split(",")[0]
    huge = header.replace(f"'shape': ({rows},", "'shape': (10000000000000,").encode("latin1")
    huge = huge[:-1].ljust(len(raw[:raw.index(b"\n")]), b" ") + b"\n" if len(huge) <= raw.index(b"\n") + 1 else huge
    _refused(target, _rezip({**m, "signatures/breech_face.npy": huge + raw[raw.index(b"\n") + 1:]},
                            tmp_path / "huge.zip"))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024  # KiB: far below 10^13 rows


def test_garbage_keypoint_blob_is_refused(bundle, target, tmp_path):
    m = _members(bundle)
    name = next(n for n in m if n.startswith("blobs/"))
    _refused(target, _rezip({**m, name: b"BSK1" + os.urandom(200)}, tmp_path / "kp.zip"))


def test_zip_bomb_is_refused_with_bounded_memory(bundle, target, tmp_path):
    m = _members(bundle)
    out = tmp_path / "bomb.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in m.items():
            z.writestr(n, d)
        info = zipfile.ZipInfo("blobs/000009-0.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as fh:
            block = bytes(1 << 20)
            for _ in range(600):  # 600 MiB of zeros, a small file
                fh.write(block)
    assert out.stat().st_size < 5 << 20
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(target, out)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 300 * 1024  # KiB


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
def test_fifo_and_dev_zero_link_are_refused_unread(target, tmp_path):
    fifo = tmp_path / "fifo.zip"
    os.mkfifo(fifo)
    _refused(target, fifo)  # would block forever if opened for reading without O_NONBLOCK
    link = tmp_path / "zero.zip"
    link.symlink_to("/dev/zero")
    _refused(target, link)


def test_ids_with_control_characters_and_foreign_lab_are_refused(bundle, target, tmp_path):
    m = _members(bundle)
    for change in ({"scan_id": "bad\x07id"}, {"lab": "Lab B"}, {"case_id": "x" * 5000}):
        cat = json.loads(m["catalogue.json"])
        cat[0].update(change)
        _refused(target, _rezip({**m, "catalogue.json": json.dumps(cat).encode()}, tmp_path / "ids.zip"))


def test_counts_must_match_the_manifest(bundle, target, tmp_path):
    m = _members(bundle)
    man = json.loads(m["manifest.json"])
    man["counts"]["entries"] += 1
    _refused(target, _rezip({**m, "manifest.json": json.dumps(man).encode()}, tmp_path / "counts.zip"))


def test_signed_bundle_needs_a_key_or_trust(tmp_path, entries, target):
    generate_signing_key(tmp_path / "k", tmp_path / "k.pub")
    with CaseDatabase(tmp_path / "a") as a:
        a.add(entries[0], scan_id="one")
        a.export_bundle(tmp_path / "s.zip", lab="Lab A", sign_key=tmp_path / "k")
    _refused(target, tmp_path / "s.zip", BundleSignatureError)
    with CaseDatabase(target) as db:
        assert db.import_bundle(tmp_path / "s.zip", trust_unsigned=True)["imported"] == ["Lab A/one"]
    assert read_bundle(tmp_path / "s.zip", tmp_path / "k.pub").signed_by


def test_empty_catalogue_is_an_error_not_a_new_database(tmp_path, entries):
    with CaseDatabase(tmp_path / "db") as db:
        db.add(entries[0], scan_id="one")
        db.add(entries[1], scan_id="two")
    cat = tmp_path / "db" / "catalogue.sqlite"
    for f in tmp_path.glob("db/catalogue.sqlite-*"):
        f.unlink()
    cat.write_bytes(b"")
    before = _hashes(tmp_path / "db")
    for kw in ({}, {"readonly": True}):
        with pytest.raises(DatabaseError, match="recover"):
            CaseDatabase(tmp_path / "db", **kw)
    assert _hashes(tmp_path / "db") == before
    cat.write_bytes(b"garbage, not SQLite" * 100)
    with pytest.raises(DatabaseError, match="recover"):
        CaseDatabase(tmp_path / "db")
    out = CaseDatabase.recover(tmp_path / "db")
    assert sorted(out["restored"]) == ["one", "two"] and out["not_restored"] == {}
    with CaseDatabase(tmp_path / "db") as db:
        assert sorted(r["scan_id"] for r in db.list()) == ["one", "two"]
        assert db.model == "local-sift"  # the model the journal recorded, with its per-entry data
        assert all(db.catalogue.get_blob(r["num"], LOCAL_BLOB) for r in db.catalogue.list_scans())
        v = db.verify(deep=True)
        assert v["ok"], v["problems"]
        assert db.search(entries[0], k=1, rerank=0, exclude_self=False)[0].scan_id == "one"


def test_huge_k_is_instant_and_small(tmp_path, entries):
    with CaseDatabase(tmp_path / "db") as db:
        for e in entries[:6]:
            db.add(e, scan_id=e.scan.exhibit_id)
        t0 = time.perf_counter()
        res = db.search(entries[0], k=10**9, shortlist=10**9, rerank=0, verify=False)
        assert time.perf_counter() - t0 < 20 and len(res) == 5
        with pytest.raises(BallisticsError):
            db.search(entries[0], k=10**12, rerank=0)


def test_damaged_stored_keypoints_are_skipped_named_and_verified(tmp_path, entries):
    with CaseDatabase(tmp_path / "db") as db:
        for e in entries[:4]:
            db.add(e, scan_id=e.scan.exhibit_id)
        db.put_blob(entries[1].scan.exhibit_id, next(iter(entries[1].blobs)), b"BSK1 damaged")
        res = db.search(entries[0], k=5, rerank=0)
        assert entries[1].scan.exhibit_id not in [h.scan_id for h in res]
        assert any(entries[1].scan.exhibit_id in w and "damaged" in w for w in res.warnings)
        assert any("damaged" in p for p in db.verify(deep=True)["problems"])


def test_keygen_and_export_refuse_to_overwrite(tmp_path, entries, capsys):
    priv, pub = tmp_path / "k", tmp_path / "k.pub"
    assert main(["db", "keygen", str(priv), str(pub)]) == 0
    key = priv.read_bytes()
    assert main(["db", "keygen", str(priv), str(tmp_path / "other.pub")]) == 2
    assert main(["db", "keygen", str(tmp_path / "same"), str(tmp_path / "same")]) == 2
    assert priv.read_bytes() == key and not (tmp_path / "same").exists()
    with pytest.raises(OutputError):
        generate_signing_key(priv, tmp_path / "x.pub")
    with CaseDatabase(tmp_path / "db") as db:
        db.add(entries[0], scan_id="one")
    existing = tmp_path / "out.zip"
    existing.write_bytes(b"keep me")
    before = _hashes(tmp_path / "db")
    assert main(["db", "export", str(tmp_path / "db"), "-o", str(existing), "--lab", "Lab A"]) == 2
    assert main(["db", "export", str(tmp_path / "db"), "-o", str(tmp_path / "db" / "x.zip"), "--lab", "Lab A"]) == 2
    assert existing.read_bytes() == b"keep me" and _hashes(tmp_path / "db") == before
    assert main(["db", "export", str(tmp_path / "db"), "-o", str(existing), "--lab", "Lab A", "--force"]) == 0
    assert zipfile.is_zipfile(existing)
    capsys.readouterr()
    assert main(["db", "import", str(tmp_path / "db"), str(tmp_path / "nope" / "missing.zip")]) == 2
    assert "missing.zip" in capsys.readouterr().err
