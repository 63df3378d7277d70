"""Writing an exchange bundle (see :mod:`._bundle_format` for its members)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_write_bytes, check_output
from .._json import jsonable
from .._version import __version__
from ..errors import DatabaseError
from ..retrieval import SIGNATURE_PARAMS, signature_dim
from ._bundle_format import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_SHA,
    SIGNATURE,
    _fingerprint,
    _load_private,
    check_lab,
    global_signature_model,
)
from ._catalogue import now
from ._entry import PARTS
from ._models import recorded_model

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

__all__ = ["export_bundle"]

logger = logging.getLogger(__name__)


def export_bundle(db: CaseDatabase, path: str | os.PathLike[str], scan_ids: list[str] | None = None, *,
                  include_surfaces: bool = False, lab: str, sign_key: Any = None,
                  force: bool = False) -> dict[str, Any]:
    """Write an exchange bundle of ``scan_ids`` for a partner lab (one zip file, written atomically).

    Parameters
    ----------
    db : CaseDatabase
        The database exported from.
    path : path-like
        The bundle to write; refused if it lies inside a database or exists (unless ``force``).
    scan_ids : list of str, optional
        Scans to export (default: every live scan of this lab; entries imported from
        other labs are theirs to share and are left out).
    include_surfaces : bool, default False
        Also ship the extracted surfaces as x3p; the evidence file is never exported.
    lab : str
        Name of the exporting lab; the partner files the entries under it.
    sign_key : path, bytes or Ed25519PrivateKey, optional
        Sign the manifest (detached Ed25519 signature).
    force : bool, default False
        Replace an existing file at ``path``.

    Returns
    -------
    dict
        The manifest (without the member list) plus ``bytes`` and ``path``.  The
        manifest records the database's signature model (``signature_model``) and the
        model of the global signatures every bundle carries (``global_signature``).

    Raises
    ------
    OutputError
        ``path`` is inside a database, a directory, or exists without ``force``.
    DatabaseError
        An unknown scan id, a scan imported from another lab, or an altered surface.
    """
    from ..reading import read_scan

    lab = check_lab(lab)
    out_path = check_output(path, force=force, what="bundle")
    with db.catalogue.read():
        rows = db.catalogue.list_scans()
        if scan_ids is not None:
            want = list(dict.fromkeys(scan_ids))
            by_id = {r["scan_id"]: r for r in rows}
            missing = [s for s in want if s not in by_id]
            if missing:
                raise DatabaseError(f"{db.path}: no scan(s) {missing} to export.")
            rows = [by_id[s] for s in want]
            foreign = [r["scan_id"] for r in rows if r["origin_lab"] not in (None, lab)]
            if foreign:
                raise DatabaseError(f"{db.path}: {foreign[:5]} were imported from other labs; a bundle carries "
                                    f"only {lab!r}'s own scans. Nothing was exported.")
        else:
            rows = [r for r in rows if r["origin_lab"] in (None, lab)]
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
            "scan_id": r["origin_scan_id"] or r["scan_id"], "lab": lab,
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
    members["catalogue.json"] = json.dumps(jsonable(catalogue), indent=1, default=str).encode()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine_version": __version__,
        "signature_model": recorded_model(db.catalogue).record(), "global_signature": global_signature_model(),
        "signature_dim": signature_dim(),
        "parameters": {"include_surfaces": bool(include_surfaces), "signature": SIGNATURE_PARAMS,
                       "scan_ids": scan_ids},
        "lab": lab, "created": now(),
        "counts": {"entries": len(catalogue), "signatures": {p: len(mats[p]) for p in PARTS if mats[p]},
                   "blobs": sum(len(e["blobs"]) for e in catalogue),
                   "surfaces": sum(1 for m in members if m.startswith("surfaces/"))},
        "members": {m: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for m, d in sorted(members.items())},
    }
    man = json.dumps(jsonable(manifest), indent=1, sort_keys=True).encode()
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
    atomic_write_bytes(out_path, buf.getvalue())
    res = {k: v for k, v in manifest.items() if k != "members"}
    res["bytes"] = len(buf.getvalue())
    res["path"] = str(path)
    logger.info("%s: exported %d entries to %s (%d bytes)", db.path, len(catalogue), path, res["bytes"])
    if not db.readonly:
        with db.write() as w:
            w.audit("export_bundle", None, {k: res[k] for k in ("lab", "counts", "path", "bytes", "parameters",
                                                                  "signature_model")})
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
