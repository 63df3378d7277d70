"""Stage-2 blobs computed after the fact for stored scans that lack them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..retrieval import _stage2
from ._entry import compute_blobs

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

__all__ = ["rebuild_blobs"]


def rebuild_blobs(db: CaseDatabase, force: bool = False) -> dict[str, int]:
    """Compute the stage-2 blobs that live scans lack, from their stored breech faces.

    Returns
    -------
    dict
        ``{"scans": scans touched, "blobs": blobs written}``.
    """
    names = set(_stage2.ingest_blobs())
    have: dict[int, set[str]] = {}
    for num, name, _ in db.catalogue.blob_index():
        have.setdefault(num, set()).add(name)
    todo = [r for r in db.catalogue.list_scans() if force or names - have.get(r["num"], set())]
    written = 0
    for r in todo:  # computed outside the lock, committed one scan at a time
        blobs = compute_blobs(db.load_scan(r["scan_id"], "breech_face"))
        with db.lock.hold():
            row = db.catalogue.scan_by_id(r["scan_id"])
            if row is None or row["num"] != r["num"]:
                continue  # removed meanwhile
            with db.catalogue.transaction():
                for name, data in blobs.items():
                    if force or name not in have.get(r["num"], set()):
                        db.catalogue.put_blob(r["num"], name, data)
                        written += 1
                db.audit.append("rebuild_blobs", r["scan_id"], {"names": sorted(blobs)})
            db.audit.sync_journal()
    return {"scans": len(todo), "blobs": written}
