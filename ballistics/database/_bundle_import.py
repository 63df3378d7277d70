"""Importing an exchange bundle, and searching one without importing it.

The bundle is validated completely (:func:`~._bundle_read.read_bundle`) and every entry
prepared (surfaces read and checked, signatures recomputed when re-signing) before the
database is touched; the entries are then committed through the database's public write
API (:meth:`CaseDatabase.write`) in one transaction, so a refused bundle leaves the
database byte-identical and nothing is written into ``scans/``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    BallisticsError,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleModelError,
    BundleSignatureError,
)
from ..retrieval import SIFT_BLOB
from ..retrieval._models import LOCAL_BLOB, SignatureModel, model_blobs
from ._bundle_format import Bundle, global_signature_model
from ._bundle_read import read_bundle
from ._models import recorded_model
from ._writes import NewScan

#: Prefix of the names of stage-1 blobs (a model's per-entry data), as opposed to stage-2 ones.
_STAGE1_PREFIX = LOCAL_BLOB.partition(":")[0] + ":"

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

__all__ = ["import_bundle", "open_bundle"]

logger = logging.getLogger(__name__)


def _model_check(b: Bundle, path: Any, resign: bool) -> bool:
    """True when the entries must be re-signed from their surfaces; raises when they cannot.

    Only the global signatures decide: the stage-1 model the bundle was exported with
    does not matter, because this database's own stage-1 data are made from the
    bundle's stage-2 key points (:func:`_model_blobs`).
    """
    if b.model_matches:
        return False
    theirs = b.global_signature
    ours = global_signature_model()
    has_surfaces = all("breech_face" in e.get("surfaces", {}) for e in b.entries) and bool(b.entries)
    if not resign:
        raise BundleModelError(
            f"{path}: the bundle's global signatures were made with signature model "
            f"{str(theirs.get('version') or theirs.get('id'))[:80]!r} (sha256 {str(theirs.get('sha256'))[:12]}...), "
            f"this library makes {ours['version']!r} (sha256 {ours['sha256'][:12]}...); they cannot be searched "
            "together. "
            + ("Import with resign=True (`--resign`) to recompute them from the bundle's surfaces."
               if has_surfaces else
               "Ask the exporting lab for a bundle with surfaces (--with-surfaces) and import it with "
               "resign=True (`--resign`), or for a bundle exported with this ballistics version."))
    if not has_surfaces:
        raise BundleModelError(f"{path}: the bundle's global signatures are of another version and it carries no "
                               "surfaces to re-sign; ask the exporting lab for a bundle exported --with-surfaces.")
    return True


def _model_blobs(model: SignatureModel, blobs: dict[str, bytes], surfaces: dict[str, Any]
                 ) -> tuple[dict[str, bytes], list[str]]:
    """An entry's blobs for a database of ``model``: the stage-2 blobs, plus the model's own.

    Stage-1 blobs the bundle carries (named ``stage1:...``) are dropped and the database
    model's are computed from the entry's stage-2 key points (or, when the bundle has
    none, from its breech face, if it carries it).  Returns the blobs and the names of
    those computed here that the bundle did not carry byte for byte.
    """
    from ._entry import compute_blobs

    out = {n: d for n, d in blobs.items() if not n.startswith(_STAGE1_PREFIX)}
    if model.kind != "global" and SIFT_BLOB not in out and "breech_face" in surfaces:
        out.update(compute_blobs(surfaces["breech_face"]))
    own = model_blobs(model, out.get(SIFT_BLOB))
    out.update(own)
    return out, sorted(n for n, d in own.items() if blobs.get(n) != d)


def _prepare(b: Bundle, path: Any, resigned: bool) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any],
                                                                  dict[str, bytes]]]:
    """Read and check every entry's surfaces (and re-sign) before anything is written."""
    from ..reading import read_scan
    from ..retrieval import signature
    from ._entry import compute_blobs

    prepared = []
    with tempfile.TemporaryDirectory(prefix="ballistics-bundle-") as tmp:
        for e in b.entries:
            surfaces = {}
            for role, s in e.get("surfaces", {}).items():
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
    return prepared


