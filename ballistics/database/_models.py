"""The signature model of a case database: recorded, searched with, and migrated.

The catalogue parameter :data:`MODEL_PARAM` records the model (name, version,
SHA-256 of its parameters and frozen data; :mod:`ballistics.retrieval._models`); a
database that records none uses :data:`~ballistics.retrieval._models.LEGACY_MODEL`.
:func:`resign` moves a database to another model from its stored breech faces, in
batches: each batch's per-entry data and the progress marker :data:`PROGRESS_PARAM`
are committed in one transaction, so a migration that is killed resumes after the last
committed batch.  The model changes (and search uses it) only when every live entry
has been re-signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DatabaseError
from ..retrieval import SIFT_BLOB, Keypoints, VerificationError
from ..retrieval._models import DEFAULT_MODEL, LEGACY_MODEL, SignatureModel, get_model, model_blobs
from ._local_stage1 import MAIN_FILE, LocalStage1

if TYPE_CHECKING:  # pragma: no cover
    from ._database import CaseDatabase

__all__ = ["MODEL_PARAM", "PROGRESS_PARAM", "recorded_model", "record_model", "resign", "local_stage1"]

logger = logging.getLogger(__name__)

MODEL_PARAM = "signature_model"
PROGRESS_PARAM = "signature_model_migration"


def recorded_model(catalogue: Any) -> SignatureModel:
    """The model a database records (the legacy model when it records none)."""
    rec = catalogue.get_parameter(MODEL_PARAM)
    if not rec:
        return get_model(LEGACY_MODEL)
    m = get_model(str(rec.get("name")))
    if rec != m.record():
        raise DatabaseError(f"the database's signature model {rec.get('name')!r} is version "
                            f"{rec.get('version')!r} (sha256 {str(rec.get('sha256'))[:12]}...), this library has "
                            f"{m.version!r}; migrate it with `ballistics db migrate DB --model {m.name}`.")
    return m


def record_model(db: CaseDatabase, model: str | SignatureModel | None) -> None:
    """Record ``model`` in a new (empty) database; an existing one keeps its model.

    With ``model=None`` a new database records :data:`~ballistics.retrieval._models.DEFAULT_MODEL`;
    a database that holds scans but records no model keeps the legacy one.
    """
    cat = db.catalogue
    if db.readonly:
        return
    if model is None:
        if cat.get_parameter(MODEL_PARAM) or cat.counts()["scans"]:
            return
        model = DEFAULT_MODEL
    m = get_model(model)
    if cat.get_parameter(MODEL_PARAM):
        if recorded_model(cat).name != m.name:
            raise DatabaseError(f"{db.path}: the database uses signature model {recorded_model(cat).name!r}; "
                                f"move it with `ballistics db migrate {db.path} --model {m.name}`.")
        return
    if cat.counts()["scans"] and m.name != LEGACY_MODEL:
        raise DatabaseError(f"{db.path}: the database holds scans signed with {LEGACY_MODEL!r}; move it with "
                            f"`ballistics db migrate {db.path} --model {m.name}`.")
    with db.lock.hold(), cat.transaction():
        cat.set_parameter(MODEL_PARAM, m.record())
        db.audit.append("signature_model", None, m.record())


def entry_blobs(db: CaseDatabase, sift_blob: bytes | None) -> dict[str, bytes]:
    """The database model's per-entry blobs of a new entry (from its stage-2 key points)."""
    return model_blobs(recorded_model(db.catalogue), sift_blob)


