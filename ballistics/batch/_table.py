"""Tile files: one Parquet file per tile, and gathering them back.

Every row is one pair: its indices and names, the inputs' SHA-256, flat columns for the
result (counts, score, registration, correlation, time), the full
:meth:`~ballistics.comparison.Comparison.to_dict` as JSON (``result_json``), the
parameters, the library version, the manifest digest, and ``error`` (None, or what went
wrong for that pair).  The file's key-value metadata repeats the manifest digest, the
tile, the parameters, the library version and the inputs' checksums.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from .._json import jsonable
from ..errors import BallisticsError, ParameterError
from ._files import TMP_SUFFIX
from ._manifest import MANIFEST_NAME, Manifest
from ._tiles import Tile

log = logging.getLogger(__name__)

__all__ = ["META_PREFIX", "SCHEMA_FIELDS", "read_results", "remove_partial_files", "tile_is_done", "write_tile"]

META_PREFIX = "ballistics."

#: Column name -> Arrow type name, in file order.
SCHEMA_FIELDS: list[tuple[str, str]] = [
    ("tile", "string"), ("i", "int32"), ("j", "int32"), ("a_name", "string"), ("b_name", "string"),
    ("a_sha256", "string"), ("b_sha256", "string"), ("method", "string"), ("preset", "string"),
    ("cmc_count", "int32"), ("score", "float64"), ("rotation_deg", "float64"),
    ("translation_dy_m", "float64"), ("translation_dx_m", "float64"), ("correlation", "float64"),
    ("cmc_a_to_b", "int32"), ("cmc_b_to_a", "int32"), ("count_original", "int32"), ("count_high", "int32"),
    ("count_convergence", "int32"), ("elapsed_s", "float64"), ("error", "string"), ("result_json", "string"),
    ("params_json", "string"), ("library_version", "string"), ("manifest_digest", "string"), ("worker", "string"),
]


def _schema():
    import pyarrow as pa
    return pa.schema([(n, getattr(pa, t)()) for n, t in SCHEMA_FIELDS])


def write_tile(folder: Path, tile: Tile, rows: list[dict[str, Any]], manifest: Manifest) -> Path:
    """Write one tile's rows atomically to ``folder/tile-RRRRR-CCCCC.parquet``.

    Raises
    ------
    BallisticsError
        If the rows do not match the tile's pairs (a bug; nothing is written).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    if sorted((r["i"], r["j"]) for r in rows) != sorted(tile.pairs):
        raise BallisticsError(f"tile {tile.id}: the worker returned other pairs than asked; nothing written.")
    by_index = {r.index: r for r in manifest.scans}
    cmp = jsonable(manifest.compare)
    params_json = json.dumps(cmp, sort_keys=True)
    full = []
    for r in rows:
        a, b = by_index[r["i"]], by_index[r["j"]]
        full.append({**{n: None for n, _ in SCHEMA_FIELDS}, **r, "a_name": a.name, "b_name": b.name,
                     "a_sha256": a.sha256, "b_sha256": b.sha256, "method": cmp["method"],
                     "preset": cmp["preset"], "params_json": params_json,
                     "library_version": manifest.library_version, "manifest_digest": manifest.digest})
    table = pa.Table.from_pylist(full, schema=_schema())
    inputs = [{"index": k, "name": by_index[k].name, "sha256": by_index[k].sha256,
               "checksum_of": by_index[k].checksum_of} for k in tile.scan_indices]
    meta = {"manifest_digest": manifest.digest, "tile": tile.id, "n_pairs": str(len(rows)),
            "library_version": manifest.library_version, "compare": params_json, "kind": manifest.kind,
            "inputs": json.dumps(inputs),
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    table = table.replace_schema_metadata({f"{META_PREFIX}{k}": v for k, v in meta.items()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return atomic_write_bytes(folder / tile.filename, sink.getvalue().to_pybytes())


def _file_meta(path: Path) -> tuple[dict[str, str], int]:
    import pyarrow.parquet as pq
    md = pq.read_metadata(path)
    kv = {k.decode(): v.decode() for k, v in (md.metadata or {}).items()}
    return {k[len(META_PREFIX):]: v for k, v in kv.items() if k.startswith(META_PREFIX)}, md.num_rows


def tile_is_done(folder: Path, tile: Tile, manifest: Manifest) -> bool:
    """True if the tile's file exists, belongs to this run and holds all its pairs."""
    path = folder / tile.filename
    if not path.exists():
        return False
    try:
        meta, n = _file_meta(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is recomputed
        log.warning("%s is unreadable (%s); it will be recomputed", path, exc)
        return False
    if meta.get("manifest_digest") != manifest.digest or n != tile.n_pairs:
        log.warning("%s does not belong to this run or is incomplete; it will be recomputed", path)
        return False
    return True


def remove_partial_files(folder: Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    n = 0
    for p in folder.glob(f".*{TMP_SUFFIX}"):
        try:
            p.unlink()
            n += 1
        except OSError:  # pragma: no cover - vanished meanwhile
            pass
    return n


def read_results(output: str | os.PathLike[str], *, require_complete: bool = False):
    """Gather the tile files of a batch run into one table, sorted by ``(i, j)``.

    Parameters
    ----------
    output : str or path-like
        The run's folder (holds ``manifest.json`` and ``tile-*.parquet``).
    require_complete : bool
        Raise if some pairs are not computed yet (default: return those that are).

    Returns
    -------
    pyarrow.Table
        One row per pair; columns in :data:`SCHEMA_FIELDS` (``score`` etc. null where
        ``error`` is set).  The schema metadata holds the manifest digest and the
        comparison parameters.  ``.to_pandas()`` gives a DataFrame where pandas is
        installed.

    Raises
    ------
    ParameterError
        No run in ``output``; a tile file of another run; incomplete with
        ``require_complete``; a pair present twice.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    folder = Path(output)
    manifest = Manifest.load(folder)
    tables = []
    for path in sorted(folder.glob("tile-*.parquet")):
        try:
            t = pq.read_table(path)
        except Exception as exc:
            raise ParameterError(f"{path} is not a readable tile file ({exc}); delete it and rerun to "
                                 "recompute it.") from exc
        meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
        if meta.get(f"{META_PREFIX}manifest_digest") != manifest.run_digest:
            raise ParameterError(f"{path} belongs to another run than {folder / MANIFEST_NAME}; "
                                 "remove it or rerun to recompute it.")
        tables.append(t.replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else _schema().empty_table()
    if table.num_rows:
        table = table.sort_by([("i", "ascending"), ("j", "ascending")])
        keys = pc.add(pc.multiply(pc.cast(table["i"], pa.int64()), len(manifest.scans) + 1),
                      pc.cast(table["j"], pa.int64()))
        if len(pc.unique(keys)) != table.num_rows:
            raise ParameterError(f"{folder}: some pairs are present twice; the folder was edited by hand.")
    if require_complete and table.num_rows != manifest.n_pairs:
        raise ParameterError(f"{folder}: {table.num_rows} of {manifest.n_pairs} pairs are computed; rerun the "
                             "same command to finish the run.")
    return table.replace_schema_metadata({
        f"{META_PREFIX}manifest_digest": manifest.run_digest, f"{META_PREFIX}kind": manifest.kind,
        f"{META_PREFIX}compare": json.dumps(jsonable(manifest.compare), sort_keys=True),
        f"{META_PREFIX}library_version": manifest.library_version,
        f"{META_PREFIX}n_pairs_expected": str(manifest.n_pairs)})
