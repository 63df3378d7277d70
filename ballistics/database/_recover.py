"""Rebuilding a lost catalogue from the stored surfaces, evidence files and audit journal.

The damaged catalogue is moved aside (never deleted), a new one is created, the audit
journal (``audit.jsonl``) is copied back into it verbatim (so its hash chain still
verifies), and every scan the journal records as added or imported and not removed is
restored from its stored files: the surfaces are re-read and checked against their
hashes, and the signatures and stage-2 blobs recomputed from them.  What cannot be
restored (a file missing or altered, an imported entry without surfaces) is reported.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from .._json import canonical_json
from ..errors import BallisticsError, DatabaseError
from ..retrieval import SIFT_BLOB, signature
from ..retrieval._models import model_blobs
from ._audit import JOURNAL_NAME, read_journal
from ._catalogue import Catalogue
from ._entry import PARTS, compute_blobs
from ._lock import WriterLock
from ._models import MODEL_PARAM
from ._open import CATALOGUE
from ._store import EvidenceStore
from ._writes import NewScan, WriteBatch

__all__ = ["recover"]


def _live_scans(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Scan id -> parameters of its last add/import, for scans not removed afterwards."""
    live: dict[str, dict[str, Any]] = {}
    for e in entries:
        try:
            params = Catalogue.parse_json(e.get("parameters") or "{}")
        except DatabaseError:
            continue
        if e.get("action") in ("add", "import") and e.get("scan_id"):
            live[str(e["scan_id"])] = params
        elif e.get("action") == "remove":
            live.pop(str(e.get("scan_id")), None)
    return live


def _journal_model(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The signature model the journal last recorded (created with, chosen, or migrated to); None if none."""
    model = None
    for e in entries:
        action = e.get("action")
        if action not in ("init", "signature_model", "migrate"):
            continue
        p = Catalogue.parse_json(e["parameters"]) if isinstance(e.get("parameters"), str) else e.get("parameters")
        p = p if isinstance(p, dict) else {}
        rec = p.get("model") if action == "migrate" else p.get("signature_model") if action == "init" else p
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            model = rec
    return model


def _restore_one(store: EvidenceStore, sid: str, params: dict[str, Any], model: str | None = None) -> NewScan:
    files = params.get("files") or {}
    shas = params.get("file_sha256") or {}
    if "breech_face" not in files:
        raise DatabaseError("the journal records no stored breech face")
    surfaces = {}
    for role in ("original", *PARTS):
        if role in files:
            sha = shas.get(role) or Path(files[role]).name.split(".")[0]
            surfaces[role] = store.read_surface(files[role], sha, f"{role} surface of {sid!r}")
    sigs = {}
    for part in PARTS:
        if part in surfaces:
            try:
                sigs[part] = signature(surfaces[part])
            except BallisticsError:
                if part == "breech_face":
                    raise
    evidence = None
    if "evidence" in files:
        evidence = (store.read_evidence(files["evidence"], shas.get("evidence") or Path(files["evidence"]).name
                                        .split(".")[0], f"evidence file of {sid!r}"), files["evidence"])
    row = dict(params.get("catalogue_row") or {})
    s = surfaces.get("original", surfaces["breech_face"])
    row.update(shape=list(s.shape), spacing=list(s.spacing), metadata=s.metadata, provenance=s.provenance.to_dict())
    for k in ("case_id", "exhibit_id", "firearm_id"):
        row.setdefault(k, params.get(k))
    blobs = compute_blobs(surfaces["breech_face"])
    if model is not None:
        blobs.update(model_blobs(model, blobs.get(SIFT_BLOB)))
    return NewScan(scan_id=sid, sha256=params.get("sha256") or s.checksum, surfaces=surfaces, signatures=sigs,
                   blobs=blobs, row=row, evidence=None, action="recover",
                   audit={"restored_from": "stored surfaces and audit journal"}) if evidence is None else \
        NewScan(scan_id=sid, sha256=params.get("sha256") or s.checksum, surfaces=surfaces, signatures=sigs,
                blobs=blobs, row=row, evidence=(evidence[0], evidence[1]),
                action="recover", audit={"restored_from": "stored surfaces and audit journal"})


def recover(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rebuild the catalogue of a database whose catalogue is lost, empty or unreadable.

    Parameters
    ----------
    path : path-like
        The database directory.

    Returns
    -------
    dict
        ``restored`` (scan ids), ``not_restored`` (``{scan id: reason}``),
        ``unreferenced_files`` (stored files no restored scan names), ``journal_problems``,
        ``moved_aside`` (where the damaged catalogue went), ``audit_entries`` copied back.

    Raises
    ------
    DatabaseError
        No audit journal to recover from, or the directory is not writable.
    """
    root = Path(path)
    journal = root / JOURNAL_NAME
    entries, problems = read_journal(journal)
    if not entries:
        raise DatabaseError(f"{root}: no readable audit journal ({JOURNAL_NAME}); the catalogue cannot be "
                            "rebuilt. Restore it from a backup.")
    lock = WriterLock(root)
    with lock.hold():
        cat_path = root / CATALOGUE
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        moved = []
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(cat_path) + suffix)
            if src.exists():
                dst = root / f"{CATALOGUE}{suffix}.damaged-{stamp}"
                os.replace(src, dst)
                moved.append(dst.name)
        cat = Catalogue(cat_path, create=True)
        try:
            with cat.transaction():
                for e in entries:
                    cat.con.execute("INSERT INTO audit(id, time, action, scan_id, parameters, library_version, "
                                    "prev_hash, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                                    tuple(e.get(c) for c in ("id", "time", "action", "scan_id", "parameters",
                                                             "library_version", "prev_hash", "hash")))
                last = entries[-1]
                cat.set_meta("audit_head", f"{last['id']}:{last['hash']}")
                init = next((e for e in entries if e.get("action") == "init"), None)
                params = Catalogue.parse_json(init["parameters"]) if init else {}
                from ..retrieval import SIGNATURE_PARAMS
                cat.set_parameter("signature", params.get("signature", SIGNATURE_PARAMS))
                cat.set_parameter("index_kind", params.get("index_kind", "auto"))
                model = _journal_model(entries)
                if model is not None:
                    cat.set_parameter(MODEL_PARAM, model)
            store = EvidenceStore(root)
            batch = WriteBatch(cat, store, root)
            restored, failed = [], {}
            for sid, p in _live_scans(entries).items():
                try:
                    batch.add(_restore_one(store, sid, p, None if model is None else str(model["name"])))
                    restored.append(sid)
                except BallisticsError as exc:
                    failed[sid] = str(exc)
            batch.audit("recover", None, {"restored": len(restored), "not_restored": failed,
                                          "moved_aside": moved, "journal_problems": problems})
            batch.commit(lambda gen, add: None)
            referenced = {r[3] for r in cat.all_files()}
        finally:
            cat.close()
    for f in (root / "index").glob("*"):
        f.unlink()  # rebuilt from the new catalogue on the next open
    unref = sorted(store.files() - referenced)
    return {"restored": restored, "not_restored": failed, "unreferenced_files": unref,
            "journal_problems": problems, "moved_aside": moved, "audit_entries": len(entries),
            "summary": canonical_json({"restored": len(restored), "not_restored": len(failed)})}
