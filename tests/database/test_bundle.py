"""Exchange bundles (issue 14): export, import under the origin lab, search without
importing, and refusal of every damaged or tampered bundle with the database untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from ballistics import DatabaseError, datasets
from ballistics.database import (
    BundleFormatError,
    BundleIntegrityError,
    BundleModelError,
    BundleSignatureError,
    BundleVersionError,
    CaseDatabase,
    generate_signing_key,
    open_bundle,
    read_bundle,
)

EXPORTED = ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2"]


@pytest.fixture(scope="module")
def queries(entries):
    """Signatures and blobs of the six scans."""
    return entries


@pytest.fixture(scope="module")
def labs(tmp_path_factory, sample, queries):
    """Lab A holds all six scans (with their evidence files); it exports four."""
    root = tmp_path_factory.mktemp("labs")
    a = CaseDatabase(root / "A")
    for s, q, p in zip(sample, queries, datasets.fadul_paths("processed")):
        a.add(dataclasses.replace(q, evidence=p.read_bytes()), case_id="A-" + s.exhibit_id[-3],
              firearm_id=s.metadata["firearm"])
    keys = root / "keys"
    keys.mkdir()
    fp = generate_signing_key(keys / "a.pem", keys / "a.pub")
    assert (keys / "a.pem").stat().st_mode & 0o077 == 0  # the private key is the owner's only
    generate_signing_key(keys / "other.pem", keys / "other.pub")
    plain = root / "a.zip"
    a.export_bundle(plain, EXPORTED, lab="Lab A")
    signed = root / "a-signed.zip"
    a.export_bundle(signed, EXPORTED, lab="Lab A", sign_key=keys / "a.pem")
    surf = root / "a-surfaces.zip"
    a.export_bundle(surf, EXPORTED[:2], lab="Lab A", include_surfaces=True)
    return {"root": root, "A": a, "plain": plain, "signed": signed, "surfaces": surf, "keys": keys, "fp": fp}


def _lab_b(root: Path, queries, name: str = "B") -> CaseDatabase:
    """Lab B holds its own copies of the two scans lab A did not export."""
    b = CaseDatabase(root / name)
    for e in queries[4:]:
        b.add(e, case_id="B-1")
    return b


def _hashes(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_round_trip_gives_the_same_ranked_lists(labs, queries, tmp_path):
    b = _lab_b(tmp_path, queries)
    out = b.import_bundle(labs["plain"])
    assert out["lab"] == "Lab A" and out["imported"] == [f"Lab A/{s}" for s in EXPORTED]
    assert b.verify(deep=True)["ok"]
    rows = {r["scan_id"]: r for r in b.list()}
    assert rows["Lab A/Fadul 1-2"]["lab"] == "Lab A" and rows["Fadul 3-1"]["lab"] is None
    assert rows["Lab A/Fadul 1-2"]["firearm_id"] == "Lab A/slide-1"  # a partner's firearm is not ours
    assert rows["Lab A/Fadul 1-2"]["case_id"] == "Lab A/A-1"
    for q in queries:
        ha = labs["A"].search(q, k=5, rerank=0)
        hb = b.search(q, k=5, rerank=0)
        assert [h.scan_id if h.scan_id in ("Fadul 3-1", "Fadul 3-2") else f"Lab A/{h.scan_id}" for h in ha] == \
               [h.scan_id for h in hb]
        assert [h.retrieval_score for h in ha] == pytest.approx([h.retrieval_score for h in hb], abs=1e-6)
        assert all((h.lab == "Lab A") == h.scan_id.startswith("Lab A/") for h in hb)  # every hit names its lab
        assert any(h.lab == "Lab A" for h in hb)
    # the imported blobs are the exported ones, byte for byte
    for sid in EXPORTED:
        names = labs["A"].catalogue.blobs_of(labs["A"].catalogue.scan_by_id(sid)["num"])
        for name, data in names.items():
            assert b.get_blob(f"Lab A/{sid}", name) == data


def test_import_twice_changes_nothing(labs, queries, tmp_path):
    b = _lab_b(tmp_path, queries)
    b.import_bundle(labs["plain"])
    b.close()
    before = _hashes(tmp_path / "B")
    b = CaseDatabase(tmp_path / "B")
    out = b.import_bundle(labs["plain"])
    b.close()
    assert out["imported"] == [] and len(out["already_present"]) == 4
    assert _hashes(tmp_path / "B") == before


def test_bundle_never_carries_the_evidence_file(labs):
    with zipfile.ZipFile(labs["surfaces"]) as z:
        blobs = [z.read(n) for n in z.namelist()]
        names = z.namelist()
    assert not any(n.endswith(".evidence") for n in names)
    assert sum(n.startswith("surfaces/") for n in names) == 2
    a = labs["A"]
    for sid in EXPORTED[:2]:
        ev = a.evidence_bytes(sid)  # lab A kept it ...
        assert len(ev) > 1000 and all(ev not in m for m in blobs)  # ... and did not ship it
    with zipfile.ZipFile(labs["plain"]) as z:
        assert not any(n.startswith("surfaces/") for n in z.namelist())
        cat = json.loads(z.read("catalogue.json"))
    assert [e["scan_id"] for e in cat] == EXPORTED
    assert set(cat[0]) >= {"scan_id", "lab", "case_id", "exhibit_id", "firearm_id", "instrument", "pixel_size_m"}
    assert "source" not in cat[0] and "provenance" not in cat[0]


def test_search_a_bundle_without_importing(labs, sample, queries):
    db = open_bundle(labs["surfaces"])
    tmp = Path(db.path)
    hits = db.search(queries[0], k=2, rerank=0)
    assert [h.scan_id for h in hits] == ["Lab A/Fadul 1-2"]  # the query's own scan is left out
    assert db.load_scan("Lab A/Fadul 1-2").checksum == sample[1].checksum  # surfaces travelled
    with pytest.raises(DatabaseError, match="read-only"):
        db.remove("Lab A/Fadul 1-2")
    db.close()
    assert not tmp.exists()


def test_signed_bundle(labs, queries, tmp_path):
    b = _lab_b(tmp_path, queries)
    out = b.import_bundle(labs["signed"], public_key=labs["keys"] / "a.pub")
    assert out["signed_by"] == labs["fp"] and len(out["imported"]) == 4
    assert read_bundle(labs["signed"]).signed_by is None  # no key given: integrity only


# ---------------------------------------------------------------- refusals
def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy a bundle's members through ``change(dict)`` into a new zip."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)


def _reseal(m: dict, edit) -> None:
    """Edit the manifest and update its checksum (a careful forger, or a newer exporter)."""
    man = json.loads(m["manifest.json"])
    edit(man)
    m["manifest.json"] = json.dumps(man).encode()
    m["manifest.json.sha256"] = (hashlib.sha256(m["manifest.json"]).hexdigest() + "  manifest.json\n").encode()


def _flip_blob(m: dict) -> None:
    name = next(n for n in m if n.startswith("blobs/"))
    m[name] = m[name][:-1] + bytes([m[name][-1] ^ 1])


#: A global signature model of another version (a future or older exporter).
OTHER_GLOBAL = {"name": "global-640", "version": "other/v9", "sha256": "0" * 64}

CASES = {
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2]),
                  BundleFormatError, "truncated"),
    "not a zip": (lambda src, dst: dst.write_bytes(b"hello, this is no bundle"), BundleFormatError, "not a readable"),
    "member changed": (lambda src, dst: _rewrite(src, dst, _flip_blob), BundleIntegrityError,
                       "was changed after export"),
    "member added": (lambda src, dst: _rewrite(src, dst, lambda m: m.__setitem__("blobs/extra.bin", b"x")),
                     BundleIntegrityError, "were added"),
    "member removed": (lambda src, dst: _rewrite(src, dst, lambda m: m.pop("signatures/breech_face.npy")),
                       BundleIntegrityError, "missing"),
    "manifest edited": (lambda src, dst: _rewrite(src, dst, lambda m: m.__setitem__(
        "manifest.json", m["manifest.json"].replace(b'"Lab A"', b'"Lab Z"'))), BundleIntegrityError,
        "manifest.json was edited"),
    "wrong version": (lambda src, dst: _rewrite(src, dst, lambda m: _reseal(
        m, lambda d: d.__setitem__("format_version", 99))), BundleVersionError, "format version 99"),
    "other signature model": (lambda src, dst: _rewrite(src, dst, lambda m: _reseal(
        m, lambda d: d.__setitem__("global_signature", OTHER_GLOBAL))),
        BundleModelError, "signature model 'other/v9'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_bundles_are_refused_and_the_database_is_untouched(labs, queries, tmp_path, case):
    make, error, message = CASES[case]
    bad = tmp_path / "bad.zip"
    make(labs["plain"], bad)
    b = _lab_b(tmp_path, queries)
    b.close()
    before = _hashes(tmp_path / "B")
    b = CaseDatabase(tmp_path / "B")
    with pytest.raises(error, match=message):
        b.import_bundle(bad)
    b.close()
    assert _hashes(tmp_path / "B") == before


@pytest.mark.parametrize("key, message", [("other.pub", "does not verify"), ("a.pub", "not signed")])
def test_wrong_or_missing_signature_is_refused(labs, queries, tmp_path, key, message):
    b = _lab_b(tmp_path, queries)
    b.close()
    before = _hashes(tmp_path / "B")
    src = labs["signed"] if key == "other.pub" else labs["plain"]
    b = CaseDatabase(tmp_path / "B")
    with pytest.raises(BundleSignatureError, match=message):
        b.import_bundle(src, public_key=labs["keys"] / key)
    b.close()
    assert _hashes(tmp_path / "B") == before


def test_signed_bundle_with_edited_manifest_fails_the_signature(labs, tmp_path):
    bad = tmp_path / "bad.zip"
    _rewrite(labs["signed"], bad, lambda m: _reseal(m, lambda d: d.__setitem__("lab", "Lab Z")))
    with pytest.raises(BundleSignatureError, match="does not verify"):
        read_bundle(bad, public_key=labs["keys"] / "a.pub")


def test_other_model_with_surfaces_can_be_resigned(labs, queries, tmp_path):
    src = tmp_path / "other-model.zip"
    _rewrite(labs["surfaces"], src, lambda m: _reseal(
        m, lambda d: d.__setitem__("global_signature", OTHER_GLOBAL)))
    b = CaseDatabase(tmp_path / "B")
    with pytest.raises(BundleModelError, match="resign=True"):
        b.import_bundle(src)
    out = b.import_bundle(src, resign=True)
    assert out["resigned"] and out["imported"] == ["Lab A/Fadul 1-1", "Lab A/Fadul 1-2"]
    assert b.search(queries[0], k=1, rerank=0)[0].scan_id == "Lab A/Fadul 1-2"
    assert b.verify(deep=True)["ok"]


def test_copying_a_bundle_keeps_it_valid(labs, tmp_path):
    """Integrity is of the content, not the file: a copy reads the same."""
    cp = tmp_path / "copy.zip"
    shutil.copy(labs["signed"], cp)
    bd = read_bundle(cp, public_key=labs["keys"] / "a.pub")
    assert bd.lab == "Lab A" and len(bd.entries) == 4 and bd.manifest["counts"]["entries"] == 4
    assert bd.manifest["global_signature"]["version"] == bd.manifest["parameters"]["signature"]["version"]


def test_cli_keygen_export_import_search(labs, queries, tmp_path, capsys):
    from ballistics.cli import main

    a, keys = str(labs["root"] / "A"), tmp_path / "k"
    keys.mkdir()
    assert main(["db", "keygen", str(keys / "a.pem"), str(keys / "a.pub")]) == 0
    bundle = str(tmp_path / "a.zip")
    capsys.readouterr()
    assert main(["db", "export", a, "-o", bundle, "--scans", "Fadul 1-1", "Fadul 1-2", "--with-surfaces",
                 "--lab", "Lab A", "--sign-key", str(keys / "a.pem"), "--json"]) == 0
    man = json.loads(capsys.readouterr().out)
    assert man["counts"]["entries"] == 2 and man["counts"]["surfaces"] == 2 and man["lab"] == "Lab A"
    query = str(datasets.fadul_paths("processed")[0])
    assert main(["db", "search", bundle, query, "--no-preprocess", "-k", "1", "--rerank", "0",
                 "--public-key", str(keys / "a.pub"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["scan_id"] == "Lab A/Fadul 1-2"
    b = _lab_b(tmp_path, queries)
    b.close()
    assert main(["db", "import", str(tmp_path / "B"), bundle, "--public-key", str(keys / "a.pub"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == ["Lab A/Fadul 1-1", "Lab A/Fadul 1-2"]
    assert main(["db", "import", str(tmp_path / "B"), str(labs["signed"]), "--public-key", str(keys / "a.pub")]) == 2
    assert "does not verify" in capsys.readouterr().err  # signed with another key: one clear line
