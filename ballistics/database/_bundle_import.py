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
from ..retrieval import SIGNATURE_VERSION
from ._bundle_format import Bundle, signature_model
from ._bundle_read import read_bundle
from ._writes import NewScan

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

__all__ = ["import_bundle", "open_bundle"]

logger = logging.getLogger(__name__)


def _model_check(b: Bundle, path: Any, resign: bool) -> bool:
    """True when the entries must be re-signed from their surfaces; raises when they cannot."""
    if b.model_matches:
        return False
    theirs = b.manifest.get("signature_model") or {}
    theirs = theirs if isinstance(theirs, dict) else {}
    if not resign:
        raise BundleModelError(
            f"{path}: signatures were made with signature model {str(theirs.get('id'))[:80]!r} "
            f"(sha256 {str(theirs.get('sha256'))[:12]}...), this database uses {SIGNATURE_VERSION!r} "
            f"(sha256 {signature_model()['sha256'][:12]}...); they cannot be searched together. "
            + ("Import with resign=True (`--resign`) to recompute them from the bundle's surfaces."
               if (b.manifest.get("parameters") or {}).get("include_surfaces") else
               "Ask the exporting lab for a bundle with surfaces (--with-surfaces) to re-sign it."))
    if not all("breech_face" in e.get("surfaces", {}) for e in b.entries):
        raise BundleModelError(f"{path}: the bundle's signature model differs and it carries no surfaces to "
                               "re-sign; ask the exporting lab for a bundle exported --with-surfaces.")
    return True


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
        Recompute signatures and blobs from the bundle's surfaces if its signature model
        differs from this database's (needs a bundle exported with surfaces).
    trust_unsigned : bool, default False
        Import a *signed* bundle without checking its signature (no ``public_key``).
        An unsigned bundle imports without a key, with a warning.

    Returns
    -------
    dict
        ``lab``, ``imported`` (new scan ids), ``already_present``, ``resigned``,
        ``signed_by``, ``warnings``.

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
    prepared = _prepare(b, path, resigned)
    return _write_entries(db, b, prepared, str(path), resigned) | {"warnings": warnings}


def _ns(lab: str, v: str | None) -> str | None:
    return None if v is None else f"{lab}/{v}"


def _write_entries(db: CaseDatabase, b: Bundle, prepared: list[tuple[dict[str, Any], dict[str, Any],
                                                                  dict[str, Any], dict[str, bytes]]],
                   source: str, resigned: bool) -> dict[str, Any]:
    """Commit validated entries through the database's write API, in one transaction."""
    new, present = [], []
    with db.write() as w:
        for e, surfaces, sigs, blobs in prepared:
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
            w.add(NewScan(
                scan_id=sid, sha256=e["sha256"], surfaces=surfaces, signatures=sigs, blobs=blobs,
                row={"case_id": _ns(lab, e.get("case_id")), "exhibit_id": _ns(lab, e.get("exhibit_id")),
                     "firearm_id": _ns(lab, e.get("firearm_id")), "preprocess": True,
                     "source": f"bundle:{Path(source).name}", "source_sha256": b.sha256, "shape": e.get("shape"),
                     "spacing": e.get("spacing_m"),
                     "metadata": {"instrument": e.get("instrument"), "pixel_size_m": e.get("pixel_size_m")},
                     "provenance": {"bundle": b.sha256, "lab": b.lab, "exported": b.manifest.get("created"),
                                    "engine_version": b.manifest.get("engine_version")},
                     "origin_lab": lab, "origin_scan_id": oid},
                action="import",
                audit={"lab": lab, "bundle_sha256": b.sha256, "sha256": e["sha256"], "resigned": resigned,
                       "surfaces": sorted(surfaces)}))
            new.append(sid)
        if new:
            w.audit("import_bundle", None, {
                "bundle": source, "bundle_sha256": b.sha256, "lab": b.lab, "imported": len(new),
                "already_present": len(present), "signed_by": b.signed_by, "resigned": resigned,
                "signature_model": b.manifest.get("signature_model"),
                "engine_version": b.manifest.get("engine_version")})
    logger.info("%s: imported %d entries from %s (%d already present)", db.path, len(new), source, len(present))
    return {"lab": b.lab, "imported": new, "already_present": present, "resigned": resigned,
            "signed_by": b.signed_by}


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
