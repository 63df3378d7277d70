"""Exchange bundles: one zip file carrying a lab's searchable entries to a partner lab.

Members of a bundle (format :data:`FORMAT_VERSION`)::

    manifest.json            format and engine versions, signature model (id and
                             SHA-256 of its parameters and codebook), exporting lab,
                             date, counts, parameters, and the SHA-256 and size of
                             every other member
    manifest.json.sha256     SHA-256 of manifest.json (so an edited manifest is caught
                             even in an unsigned bundle)
    manifest.json.sig        optional detached Ed25519 signature of manifest.json
    catalogue.json           partner-visible fields of each entry: scan id, origin lab,
                             case, exhibit and firearm ids (where known), instrument,
                             pixel size, shape, height-array SHA-256; which signature
                             rows, blobs and surfaces belong to it
    signatures/<part>.npy    float32 signature matrix of each part (rows named in
                             catalogue.json)
    blobs/<i>-<j>.bin        the per-scan blobs of search's verification stages
    surfaces/<sha>.x3p       optionally, the extracted surfaces (never the evidence file)

Reading validates everything -- zip structure, manifest hash, every member's hash
and size, no member missing or extra, format version, signature (when a public key
is given), signature model -- before anything is written, so a refused bundle
leaves the database byte-identical.

References
----------
Bernstein, D. J. et al. (2012). High-speed high-security signatures. Journal of
Cryptographic Engineering 2, 77-89 (Ed25519; implementation: ``cryptography``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..errors import (
    BallisticsError,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleModelError,
    BundleSignatureError,
    BundleVersionError,
    DatabaseError,
)
from ..scan import _jsonable
from ._catalogue import now
from ._entry import PARTS
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION, signature_dim
from ._store import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

logger = logging.getLogger(__name__)

FORMAT = "openbreech-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SHA = "manifest.json.sha256"
SIGNATURE = "manifest.json.sig"
#: Members larger than this (bytes, uncompressed) are refused (zip bombs).
MAX_MEMBER_BYTES = 1 << 30
_LAB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def signature_model() -> dict[str, str]:
    """Id and SHA-256 of the signature model (parameters and shipped codebook)."""
    from ._signature import _codebook

    h = hashlib.sha256(json.dumps(_jsonable(SIGNATURE_PARAMS), sort_keys=True).encode())
    for k, v in sorted(_codebook().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return {"id": SIGNATURE_VERSION, "sha256": h.hexdigest()}


def _check_lab(lab: str) -> str:
    lab = str(lab).strip()
    if not _LAB_RE.match(lab):
        raise BallisticsError(f"lab name {lab!r} must be 1-64 letters, digits, spaces, '.', '_' or '-', "
                              "starting with a letter or digit")
    return lab


# ---------------------------------------------------------------------- keys
def _need_crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BundleSignatureError("signing and checking bundles needs the optional dependency 'cryptography': "
                                   "pip install 'openbreech[sign]'.") from exc


def generate_signing_key(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]) -> str:
    """Write a new Ed25519 key pair as PEM files; returns the public key's SHA-256 fingerprint.

    Parameters
    ----------
    private_path, public_path : path-like
        Where to write the private key (PKCS#8, unencrypted: keep it private) and the
        public key (SubjectPublicKeyInfo) to give to partner labs.
    """
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(Path(private_path), priv, mode=0o600)  # never readable by others, not even briefly
    atomic_write_bytes(Path(public_path), pub)
    return _fingerprint(key.public_key())


def _fingerprint(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _load_private(key: Any) -> Any:
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        return key
    try:
        data = Path(key).read_bytes() if isinstance(key, (str, os.PathLike)) else bytes(key)
        k = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleSignatureError(f"cannot load the Ed25519 signing key ({exc}).") from exc
    if not isinstance(k, Ed25519PrivateKey):
        raise BundleSignatureError("the signing key is not an Ed25519 private key.")
    return k


def _load_public(key: Any) -> Any:
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        data = Path(key).read_bytes() if isinstance(key, (str, os.PathLike)) else bytes(key)
        k = serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleSignatureError(f"cannot load the Ed25519 public key ({exc}).") from exc
    if not isinstance(k, Ed25519PublicKey):
        raise BundleSignatureError("the public key is not an Ed25519 key.")
    return k


# ---------------------------------------------------------------------- export
def export_bundle(db: CaseDatabase, path: str | os.PathLike[str], scan_ids: list[str] | None = None, *,
                  include_surfaces: bool = False, lab: str, sign_key: Any = None) -> dict[str, Any]:
    """Write the bundle of ``scan_ids`` (default: every live scan); see the module docstring.

    Returns
    -------
    dict
        The manifest (without the member list) plus ``bytes`` (size of the bundle).
    """
    from ..reading import read_scan

    lab = _check_lab(lab)
    with db.catalogue.read():
        rows = db.catalogue.list_scans()
        if scan_ids is not None:
            want = list(dict.fromkeys(scan_ids))
            by_id = {r["scan_id"]: r for r in rows}
            missing = [s for s in want if s not in by_id]
            if missing:
                raise DatabaseError(f"{db.path}: no scan(s) {missing} to export.")
            rows = [by_id[s] for s in want]
        nums = [r["num"] for r in rows]
        sigs = {p: dict(zip(*_rows(db, p, nums))) for p in PARTS}
        blobs = {r["num"]: db.catalogue.blobs_of(r["num"]) for r in rows}
        files = {r["num"]: db.catalogue.files_of(r["num"]) for r in rows}
    members: dict[str, bytes] = {}
    catalogue: list[dict[str, Any]] = []
    mats: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    for i, r in enumerate(rows):
        md = r["metadata"] or {}
        entry: dict[str, Any] = {
            "scan_id": r["origin_scan_id"] or r["scan_id"], "lab": r["origin_lab"] or lab,
            "case_id": _strip(r["case_id"], r["origin_lab"]), "exhibit_id": _strip(r["exhibit_id"], r["origin_lab"]),
            "firearm_id": _strip(r["firearm_id"], r["origin_lab"]),
            "instrument": md.get("instrument") or md.get("instrument_model") or md.get("Instrument"),
            "pixel_size_m": (r["spacing"] or [None])[0], "spacing_m": r["spacing"], "shape": r["shape"],
            "sha256": r["sha256"], "rows": {}, "blobs": {}, "surfaces": {}}
        for p in PARTS:
            v = sigs[p].get(r["num"])
            if v is not None:
                entry["rows"][p] = len(mats[p])
                mats[p].append(v)
        for j, (name, data) in enumerate(sorted(blobs[r["num"]].items())):
            m = f"blobs/{i:06d}-{j}.bin"
            members[m] = data
            entry["blobs"][name] = m
        if include_surfaces:
            for role in PARTS:
                f = files[r["num"]].get(role)
                if f is None:
                    continue
                s = read_scan(db.path / f["path"])
                if s.checksum != f["sha256"]:
                    raise DatabaseError(f"{db.path / f['path']}: stored {role} surface of {r['scan_id']!r} was "
                                        "altered; nothing was exported.")
                m = f"surfaces/{f['sha256']}.x3p"
                if m not in members:
                    members[m] = (db.path / f["path"]).read_bytes()
                entry["surfaces"][role] = {"member": m, "sha256": f["sha256"]}
        catalogue.append(entry)
    for p in PARTS:
        if mats[p]:
            buf = io.BytesIO()
            np.save(buf, np.vstack(mats[p]).astype(np.float32), allow_pickle=False)
            members[f"signatures/{p}.npy"] = buf.getvalue()
    members["catalogue.json"] = json.dumps(_jsonable(catalogue), indent=1, default=str).encode()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine_version": __version__,
        "signature_model": signature_model(), "signature_dim": signature_dim(),
        "parameters": {"include_surfaces": bool(include_surfaces), "signature": SIGNATURE_PARAMS,
                       "scan_ids": scan_ids},
        "lab": lab, "created": now(),
        "counts": {"entries": len(catalogue), "signatures": {p: len(mats[p]) for p in PARTS if mats[p]},
                   "blobs": sum(len(e["blobs"]) for e in catalogue),
                   "surfaces": sum(1 for m in members if m.startswith("surfaces/"))},
        "members": {m: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for m, d in sorted(members.items())},
    }
    man = json.dumps(_jsonable(manifest), indent=1, sort_keys=True).encode()
    out: dict[str, bytes] = {MANIFEST: man,
                             MANIFEST_SHA: (hashlib.sha256(man).hexdigest() + "  manifest.json\n").encode()}
    if sign_key is not None:
        key = _load_private(sign_key)
        out[SIGNATURE] = key.sign(man)
        manifest["signed_by"] = _fingerprint(key.public_key())
    out.update(members)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in out.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name.endswith((".x3p", ".sig")) else zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    atomic_write_bytes(Path(path), buf.getvalue())
    res = {k: v for k, v in manifest.items() if k != "members"}
    res["bytes"] = len(buf.getvalue())
    res["path"] = str(path)
    logger.info("%s: exported %d entries to %s (%d bytes)", db.path, len(catalogue), path, res["bytes"])
    return res


def _rows(db: CaseDatabase, part: str, nums: list[int]) -> tuple[list[int], list[np.ndarray]]:
    ids: list[int] = []
    vecs: list[np.ndarray] = []
    for I, V in db.catalogue.iter_signatures(part, nums):
        ids += I.tolist()
        vecs += list(V)
    return ids, vecs


def _strip(value: str | None, lab: str | None) -> str | None:
    """An imported id without its ``lab/`` prefix (re-exported under its origin)."""
    if value is None or lab is None:
        return value
    pre = f"{lab}/"
    return value[len(pre):] if value.startswith(pre) else value


# ---------------------------------------------------------------------- reading
@dataclass
class Bundle:
    """A validated bundle in memory.

    Attributes
    ----------
    manifest : dict
        The parsed manifest.
    entries : list of dict
        ``catalogue.json``.
    signatures : dict of str to ndarray
        Signature matrix per part.
    members : dict of str to bytes
        Every other member (blobs, surfaces) by name.
    signed_by : str or None
        SHA-256 fingerprint of the public key the signature verified with.
    sha256 : str
        SHA-256 of the bundle file.
    """

    manifest: dict[str, Any]
    entries: list[dict[str, Any]]
    signatures: dict[str, np.ndarray]
    members: dict[str, bytes] = field(repr=False)
    signed_by: str | None = None
    sha256: str = ""

    @property
    def lab(self) -> str:
        return str(self.manifest["lab"])

    @property
    def model_matches(self) -> bool:
        return self.manifest.get("signature_model") == signature_model()


def read_bundle(path: str | os.PathLike[str], public_key: Any = None) -> Bundle:
    """Open and validate a bundle (integrity, version, signature); nothing is written.

    Parameters
    ----------
    path : path-like
        The bundle (zip).
    public_key : path, bytes or Ed25519PublicKey, optional
        The exporting lab's public key (PEM).  When given, the bundle must carry a
        signature that verifies with it.

    Raises
    ------
    BundleFormatError, BundleVersionError, BundleIntegrityError, BundleSignatureError
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise BundleIntegrityError(f"{p}: a member name occurs twice (members were added).")
            for i in infos:
                if i.file_size > MAX_MEMBER_BYTES:
                    raise BundleFormatError(f"{p}: member {i.filename} is {i.file_size} bytes, above the limit.")
            data = {n: z.read(n) for n in names}
    except FileNotFoundError as exc:
        raise BundleFormatError(f"{p}: no such bundle.") from exc
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleFormatError(f"{p}: not a readable bundle -- truncated or not a zip file ({exc}).") from exc
    except Exception as exc:  # zlib.error and friends from a damaged member  # noqa: BLE001
        if isinstance(exc, BundleError):
            raise
        raise BundleFormatError(f"{p}: a member cannot be decompressed -- the bundle is damaged ({exc}).") from exc
    if MANIFEST not in data:
        raise BundleFormatError(f"{p}: no {MANIFEST}; not an exchange bundle.")
    man_bytes = data.pop(MANIFEST)
    try:
        manifest = json.loads(man_bytes)
    except ValueError as exc:
        raise BundleIntegrityError(f"{p}: {MANIFEST} is not valid JSON (edited or damaged).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleFormatError(f"{p}: not an {FORMAT} (format {fmt!r}).")
    ver = manifest.get("format_version")
    if ver != FORMAT_VERSION:
        raise BundleVersionError(f"{p}: bundle format version {ver!r}; this ballistics {__version__} reads version "
                                 f"{FORMAT_VERSION} (written by ballistics {manifest.get('engine_version')}).")
    sha_line = data.pop(MANIFEST_SHA, None)
    if sha_line is None:
        raise BundleIntegrityError(f"{p}: {MANIFEST_SHA} is missing (a member was removed).")
    if sha_line.split(b" ")[0].decode(errors="replace") != hashlib.sha256(man_bytes).hexdigest():
        raise BundleIntegrityError(f"{p}: {MANIFEST} was edited after export (its SHA-256 no longer matches).")
    sig = data.pop(SIGNATURE, None)
    signed_by = None
    if public_key is not None:
        key = _load_public(public_key)
        from cryptography.exceptions import InvalidSignature

        if sig is None:
            raise BundleSignatureError(f"{p}: the bundle is not signed, but a public key was given to check it.")
        try:
            key.verify(sig, man_bytes)
        except InvalidSignature as exc:
            raise BundleSignatureError(f"{p}: the signature does not verify with the given public key "
                                       "(wrong key, or the bundle was altered).") from exc
        signed_by = _fingerprint(key)
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise BundleIntegrityError(f"{p}: the manifest lists no members.")
    extra = sorted(set(data) - set(listed))
    if extra:
        raise BundleIntegrityError(f"{p}: members not in the manifest were added: {extra[:5]}.")
    gone = sorted(set(listed) - set(data))
    if gone:
        raise BundleIntegrityError(f"{p}: members listed in the manifest are missing (removed): {gone[:5]}.")
    for name, meta in listed.items():
        d = data[name]
        if len(d) != meta.get("bytes") or hashlib.sha256(d).hexdigest() != meta.get("sha256"):
            raise BundleIntegrityError(f"{p}: member {name} was changed after export (SHA-256 mismatch).")
    try:
        entries = json.loads(data.pop("catalogue.json"))
        sigs = {}
        for part in PARTS:
            m = f"signatures/{part}.npy"
            if m in data:
                sigs[part] = np.load(io.BytesIO(data.pop(m)), allow_pickle=False)
    except (KeyError, ValueError) as exc:
        raise BundleFormatError(f"{p}: catalogue or signatures cannot be parsed ({exc}).") from exc
    _check_entries(p, entries, sigs, data, manifest)
    return Bundle(manifest=manifest, entries=entries, signatures=sigs, members=data, signed_by=signed_by,
                  sha256=hashlib.sha256(raw).hexdigest())


def _check_entries(p: Path, entries: Any, sigs: dict[str, np.ndarray], members: dict[str, bytes],
                   manifest: dict[str, Any]) -> None:
    if not isinstance(entries, list):
        raise BundleFormatError(f"{p}: catalogue.json is not a list of entries.")
    dim = manifest.get("signature_dim")
    for part, m in sigs.items():
        if m.dtype != np.float32 or m.ndim != 2 or m.shape[1] != dim:
            raise BundleFormatError(f"{p}: signatures of {part} have shape {m.shape} {m.dtype}, expected (n, {dim}).")
    try:
        _check_lab(manifest.get("lab", ""))
    except BallisticsError as exc:
        raise BundleFormatError(f"{p}: {exc}") from exc
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("scan_id"), str) or not isinstance(e.get("sha256"), str):
            raise BundleFormatError(f"{p}: an entry lacks its scan id or hash.")
        try:
            _check_lab(e.get("lab", ""))
        except BallisticsError as exc:
            raise BundleFormatError(f"{p}: entry {e['scan_id']!r}: {exc}") from exc
        if "breech_face" not in e.get("rows", {}):
            raise BundleFormatError(f"{p}: entry {e['scan_id']!r} has no breech-face signature.")
        for part, row in e["rows"].items():
            if part not in sigs or not (0 <= int(row) < len(sigs[part])):
                raise BundleFormatError(f"{p}: entry {e['scan_id']!r} names a missing {part} signature row.")
        for m in list(e.get("blobs", {}).values()) + [s["member"] for s in e.get("surfaces", {}).values()]:
            if m not in members:
                raise BundleFormatError(f"{p}: entry {e['scan_id']!r} names a missing member {m}.")


# ---------------------------------------------------------------------- import
def import_bundle(db: CaseDatabase, path: str | os.PathLike[str], public_key: Any = None, *,
                  resign: bool = False) -> dict[str, Any]:
    """Add a bundle's entries to ``db`` under their origin lab; see :meth:`CaseDatabase.import_bundle`."""
    from ..reading import read_scan
    from ._entry import compute_blobs
    from ._signature import signature

    b = read_bundle(path, public_key)
    resigned = False
    if not b.model_matches:
        theirs = b.manifest.get("signature_model", {})
        if not resign:
            raise BundleModelError(
                f"{path}: signatures were made with signature model {theirs.get('id')!r} "
                f"(sha256 {str(theirs.get('sha256'))[:12]}...), this database uses {SIGNATURE_VERSION!r} "
                f"(sha256 {signature_model()['sha256'][:12]}...); they cannot be searched together. "
                + ("Import with resign=True (`--resign`) to recompute them from the bundle's surfaces."
                   if b.manifest.get("parameters", {}).get("include_surfaces") else
                   "Ask the exporting lab for a bundle with surfaces (--with-surfaces) to re-sign it."))
        if not all("breech_face" in e.get("surfaces", {}) for e in b.entries):
            raise BundleModelError(f"{path}: the bundle's signature model differs and it carries no surfaces to "
                                   "re-sign; ask the exporting lab for a bundle exported --with-surfaces.")
        resigned = True
    # everything below is computed before the writer lock; nothing is written until it all worked
    prepared = []
    for e in b.entries:
        surfaces = {}
        for role, s in e.get("surfaces", {}).items():
            with tempfile.TemporaryDirectory() as tmp:
                f = Path(tmp) / "s.x3p"
                f.write_bytes(b.members[s["member"]])
                try:
                    scan = read_scan(f)
                except BallisticsError as exc:
                    raise BundleFormatError(f"{path}: surface {s['member']} cannot be read ({exc}).") from exc
            if scan.checksum != s["sha256"]:
                raise BundleIntegrityError(f"{path}: surface {s['member']} does not hold the heights it names.")
            surfaces[role] = scan
        if resigned:
            sigs = {}
            for part, surf in surfaces.items():
                try:
                    sigs[part] = signature(surf)
                except BallisticsError:
                    if part == "breech_face":
                        raise
            blobs = compute_blobs(surfaces["breech_face"])
        else:
            sigs = {part: b.signatures[part][int(row)] for part, row in e["rows"].items()}
            blobs = {name: b.members[m] for name, m in e.get("blobs", {}).items()}
        prepared.append((e, surfaces, sigs, blobs))
    return _write_entries(db, b, prepared, str(path), resigned)


def _write_entries(db: CaseDatabase, b: Bundle, prepared: list[tuple[dict[str, Any], dict[str, Any],
                                                                  dict[str, Any], dict[str, bytes]]],
               source: str, resigned: bool) -> dict[str, Any]:
    """Write validated bundle entries into ``db`` in one transaction (writer lock held)."""
    def ns(lab: str, v: str | None) -> str | None:
        return None if v is None else f"{lab}/{v}"

    with db._writer():
        db._sync(persist=True)
        new, present = [], []
        taken: set[str] = set()
        for item in prepared:
            e = item[0]
            lab, oid = e["lab"], e["scan_id"]
            row = db.catalogue.scan_by_origin(lab, oid, e["sha256"]) or db.catalogue.scan_by_sha(e["sha256"])
            if row is not None:
                present.append({"scan_id": row["scan_id"], "bundle_id": f"{lab}/{oid}"})
                continue
            sid = f"{lab}/{oid}"
            if sid in taken or db.catalogue.scan_by_id(sid) is not None:
                raise BundleError(f"{source}: scan id {sid!r} is already stored with other heights (the lab "
                                  "changed a scan it had shared?); remove the stored one first. Nothing was "
                                  "imported.")
            taken.add(sid)
            new.append((sid, item))
        if new:
            files: dict[str, dict[str, tuple[str, str]]] = {}
            for sid, (_e, surfaces, _s, _b) in new:
                files[sid] = {role: db._store_file(surf) for role, surf in surfaces.items()}
            with db.catalogue.transaction():
                for sid, (e, _surfaces, sigs, blobs) in new:
                    lab = e["lab"]
                    case_id, exhibit_id, firearm_id = (ns(lab, e.get("case_id")), ns(lab, e.get("exhibit_id")),
                                                       ns(lab, e.get("firearm_id")))
                    db.catalogue.ensure_entities(case_id, exhibit_id, firearm_id)
                    num = db.catalogue.insert_scan({
                        "scan_id": sid, "sha256": e["sha256"], "case_id": case_id, "exhibit_id": exhibit_id,
                        "firearm_id": firearm_id, "added": now(), "preprocess": 1,
                        "source": f"bundle:{Path(source).name}", "source_sha256": b.sha256,
                        "shape": json.dumps(e.get("shape")), "spacing": json.dumps(e.get("spacing_m")),
                        "metadata": json.dumps(_jsonable({"instrument": e.get("instrument"),
                                                          "pixel_size_m": e.get("pixel_size_m")})),
                        "provenance": json.dumps({"bundle": b.sha256, "lab": b.lab,
                                                  "exported": b.manifest.get("created"),
                                                  "engine_version": b.manifest.get("engine_version")}),
                        "origin_lab": lab, "origin_scan_id": e["scan_id"]})
                    for role, (fsha, rel) in files[sid].items():
                        db.catalogue.insert_file(num, role, fsha, rel)
                    for part, vec in sigs.items():
                        db.catalogue.insert_signature(num, part, SIGNATURE_VERSION, vec)
                    for name, data in blobs.items():
                        db.catalogue.put_blob(num, name, data)
                    db.catalogue.audit("import", sid, {"lab": lab, "bundle_sha256": b.sha256,
                                                         "sha256": e["sha256"], "resigned": resigned,
                                                         "surfaces": sorted(files[sid])})
                db.catalogue.audit("import_bundle", None, {
                    "bundle": source, "bundle_sha256": b.sha256, "lab": b.lab, "imported": len(new),
                    "already_present": len(present), "signed_by": b.signed_by, "resigned": resigned,
                    "signature_model": b.manifest.get("signature_model"),
                    "engine_version": b.manifest.get("engine_version")})
                db.catalogue.bump_generation()
            db._sync(persist=True)
    logger.info("%s: imported %d entries from %s (%d already present)", db.path, len(new), source, len(present))
    return {"lab": b.lab, "imported": [sid for sid, _ in new], "already_present": present,
            "resigned": resigned, "signed_by": b.signed_by}


def open_bundle(path: str | os.PathLike[str], public_key: Any = None, **kw: Any) -> CaseDatabase:
    """A read-only database holding a bundle's entries, in a temporary directory removed on close.

    The bundle is validated and imported into a new database under a temporary
    directory; the returned object refuses changes.  Use it to search a partner's
    bundle without importing it into a lab database.
    """
    from ._database import CaseDatabase

    tmp = tempfile.TemporaryDirectory(prefix="ballistics-bundle-")
    try:
        db = CaseDatabase(Path(tmp.name) / "db", **kw)
        db.import_bundle(path, public_key=public_key)
    except BaseException:
        tmp.cleanup()
        raise
    db.readonly = True
    db._tmpdir = tmp  # removed with the object (close() or garbage collection)
    return db

