"""The run manifest: which scans, which parameters, which tiling.

The manifest (``manifest.json``) is written first, atomically, before any comparison.
Its *digest* -- SHA-256 of the canonical JSON of everything that determines the results
(scan names and checksums in order, the pairs, the comparison parameters, the tiling and
the library version) -- is stored in every tile file, so a rerun into the same folder
resumes only when it would compute exactly the same thing, and a tile file can never be
mixed into another run's results.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, sha256_file
from .._json import canonical_hash, jsonable, loads_bounded
from .._version import __version__
from ..comparison import CompareParams
from ..errors import BallisticsError, ParameterError, ScanReadError
from ..scan import Scan

log = logging.getLogger(__name__)

__all__ = ["MANIFEST_NAME", "Manifest", "ScanRef", "resolve_scans", "scan_identity"]

MANIFEST_NAME = "manifest.json"
FORMAT = "ballistics-batch/1"
KINDS = ("all_pairs", "one_vs_many", "pairs")


@dataclass(frozen=True)
class ScanRef:
    """One input scan of a run.

    Attributes
    ----------
    index : int
        Position in the run's scan list (row/column of the pair matrix).
    name : str
        Human name: the file name without extension, or ``Scan.name``.
    sha256 : str
        SHA-256 of the file's bytes (``checksum_of == "file"``), or for in-memory scans
        (``"scan"``) of the array checksum, spacing and kind (:func:`scan_identity`).
    checksum_of : str
        ``"file"`` or ``"scan"``.
    path : str or None
        Absolute path the workers read (None for in-memory scans, which are sent).
    """

    index: int
    name: str
    sha256: str
    checksum_of: str
    path: str | None = None


def scan_identity(scan: Scan) -> str:
    """SHA-256 identifying an in-memory scan: its array checksum, spacing and kind.

    (The array alone is not enough: the same heights with another pixel spacing are
    another surface.)
    """
    text = f"{scan.checksum}|{float(scan.spacing[0])!r}|{float(scan.spacing[1])!r}|{scan.kind}"
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_scans(scans: Sequence[str | os.PathLike[str] | Scan],
                  what: str = "scans") -> tuple[list[ScanRef], dict[int, Scan]]:
    """Checksum the inputs and give each an index.

    Parameters
    ----------
    scans : sequence of path or Scan
        Files (read by the workers themselves) or in-memory scans (sent to them).
    what : str
        How the inputs are called in error messages.

    Returns
    -------
    refs : list of ScanRef
    objects : dict
        Index -> Scan for the in-memory inputs.

    Raises
    ------
    ParameterError
        Not a sequence, empty, wrong item types, a file listed twice.
    ScanReadError
        A file is missing or unreadable.
    """
    if isinstance(scans, (str, os.PathLike, Scan)) or not hasattr(scans, "__len__"):
        raise ParameterError(f"{what} must be a list of file paths or Scan objects, got {type(scans).__name__}.")
    refs: list[ScanRef] = []
    objects: dict[int, Scan] = {}
    seen: dict[str, int] = {}
    for i, s in enumerate(scans):
        if isinstance(s, Scan):
            refs.append(ScanRef(i, s.name, scan_identity(s), "scan", None))
            objects[i] = s
            continue
        if not isinstance(s, (str, os.PathLike)):
            raise ParameterError(f"{what}[{i}] must be a file path or a Scan, got {type(s).__name__}.")
        p = Path(s).expanduser().resolve()
        if not p.is_file():
            raise ScanReadError(f"{what}[{i}]: {str(s)!r} does not exist or is not a file.")
        key = str(p)
        if key in seen:
            raise ParameterError(f"{what}: {str(s)!r} is listed twice (positions {seen[key]} and {i}); "
                                 "list each file once.")
        seen[key] = i
        try:
            digest = sha256_file(p)
        except OSError as exc:
            raise ScanReadError(f"{what}[{i}]: cannot read {str(s)!r}: {exc}") from exc
        refs.append(ScanRef(i, p.stem, digest, "file", key))
    return refs, objects


@dataclass
class Manifest:
    """Everything that determines a batch run's results (see the module docstring).

    Attributes
    ----------
    kind : str
        ``"all_pairs"``, ``"one_vs_many"`` or ``"pairs"``.
    scans : list of ScanRef
    compare : dict
        ``{"method", "preset", "params"}``: the decision rule, the preset's name
        (``"custom"`` for other parameters) and ``CompareParams.to_dict()`` (see
        :meth:`compare_params`).
    tile_size : int
        Scans per block of the pair matrix; a tile is one block of rows x one block of
        columns.
    n_pairs, n_tiles : int
    pairs : list of [int, int] or None
        The explicit pairs of a ``"pairs"`` run (None: implied by ``kind``).
    keep_json : bool
        Whether each row keeps the full result as JSON (``result_json``).
    library_version : str
    created_utc : str
        When the folder's run was first started (not part of the digest).
    recorded_digest : str or None
        The digest as written in a loaded ``manifest.json``.
    """

    kind: str
    scans: list[ScanRef]
    compare: dict[str, Any]
    tile_size: int
    n_pairs: int
    n_tiles: int
    pairs: list[list[int]] | None = None
    keep_json: bool = True
    library_version: str = __version__
    created_utc: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    recorded_digest: str | None = field(default=None, compare=False)

    def compare_params(self) -> CompareParams:
        """The run's comparison parameters, rebuilt with :meth:`CompareParams.from_dict`.

        Raises
        ------
        ParameterError
            The recorded parameters are not valid for this version of the engine.
        """
        return CompareParams.from_dict(self.compare["params"])

    @property
    def run_digest(self) -> str:
        """The digest written in ``manifest.json`` (what the tile files carry), else :attr:`digest`."""
        return self.recorded_digest or self.digest

    def identity(self) -> dict[str, Any]:
        """The part of the manifest that determines the results (paths and dates excluded)."""
        return {
            "format": FORMAT, "kind": self.kind,
            "scans": [[r.name, r.sha256, r.checksum_of] for r in self.scans],
            "pairs_sha256": None if self.pairs is None else canonical_hash(self.pairs),
            "compare": jsonable(self.compare), "tile_size": self.tile_size,
            "keep_json": self.keep_json, "library_version": self.library_version,
        }

    @property
    def digest(self) -> str:
        """SHA-256 of :meth:`identity` (canonical JSON)."""
        return canonical_hash(self.identity())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the content of ``manifest.json``)."""
        return {
            "format": FORMAT, "digest": self.digest, "kind": self.kind,
            "library_version": self.library_version, "created_utc": self.created_utc,
            "compare": jsonable(self.compare),
            "tiling": {"tile_size": self.tile_size, "n_tiles": self.n_tiles, "n_pairs": self.n_pairs,
                       "file_pattern": "tile-<row block>-<column block>.parquet"},
            "keep_json": self.keep_json,
            "scans": [asdict(r) for r in self.scans],
            "pairs": self.pairs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Rebuild from :meth:`to_dict` output."""
        if d.get("format") != FORMAT:
            raise ParameterError(f"Not a batch manifest of this version (format {d.get('format')!r}, "
                                 f"expected {FORMAT!r}).")
        t = d["tiling"]
        return cls(kind=d["kind"], scans=[ScanRef(**r) for r in d["scans"]], compare=d["compare"],
                   tile_size=int(t["tile_size"]), n_pairs=int(t["n_pairs"]), n_tiles=int(t["n_tiles"]),
                   pairs=d.get("pairs"), keep_json=bool(d.get("keep_json", True)),
                   library_version=d["library_version"], created_utc=d["created_utc"],
                   recorded_digest=d.get("digest"))

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` atomically into ``folder``."""
        return atomic_write_bytes(folder / MANIFEST_NAME, json.dumps(self.to_dict(), indent=1).encode())

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Manifest:
        """Read ``folder/manifest.json``.

        Raises
        ------
        ParameterError
            No manifest, or not readable as one.
        """
        p = Path(folder) / MANIFEST_NAME
        try:
            d = loads_bounded(p.read_bytes(), what=str(p))
            m = cls.from_dict(d)
            m.compare_params()
            return m
        except FileNotFoundError as exc:
            raise ParameterError(f"{str(folder)!r} holds no batch run (no {MANIFEST_NAME}).") from exc
        except (OSError, ValueError, KeyError, TypeError, AttributeError, BallisticsError) as exc:
            raise ParameterError(f"{p} is not a readable batch manifest ({exc}).") from exc

    def explain_difference(self, other: Manifest) -> str:
        """What differs between two manifests' identities, in words."""
        a, b = self.identity(), other.identity()
        diffs = [k for k in a if a[k] != b.get(k)]
        words = {"scans": "the scans (names or checksums, or their order)", "compare": "the comparison parameters",
                 "tile_size": "the tile size", "kind": "the kind of run", "pairs_sha256": "the list of pairs",
                 "library_version": "the library version", "format": "the file format",
                 "keep_json": "keep_json (whether results keep their full JSON)"}
        return ", ".join(words.get(k, k) for k in diffs) or "how the run was recorded (another version of the engine)"