def resign(db: CaseDatabase, model: str | SignatureModel, batch: int = 64,
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Move the database to ``model``: every live entry's stage-1 data, from its stored breech face.

    The local model's blob is made from the stage-2 key points stored at ingest (computed
    from the same surface), or from the stored surface when they are missing or damaged;
    a global signature of another version is recomputed from the stored surface.

    Parameters
    ----------
    model : str or SignatureModel
        Target model (``"global-640"``, ``"local-sift"``).
    batch : int
        Entries per committed batch.
    progress : callable, optional
        ``(entries done, entries in all)`` after each committed batch.

    Returns
    -------
    dict
        ``model`` (the record), ``resigned`` (entries this call), ``resumed`` (entries
        committed by an earlier, interrupted call), ``total``.
    """
    from ..retrieval import keypoints, signature
    db._need_writable()
    target = get_model(model)
    rec = target.record()
    cat = db.catalogue
    state = cat.get_parameter(PROGRESS_PARAM)
    if state is None and cat.get_parameter(MODEL_PARAM) == rec:
        return {"model": rec, "resigned": 0, "resumed": 0, "total": int(cat.counts()["scans"])}
    if state is None or state.get("target") != rec:
        state = {"target": rec, "done": 0, "count": 0}
        with db.lock.hold(), cat.transaction():
            cat.set_parameter(PROGRESS_PARAM, state)
            db.audit.append("migrate_start", None, {"model": rec})
    live = sorted(cat.list_scans(), key=lambda r: int(r["num"]))
    resumed = int(state["count"])
    todo = [r for r in live if int(r["num"]) > int(state["done"])]
    done = resumed
    for s in range(0, len(todo), max(1, int(batch))):
        chunk = todo[s:s + max(1, int(batch))]
        out = []
        for r in chunk:  # computed outside the lock
            num = int(r["num"])
            blobs: dict[str, bytes] = {}
            try:  # the stage-2 key points stored at ingest (made from this surface), unless damaged
                kp = Keypoints.from_bytes(cat.get_blob(num, SIFT_BLOB) or b"")
            except VerificationError:
                kp = keypoints(db.load_scan(r["scan_id"], "breech_face"))
                blobs[SIFT_BLOB] = kp.to_bytes()
            blobs.update(model_blobs(target, kp))
            sig = None
            if target.kind == "global" and _sig_version(cat, num) != target.version:
                sig = signature(db.load_scan(r["scan_id"], "breech_face"))
            out.append((num, blobs, sig))
        with db.lock.hold(), cat.transaction():
            for num, blobs, sig in out:
                for name, data in blobs.items():
                    cat.put_blob(num, name, data)
                if sig is not None:
                    cat.con.execute("UPDATE signatures SET vector=?, dim=?, version=? WHERE num=? AND "
                                    "part='breech_face'", (np.ascontiguousarray(sig, np.float32).tobytes(),
                                                           int(sig.size), target.version, num))
            done += len(out)
            state = {"target": rec, "done": out[-1][0], "count": done}
            cat.set_parameter(PROGRESS_PARAM, state)
            cat.bump_generation()
        if progress is not None:
            progress(done, resumed + len(todo))
    with db.lock.hold(), cat.transaction():
        cat.set_parameter(MODEL_PARAM, rec)
        cat.con.execute("DELETE FROM parameters WHERE name=?", (PROGRESS_PARAM,))
        db.audit.append("migrate", None, {"model": rec, "entries": done})
        cat.bump_generation()
    db.audit.sync_journal()
    if target.kind == "global":
        db.rebuild_index()
    db.__dict__.pop("_local_stage1", None)
    if not db.readonly:  # the saved inverted file is rebuilt from the re-signed entries
        (db.path / "index" / MAIN_FILE).unlink(missing_ok=True)
    return {"model": rec, "resigned": done - resumed, "resumed": resumed, "total": done}


def _sig_version(cat: Any, num: int) -> str | None:
    r = cat.con.execute("SELECT version FROM signatures WHERE num=? AND part='breech_face'", (num,)).fetchone()
    return None if r is None else str(r[0])


def local_stage1(db: CaseDatabase) -> Callable[[Any, int], tuple[np.ndarray, np.ndarray]] | None:
    """Stage 1 of a ``local-sift`` database: ``(query key points, depth) -> (scores, nums)``; None otherwise.

    The inverted file is built from the stored :data:`LOCAL_BLOB` s the first time and
    then kept in step with the catalogue without rebuilding it for every new entry
    (:class:`._local_stage1.LocalStage1`).
    """
    cat = db.catalogue
    if cat.get_parameter(PROGRESS_PARAM) is not None or recorded_model(cat).kind != "local":
        return None
    state = db.__dict__.get("_local_stage1")
    if state is None:
        db.__dict__["_local_stage1"] = state = LocalStage1(db.path / "index" / MAIN_FILE, not db.readonly)
    return state.sync(cat).search
