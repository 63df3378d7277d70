"""Checking a case database: catalogue, stored files, blobs, audit chain and index agree.

One pass over each catalogue table (sets and dicts, no per-scan queries), so the
cost is linear in the number of scans; ``deep`` also re-reads every stored file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .._io import sha256_file
from ..errors import BallisticsError
from ..retrieval import SIFT_BLOB, Keypoints, VerificationError, _stage2, signature_dim
from ._audit import check_audit_chain
from ._entry import PARTS
from ._store import sha256_bytes

__all__ = ["verify_database"]

logger = logging.getLogger(__name__)


def verify_database(root: Path, catalogue: Any, index: Any, deep: bool = False) -> dict[str, Any]:
    """Check that catalogue, files, blobs, audit log and index agree (see :meth:`CaseDatabase.verify`)."""
    from ..reading import read_scan

    problems: list[str] = []
    with catalogue.read():
        rows = catalogue.list_scans()
        all_files = catalogue.all_files()
        sig_pairs = catalogue.signature_index()
        blob_rows = catalogue.blob_index(with_data=deep)
        audit_rows = catalogue.audit_rows()
        head = catalogue.get_meta("audit_head")
        cat_ids = {p: catalogue.live_signature_ids(p) for p in PARTS}
        bad_sigs = _damaged_signatures(catalogue)
    live = {r["num"]: r["scan_id"] for r in rows}
    imported = {r["num"] for r in rows if r.get("origin_lab")}  # a partner's entry: surfaces optional
    files: dict[int, dict[str, tuple[str, str]]] = {}
    for num, role, sha, rel in all_files:
        files.setdefault(num, {})[role] = (sha, rel)
    sigs: dict[int, set[str]] = {}
    for num, part in sig_pairs:
        sigs.setdefault(num, set()).add(part)
    blobs: dict[int, set[str]] = {}
    for b in blob_rows:
        blobs.setdefault(b[0], set()).add(b[1])
        if b[0] in live and b[1] == SIFT_BLOB and deep:
            try:
                Keypoints.from_bytes(bytes(b[3]))
            except VerificationError as exc:
                problems.append(f"{live[b[0]]}: stored stage-2 key points are damaged ({exc})")
        if deep and b[0] in live and sha256_bytes(bytes(b[3])) != b[2]:
            problems.append(f"{live[b[0]]}: stored blob {b[1]!r} was altered")
    for num, scan_id in live.items():
        f = files.get(num, {})
        if num not in imported and ("breech_face" not in f or "original" not in f):
            problems.append(f"{scan_id}: missing stored surfaces (has {sorted(f)})")
        for role, (sha, rel) in f.items():
            p = root / rel
            if not p.is_file():
                problems.append(f"{scan_id}: stored {role} file {rel} is missing")
            elif deep:
                try:
                    got = sha256_file(p) if role == "evidence" else read_scan(p).checksum
                except (BallisticsError, OSError) as exc:
                    problems.append(f"{scan_id}: stored {role} file unreadable ({exc})")
                    continue
                if got != sha:
                    problems.append(f"{scan_id}: stored {role} file {rel} was altered")
        if "breech_face" not in sigs.get(num, set()):
            problems.append(f"{scan_id}: no breech-face signature")
    for num, part in bad_sigs:
        if num in live:
            problems.append(f"{live[num]}: stored {part} signature is damaged (not finite or wrong length)")
    want_blobs = set(_stage2.ingest_blobs())
    missing_blobs = sum(len(want_blobs - blobs.get(n, set())) for n in live) if want_blobs else 0
    audit_problems = check_audit_chain(audit_rows, head)
    problems += audit_problems
    lag: dict[str, dict[str, int]] = {}
    for part in PARTS:
        disk = index.load(part) if index.index_path(part).exists() else None
        want = cat_ids[part]
        if disk is None:
            if len(want):
                lag[part] = {"index_ids": 0, "catalogue_ids": int(len(want)), "missing": int(len(want)),
                             "extra": 0}
            continue
        have = disk.ids()
        if not np.array_equal(np.sort(have), np.sort(want)):
            lag[part] = {"index_ids": int(len(have)), "catalogue_ids": int(len(want)),
                         "missing": int(len(np.setdiff1d(want, have))),
                         "extra": int(len(np.setdiff1d(have, want)))}
    referenced = {rel for f in files.values() for _, rel in f.values()}
    scans_dir = root / "scans"
    on_disk = ({p.relative_to(root).as_posix() for p in scans_dir.rglob("*")
                if p.is_file() and not p.name.startswith(".")} if scans_dir.is_dir() else set())
    orphans = sorted(on_disk - referenced)
    return {"ok": not problems, "problems": problems, "audit_ok": not audit_problems,
            "audit_entries": len(audit_rows), "index_lag": lag, "index_in_sync": not lag,
            "orphan_files": orphans, "blobs": len(blob_rows), "missing_blobs": int(missing_blobs),
            "scans": len(rows)}

def _damaged_signatures(catalogue: Any) -> list[tuple[int, str]]:
    """``(num, part)`` of every stored signature that is not finite or not of the model's length."""
    out = []
    for num, part, vec in catalogue.con.execute("SELECT num, part, vector FROM signatures"):
        v = np.frombuffer(vec, np.float32) if len(vec) % 4 == 0 else np.array([np.nan], np.float32)
        if v.size != signature_dim() or not np.isfinite(v).all():
            out.append((int(num), str(part)))
    return out
