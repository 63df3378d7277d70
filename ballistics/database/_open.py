"""Opening (or creating) the catalogue of a case database without ever hiding a loss.

A directory is a case database when it holds ``catalogue.sqlite``.  A new database is
created only in a missing or empty directory; an ``init`` killed before its first
commit (a catalogue without parameters, nothing stored yet) is finished.  A catalogue
that is empty (0 bytes), unreadable or missing while the directory holds stored
surfaces, an index or an audit journal is a :class:`~ballistics.errors.DatabaseError`
naming the problem: it is never silently re-initialised (that would hide the loss of
every entry); :func:`ballistics.database.recover` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DatabaseError
from ..retrieval import SIGNATURE_PARAMS
from ._audit import JOURNAL_NAME
from ._catalogue import Catalogue
from ._models import MODEL_PARAM

__all__ = ["open_catalogue", "stored_data"]

CATALOGUE = "catalogue.sqlite"
_HARMLESS = {".", "write.lock", "scans", "index"}


def stored_data(path: Path) -> list[str]:
    """What the directory holds besides the catalogue: stored files, index files, the journal."""
    found = []
    scans = path / "scans"
    if scans.is_dir() and any(p.is_file() for p in scans.rglob("*")):
        found.append("stored surfaces")
    idx = path / "index"
    if idx.is_dir() and any(idx.iterdir()):
        found.append("index files")
    j = path / JOURNAL_NAME
    if j.is_file() and j.stat().st_size > 0:
        found.append("an audit journal")
    return found


def _lost(path: Path, what: str) -> DatabaseError:
    held = stored_data(path)
    return DatabaseError(f"{path}: the catalogue {what}, but the directory holds {', '.join(held)}: the database's "
                         "record is damaged, not new. Nothing was changed. Run `ballistics db recover "
                         f"{path}` to rebuild the catalogue from the stored surfaces and the audit journal.")


def open_catalogue(path: Path, lock: Any, *, create: bool, readonly: bool, index_kind: str,
                   model: dict[str, str] | None = None) -> Catalogue:
    """The database's catalogue, created when the directory is new (see the module docstring).

    A new catalogue records ``model`` (a signature model's record) in its parameters and
    in its ``init`` audit entry.

    Raises
    ------
    DatabaseError
        Not a database (``create`` false or read-only), a non-empty foreign directory,
        or a lost catalogue (empty, unreadable or missing beside stored data).
    """
    cat = path / CATALOGUE
    if not cat.exists():
        if stored_data(path):
            raise _lost(path, "is missing")
        if not create or readonly:
            raise DatabaseError(f"{path}: not a case database (no {CATALOGUE}); create it with "
                                "`ballistics db init PATH`.")
        if path.exists() and not path.is_dir():
            raise DatabaseError(f"{path}: exists and is not a directory.")
        if path.exists() and any(p.name not in _HARMLESS for p in path.iterdir()):
            raise DatabaseError(f"{path}: directory is not empty and holds no case database; "
                                "choose an empty or new directory.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot create the database directory ({exc}).") from exc
    elif cat.stat().st_size == 0 and stored_data(path):
        raise _lost(path, f"{cat.name} is empty (0 bytes)")
    if not readonly:
        for d in ("scans", "index"):
            try:
                (path / d).mkdir(exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"{path / d}: cannot create ({exc}).") from exc
    catalogue: Catalogue | None = None
    if readonly or cat.exists():
        try:
            catalogue = Catalogue(cat, readonly=readonly)
            if catalogue.get_parameter("signature") is None:
                if stored_data(path) or readonly:
                    catalogue.close()
                    raise _lost(path, "records no database parameters") if stored_data(path) else DatabaseError(
                        f"{path}: the catalogue was never completed (an interrupted `db init`); open it "
                        "without readonly=True to finish creating it.")
                catalogue.close()
                catalogue = None
        except DatabaseError as exc:
            if readonly or stored_data(path):
                if "db recover" in str(exc) or readonly:
                    raise
                raise _lost(path, f"cannot be read ({exc})") from exc
            catalogue = None  # an init killed before its first commit: finish creating it below
    if catalogue is None:
        with lock.hold():
            catalogue = Catalogue(cat, create=True)
            if catalogue.get_parameter("signature") is None:
                with catalogue.transaction():
                    catalogue.set_parameter("signature", SIGNATURE_PARAMS)
                    catalogue.set_parameter("index_kind", index_kind)
                    init: dict[str, Any] = {"signature": SIGNATURE_PARAMS, "index_kind": index_kind, "path": str(path)}
                    if model is not None:
                        catalogue.set_parameter(MODEL_PARAM, model)
                        init["signature_model"] = model
                    catalogue.audit("init", None, init)
    return catalogue