def import_bundle(db: CaseDatabase, path: str | os.PathLike[str], public_key: Any = None, *, resign: bool = False,
                  trust_unsigned: bool = False) -> dict[str, Any]:
    """Add a partner lab's bundle to ``db``; its entries keep their origin lab.

    Imported scans get the id ``"<lab>/<their id>"`` (case, exhibit and firearm ids are
    prefixed the same way).  Importing the same bundle again changes nothing; a scan
    whose heights are already stored is skipped.

    Parameters
    ----------
    db : CaseDatabase
        The database to add to (writable).
    path : path-like
        The bundle.
    public_key : path, bytes or Ed25519PublicKey, optional
        The exporting lab's public key; the bundle must be signed with its private key.
    resign : bool, default False
        Recompute signatures and blobs from the bundle's surfaces if its global
        signatures are of another version than this library's (needs a bundle exported
        with surfaces).
    trust_unsigned : bool, default False
        Import a *signed* bundle without checking its signature (no ``public_key``).
        An unsigned bundle imports without a key, with a warning.

    Returns
    -------
    dict
        ``lab``, ``imported`` (new scan ids), ``already_present``, ``resigned``
        (global signatures recomputed from the surfaces), ``recomputed`` (per blob name,
        how many entries' stage-1 data were computed here rather than taken from the
        bundle), ``bundle_model`` (the exporting database's signature model),
        ``signed_by``, ``warnings``.

    Notes
    -----
    Global signatures of this library's version are imported as they are, whichever
    stage-1 model the exporting database used; this database's own stage-1 data (the
    ``local-sift`` inverted-file blob) are computed from the bundle's stage-2 key
    points, so no surfaces are needed.  Global signatures of another version need the
    surfaces and ``resign=True``.  Bundles whose manifest has the earlier layout (only
    the global signature's id and SHA-256) import the same way.

    Raises
    ------
    BundleError
        Damaged, hostile, altered, wrong-version, wrong-signature or other-model bundle,
        or a signed bundle without a key (a subclass says which); the database is left
        byte-identical.
    """
    b = read_bundle(path, public_key)
    warnings: list[str] = []
    if public_key is None and b.signed and not trust_unsigned:
        raise BundleSignatureError(f"{path}: the bundle is signed, but no public key was given to check the "
                                   "signature; pass the exporting lab's public key (--public-key), or "
                                   "trust_unsigned=True (--trust-unsigned) to import it unchecked.")
    if public_key is None:
        warnings.append(f"{path}: imported without checking a signature ("
                        + ("signed, but trusted unchecked" if b.signed else "the bundle is unsigned")
                        + "); its origin rests on how it reached you.")
        logger.warning(warnings[-1])
    resigned = _model_check(b, path, resign)
    model = recorded_model(db.catalogue)
    prepared = []
    for e, surfaces, sigs, blobs in _prepare(b, path, resigned):
        blobs, computed = _model_blobs(model, blobs, surfaces)
        if model.kind != "global" and not model_blobs(model, blobs.get(SIFT_BLOB)):
            warnings.append(f"{path}: entry {e['scan_id']!r} carries no stage-2 key points nor surfaces, so this "
                            f"database's {model.name!r} stage 1 cannot find it; ask the lab for a bundle with "
                            "key points or surfaces.")
            logger.warning(warnings[-1])
        prepared.append((e, surfaces, sigs, blobs, computed))
    return _write_entries(db, b, prepared, str(path), resigned, model) | {"warnings": warnings}


def _ns(lab: str, v: str | None) -> str | None:
    return None if v is None else f"{lab}/{v}"


