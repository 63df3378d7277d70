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
from ._catalogue import check_audit_chain
from ._entry import PARTS
from ._store import sha256_bytes

logger = logging.getLogger("ballistics.index._database")


class VerifyMixin:
    """:meth:`verify` of :class:`~ballistics.index.CaseDatabase`."""

    path: Path
    catalogue: Any

    def _index_path(self, part: str) -> Path:  # provided by SyncMixin
        raise NotImplementedError

    def _load_index(self, part: str) -> Any:  # provided by SyncMixin
        raise NotImplementedError

    def verify(self, deep: bool = False) -> dict[str, Any]:
        """Check that catalogue, files, blobs, audit log and index agree.

        Parameters
        ----------
        deep : bool, default False
            Also re-read every stored file and blob and check its SHA-256: the
            evidence file's bytes, each x3p surface's height-array hash
            (:attr:`ballistics.Scan.checksum`).

        Returns
        -------
        dict
            ``ok`` (bool: no stored data is missing or altered and the audit chain is
            intact), ``problems`` (list of str), ``audit_ok`` and ``audit_entries``,
            ``index_in_sync`` / ``index_lag`` (whether the index *file* holds exactly
            the catalogue's signatures; a lag is not data loss: it is patched from the
            catalogue whenever the database is opened or searched), ``orphan_files``
            (stored files no catalogue row refers to, e.g. left by an interrupted add;
            harmless, reused if the same scan is added again), ``blobs`` (count) and
            ``missing_blobs`` (stage-2 blobs not computed yet for live scans; filled by
            :meth:`~ballistics.index.CaseDatabase.rebuild_blobs`), ``scans``.
        """
        from ..reading import read_scan
        from ._stage2 import ingest_blobs

        problems: list[str] = []
        with self.catalogue.read():
            rows = self.catalogue.list_scans()
            all_files = self.catalogue.all_files()
            sig_pairs = self.catalogue.signature_index()
            blob_rows = self.catalogue.blob_index(with_data=deep)
            audit_rows = self.catalogue.audit_rows()
            head = self.catalogue.get_meta("audit_head")
            cat_ids = {p: self.catalogue.live_signature_ids(p) for p in PARTS}
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
            if deep and b[0] in live and sha256_bytes(bytes(b[3])) != b[2]:
                problems.append(f"{live[b[0]]}: stored blob {b[1]!r} was altered")
        for num, scan_id in live.items():
            f = files.get(num, {})
            if num not in imported and ("breech_face" not in f or "original" not in f):
                problems.append(f"{scan_id}: missing stored surfaces (has {sorted(f)})")
            for role, (sha, rel) in f.items():
                p = self.path / rel
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
        want_blobs = set(ingest_blobs())
        missing_blobs = sum(len(want_blobs - blobs.get(n, set())) for n in live) if want_blobs else 0
        audit_problems = check_audit_chain(audit_rows, head)
        problems += audit_problems
        lag: dict[str, dict[str, int]] = {}
        for part in PARTS:
            disk = self._load_index(part) if self._index_path(part).exists() else None
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
        scans_dir = self.path / "scans"
        on_disk = ({p.relative_to(self.path).as_posix() for p in scans_dir.rglob("*")
                    if p.is_file() and not p.name.startswith(".")} if scans_dir.is_dir() else set())
        orphans = sorted(on_disk - referenced)
        return {"ok": not problems, "problems": problems, "audit_ok": not audit_problems,
                "audit_entries": len(audit_rows), "index_lag": lag, "index_in_sync": not lag,
                "orphan_files": orphans, "blobs": len(blob_rows), "missing_blobs": int(missing_blobs),
                "scans": len(rows)}
