"""Bundles that declare their signature model, and searching a database with several bundles at once."""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from ballistics import datasets
from ballistics.database import (
    BundleFormatError,
    BundleModelError,
    BundleSignatureError,
    CaseDatabase,
    MultiSearch,
    SourcedHit,
    generate_signing_key,
    read_bundle,
    search_sources,
)
from ballistics.database._bundle_format import legacy_signature_model
from ballistics.retrieval._models import LOCAL_BLOB, get_model

EXPORTED = [0, 1, 2, 3]  # Fadul 1-1, 1-2, 2-1, 2-2 (firearms 1 and 2); lab B keeps 3-1, 3-2


def _db(path: Path, sample, entries, which, model: str | None = "global-640") -> CaseDatabase:
    db = CaseDatabase(path, model=model)
    for i in which:
        db.add(copy.deepcopy(entries[i]), scan_id=sample[i].exhibit_id, firearm_id=sample[i].metadata["firearm"])
    return db


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy a bundle with its manifest edited and its checksum updated (as an older exporter wrote it)."""
    with zipfile.ZipFile(src) as z:
        m = {n: z.read(n) for n in z.namelist()}
    man = json.loads(m["manifest.json"])
    edit(man)
    m["manifest.json"] = json.dumps(man, indent=1, sort_keys=True).encode()
    m["manifest.json.sha256"] = (hashlib.sha256(m["manifest.json"]).hexdigest() + "  manifest.json\n").encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in m.items():
            z.writestr(n, d)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, sample, entries):
    """Lab A (global-640) and Lab L (local-sift) export the same four scans; Lab A also with surfaces."""
    root = tmp_path_factory.mktemp("models")
    a = _db(root / "A", sample, entries, EXPORTED)
    a.export_bundle(root / "a.zip", lab="Lab A")
    a.export_bundle(root / "a-surf.zip", lab="Lab A", include_surfaces=True)
    a.close()
    loc = _db(root / "L", sample, entries, EXPORTED, model="local-sift")
    loc.export_bundle(root / "l.zip", lab="Lab L")
    loc.close()
    return root


def _lab_b(path: Path, sample, entries, model: str = "global-640") -> CaseDatabase:
    return _db(path, sample, entries, [4, 5], model)


def test_manifest_records_the_exporting_model(bundles):
    g, loc = read_bundle(bundles / "a.zip"), read_bundle(bundles / "l.zip")
    assert g.manifest["signature_model"] == get_model("global-640").record()
    assert loc.manifest["signature_model"] == get_model("local-sift").record()
    for b in (g, loc):  # global signatures always travel, and say which model made them
        assert b.manifest["global_signature"] == get_model("global-640").record()
        assert b.model_matches and not b.legacy_manifest
    assert loc.signature_model["name"] == "local-sift"
    assert any(LOCAL_BLOB in e["blobs"] for e in loc.entries)


def test_global_bundle_into_local_sift_database(bundles, sample, entries, tmp_path):
    b = _lab_b(tmp_path / "B", sample, entries, model="local-sift")
    out = b.import_bundle(bundles / "a.zip")
    assert not out["resigned"] and out["recomputed"] == {LOCAL_BLOB: 4}
    assert out["bundle_model"]["name"] == "global-640"
    ref = _db(tmp_path / "ref", sample, entries, [0], model="local-sift")  # the blob a local-sift add makes
    assert b.get_blob("Lab A/Fadul 1-1", LOCAL_BLOB) == ref.get_blob("Fadul 1-1", LOCAL_BLOB)
    hits = b.search(entries[0], k=3, rerank=0)
    assert hits[0].scan_id == "Lab A/Fadul 1-2" and hits[0].lab == "Lab A"
    assert b.search(entries[3], k=1, rerank=0)[0].scan_id == "Lab A/Fadul 2-1"
    audit = [e for e in b.audit_log() if e["action"] == "import_bundle"][-1]["parameters"]
    assert audit["signature_model"]["name"] == "global-640" and audit["recomputed"] == {LOCAL_BLOB: 4}
    assert audit["database_model"]["name"] == "local-sift" and audit["manifest_layout"] == "current"
    assert b.verify(deep=True)["ok"]


def test_local_sift_bundle_into_global_database(bundles, sample, entries, tmp_path):
    b = _lab_b(tmp_path / "B", sample, entries)
    out = b.import_bundle(bundles / "l.zip")
    assert out["imported"] == [f"Lab L/{sample[i].exhibit_id}" for i in EXPORTED] and out["recomputed"] == {}
    assert out["bundle_model"]["name"] == "local-sift"
    assert b.get_blob("Lab L/Fadul 1-1", LOCAL_BLOB) is None  # another model's stage-1 data are not kept
    assert b.search(entries[0], k=1, rerank=0)[0].scan_id == "Lab L/Fadul 1-2"


def test_bundle_of_the_earlier_manifest_layout_imports(bundles, sample, entries, tmp_path):
    old = tmp_path / "old.zip"

    def earlier(man):
        man["signature_model"] = legacy_signature_model()
        del man["global_signature"]
    _rewrite(bundles / "a.zip", old, earlier)
    bd = read_bundle(old)
    assert bd.legacy_manifest and bd.model_matches and bd.signature_model["name"] == "global-640"
    b = _lab_b(tmp_path / "B", sample, entries, model="local-sift")
    out = b.import_bundle(old)
    assert len(out["imported"]) == 4 and out["recomputed"] == {LOCAL_BLOB: 4}
    assert b.search(entries[1], k=1, rerank=0)[0].scan_id == "Lab A/Fadul 1-1"
    audit = [e for e in b.audit_log() if e["action"] == "import_bundle"][-1]["parameters"]
    assert audit["manifest_layout"] == "earlier" and audit["global_signature"] == legacy_signature_model()
    # an earlier-layout bundle of another signature version is still refused
    other = tmp_path / "old-other.zip"
    _rewrite(bundles / "a.zip", other, lambda m: (
        m.__setitem__("signature_model", {"id": "old/v0", "sha256": "1" * 64}), m.pop("global_signature")))
    with pytest.raises(BundleModelError, match="'old/v0'"):
        _lab_b(tmp_path / "C", sample, entries).import_bundle(other)


def test_other_global_version_needs_surfaces(bundles, sample, entries, tmp_path):
    other = {"name": "global-640", "version": "vlad/v0", "sha256": "2" * 64}
    plain, surf = tmp_path / "p.zip", tmp_path / "s.zip"
    _rewrite(bundles / "a.zip", plain, lambda m: m.__setitem__("global_signature", other))
    _rewrite(bundles / "a-surf.zip", surf, lambda m: m.__setitem__("global_signature", other))
    b = _lab_b(tmp_path / "B", sample, entries, model="local-sift")
    with pytest.raises(BundleModelError, match="'vlad/v0'.*--with-surfaces"):
        b.import_bundle(plain)
    with pytest.raises(BundleModelError, match="no surfaces"):
        b.import_bundle(plain, resign=True)
    with pytest.raises(BundleModelError, match="resign=True"):
        b.import_bundle(surf)
    assert [r["scan_id"] for r in b.list()] == ["Fadul 3-1", "Fadul 3-2"]  # nothing was imported
    out = b.import_bundle(surf, resign=True)
    assert out["resigned"] and out["recomputed"] == {LOCAL_BLOB: 4}
    assert b.search(entries[0], k=1, rerank=0)[0].scan_id == "Lab A/Fadul 1-2"


@pytest.mark.parametrize("edit", [
    lambda m: m.__setitem__("signature_model", "global-640"),
    lambda m: m.__setitem__("global_signature", {"name": "global-640", "version": "v\x00", "sha256": "0" * 64}),
    lambda m: m.__setitem__("global_signature", {"name": "x", "version": "v", "sha256": "z" * 64}),
    lambda m: m.pop("signature_model"),
])
def test_malformed_model_records_are_refused(bundles, tmp_path, edit):
    bad = tmp_path / "bad.zip"
    _rewrite(bundles / "a.zip", bad, edit)
    with pytest.raises(BundleFormatError, match="model"):
        read_bundle(bad)


# ---------------------------------------------------------------- several sources at once
@pytest.fixture(scope="module")
def sources(tmp_path_factory, sample, entries):
    """Home database (1-1, 2-1); Lab B's signed bundle with surfaces (1-2, 3-1); Lab C's unsigned local-sift
    one without surfaces (2-1, 2-2, 3-2)."""
    root = tmp_path_factory.mktemp("sources")
    generate_signing_key(root / "b.pem", root / "b.pub")
    generate_signing_key(root / "x.pem", root / "x.pub")
    home = _db(root / "home", sample, entries, [0, 2])
    home.close()
    lb = _db(root / "lb", sample, entries, [1, 4])
    lb.export_bundle(root / "b.zip", lab="Lab B", sign_key=root / "b.pem", include_surfaces=True)
    lb.close()
    lc = _db(root / "lc", sample, entries, [2, 3, 5], model="local-sift")
    lc.export_bundle(root / "c.zip", lab="Lab C")
    lc.close()
    return root


def test_search_database_and_bundles_names_each_hit(sources, entries):
    r = sources
    with MultiSearch(r / "home", [r / "b.zip", r / "c.zip"], public_keys=[r / "x.pub", r / "b.pub"],
                     trust_unsigned=True, lab="Home") as ms:
        hits = ms.search(entries[0], k=10, rerank=1)  # Fadul 1-1: its mate is only in Lab B's bundle
        assert isinstance(hits[0], SourcedHit)
        assert (hits[0].scan_id, hits[0].lab, hits[0].source) == ("Lab B/Fadul 1-2", "Lab B", f"bundle:{r / 'b.zip'}")
        assert hits[0].cmc_count is not None and hits[0].stage == 3  # stage 3 ran over the merged list
        assert all(h.stage < 3 for h in hits[1:])
        assert not any("stage-2 inliers" in w for w in hits.warnings)  # the home database alone has no mate
        hits = ms.search(entries[4], k=10, rerank=1)  # Fadul 3-1: its mate is in Lab C's bundle, no surfaces
        assert hits[0].scan_id == "Lab C/Fadul 3-2" and hits[0].stage == 2
        assert any("no surface to compare" in w for w in hits.warnings)
        hits = ms.search(entries[0], k=10, rerank=0)
        labs = {h.scan_id: (h.lab, h.source.partition(":")[0]) for h in hits}
        assert labs["Fadul 2-1"] == ("Home", "database") and labs["Lab C/Fadul 3-2"] == ("Lab C", "bundle")
        assert len(hits) == 5  # 6 scans in all, the query's own left out, 2-1 held twice listed once
        hits = ms.search(entries[3], k=10, rerank=0)  # Fadul 2-2 (in Lab C's bundle: left out as the query)
        assert hits[0].scan_id == "Fadul 2-1" and hits[0].source == f"database:{r / 'home'}"
        assert "Lab C/Fadul 2-1" not in {h.scan_id for h in hits}  # the same heights as the database's 2-1
        assert any("listed once" in w for w in hits.warnings)
        inl = [h.inliers for h in hits]
        assert inl == sorted(inl, reverse=True)  # one order over the union


def test_search_bundles_without_a_database(sources, entries):
    r = sources
    hits = search_sources(entries[1], None, [r / "c.zip", r / "b.zip"], public_keys=[r / "b.pub"],
                          trust_unsigned=True, k=3, rerank=0)  # Fadul 1-2: its mate 1-1 is in no source
    assert {h.lab for h in hits} <= {"Lab B", "Lab C"} and all(h.source.startswith("bundle:") for h in hits)
    weak = [w for w in hits.warnings if "stage-2 inliers" in w]  # said once, of the merged list
    assert len(weak) == 1 and weak[0].startswith("no candidate reached 6")
    hits = search_sources(entries[4], None, [r / "c.zip", r / "b.zip"], public_keys=[r / "b.pub"],
                          trust_unsigned=True, k=1, rerank=0)  # Fadul 3-1 (Lab B) finds 3-2 in Lab C's
    assert (hits[0].scan_id, hits[0].lab) == ("Lab C/Fadul 3-2", "Lab C")


def test_bad_sources_are_refused(sources, tmp_path):
    r = sources
    with pytest.raises(BundleSignatureError, match="no public key"):
        MultiSearch(r / "home", [r / "b.zip"])
    with pytest.raises(BundleSignatureError, match="any of the 1 public key"):
        MultiSearch(r / "home", [r / "b.zip"], public_keys=[r / "x.pub"], trust_unsigned=True)
    with pytest.raises(BundleSignatureError, match="not signed"):
        MultiSearch(None, [r / "b.zip", r / "c.zip"], public_keys=[r / "b.pub"])
    with pytest.raises(BundleFormatError, match="no such bundle"):
        MultiSearch(r / "home", [tmp_path / "missing.zip"])
    with pytest.raises(BundleModelError, match="global-640"):
        MultiSearch(r / "home", [r / "c.zip"], model="local-sift")
    other = tmp_path / "other.zip"
    _rewrite(r / "c.zip", other, lambda m: m.__setitem__(
        "global_signature", {"name": "global-640", "version": "vlad/v0", "sha256": "2" * 64}))
    with pytest.raises(BundleModelError, match="cannot be re-signed"):
        MultiSearch(None, [other])


def test_cli_search_with_bundles(sources, tmp_path, capsys):
    from ballistics.cli import main

    r = sources
    q = str(datasets.fadul_paths("processed")[0])
    base = ["db", "search", str(r / "home"), q, "--no-preprocess", "--rerank", "0", "-k", "3",
            "--bundle", str(r / "b.zip"), "--bundle", str(r / "c.zip"), "--public-key", str(r / "b.pub")]
    capsys.readouterr()
    assert main(base) == 2
    assert "not signed" in capsys.readouterr().err  # Lab C's bundle is unsigned: one clear line
    assert main(base + ["--trust-unsigned", "--json", "--lab", "Home"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert (hits[0]["scan_id"], hits[0]["lab"]) == ("Lab B/Fadul 1-2", "Lab B")
    assert hits[0]["source"] == f"bundle:{r / 'b.zip'}"
    assert main(base + ["--trust-unsigned"]) == 0
    out = capsys.readouterr().out
    assert "bundle b.zip" in out and "Lab B" in out
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a bundle")
    for extra, msg in ((["--bundle", str(bad)], "not a readable bundle"),
                       (["--bundle", str(tmp_path / "none.zip")], "no such bundle")):
        assert main(base + ["--trust-unsigned"] + extra) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