def _write_entries(db: CaseDatabase, b: Bundle, prepared: list[tuple[dict[str, Any], dict[str, Any],
                                                                  dict[str, Any], dict[str, bytes], list[str]]],
                   source: str, resigned: bool, model: SignatureModel) -> dict[str, Any]:
    """Commit validated entries through the database's write API, in one transaction."""
    new, present = [], []
    recomputed: dict[str, int] = {}
    with db.write() as w:
        for e, surfaces, sigs, blobs, computed in prepared:
            lab, oid = b.lab, e["scan_id"]
            row = w.scan_by_origin(lab, oid, e["sha256"]) or w.scan_by_sha(e["sha256"])
            if row is not None:
                present.append({"scan_id": row["scan_id"], "bundle_id": f"{lab}/{oid}"})
                continue
            sid = f"{lab}/{oid}"
            if w.staged(sid) or w.scan_by_id(sid) is not None:
                raise BundleError(f"{source}: scan id {sid!r} is already stored with other heights (the lab "
                                  "changed a scan it had shared?); remove the stored one first. Nothing was "
                                  "imported.")
            for name in computed:
                recomputed[name] = recomputed.get(name, 0) + 1
            w.add(NewScan(
                scan_id=sid, sha256=e["sha256"], surfaces=surfaces, signatures=sigs, blobs=blobs,
                row={"case_id": _ns(lab, e.get("case_id")), "exhibit_id": _ns(lab, e.get("exhibit_id")),
                     "firearm_id": _ns(lab, e.get("firearm_id")), "preprocess": True,
                     "source": f"bundle:{Path(source).name}", "source_sha256": b.sha256, "shape": e.get("shape"),
                     "spacing": e.get("spacing_m"),
                     "metadata": {"instrument": e.get("instrument"), "pixel_size_m": e.get("pixel_size_m")},
                     "provenance": {"bundle": b.sha256, "lab": b.lab, "exported": b.manifest.get("created"),
                                    "engine_version": b.manifest.get("engine_version"),
                                    "signature_model": b.signature_model},
                     "origin_lab": lab, "origin_scan_id": oid},
                action="import",
                audit={"lab": lab, "bundle_sha256": b.sha256, "sha256": e["sha256"], "resigned": resigned,
                       "recomputed": computed, "surfaces": sorted(surfaces)}))
            new.append(sid)
        if new:
            w.audit("import_bundle", None, {
                "bundle": source, "bundle_sha256": b.sha256, "lab": b.lab, "imported": len(new),
                "already_present": len(present), "signed_by": b.signed_by, "resigned": resigned,
                "signature_model": b.signature_model, "global_signature": b.global_signature,
                "manifest_layout": "earlier" if b.legacy_manifest else "current",
                "database_model": model.record(), "recomputed": recomputed,
                "engine_version": b.manifest.get("engine_version")})
    logger.info("%s: imported %d entries from %s (%d already present)", db.path, len(new), source, len(present))
    return {"lab": b.lab, "imported": new, "already_present": present, "resigned": resigned,
            "recomputed": recomputed, "bundle_model": b.signature_model, "signed_by": b.signed_by}


def open_bundle(path: str | os.PathLike[str], public_key: Any = None, *, trust_unsigned: bool = False,
                **kw: Any) -> CaseDatabase:
    """A read-only database holding a bundle's entries, in a temporary directory removed on close.

    The bundle is validated and imported into a new database under a temporary
    directory; the returned object refuses changes.  Use it to search a partner's
    bundle without importing it into a lab database.
    """
    from ._database import CaseDatabase

    tmp = tempfile.TemporaryDirectory(prefix="ballistics-bundle-")
    try:
        with CaseDatabase(Path(tmp.name) / "db", **kw) as db:
            db.import_bundle(path, public_key=public_key, trust_unsigned=trust_unsigned)
        ro = CaseDatabase(Path(tmp.name) / "db", readonly=True, **kw)
    except BaseException:
        tmp.cleanup()
        raise
    ro._cleanup = tmp.cleanup  # removed with the object (close())
    return ro
