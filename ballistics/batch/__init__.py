"""Batch comparisons on a Dask cluster: all pairs, one against many, listed pairs.

>>> from ballistics import batch, comparison, datasets
>>> paths = datasets.fadul_paths("processed")[:4]
>>> summary = batch.all_pairs(paths, "results/", n_workers=2)      # doctest: +SKIP
>>> params = comparison.PRESETS["default"].replace(corr_threshold=0.6)
>>> summary = batch.all_pairs(paths, "strict/", params, options=batch.BatchOptions(tile_size=2))  # doctest: +SKIP
>>> table = batch.read_results("results/")                         # doctest: +SKIP
>>> table.to_pandas()[["a_name", "b_name", "cmc_count", "score"]]  # doctest: +SKIP

The pair matrix is cut into tiles (a block of rows x a block of columns); each tile is
one task for a worker process, which reads and prepares each of the tile's scans once
(and keeps a few prepared scans cached) and compares its pairs.  Finished tiles are
written one Parquet file each, atomically, into the output folder, after a
``manifest.json`` that records the scans (with SHA-256), the comparison's parameters
(``CompareParams.to_dict()``, rebuilt by the workers with ``CompareParams.from_dict``),
the tiling and the library version.  How a run executes (tiling, cluster, progress) is
a :class:`BatchOptions`, or its fields as keyword arguments.  Rerunning the same call
resumes: finished tiles are skipped.  A pair that cannot be compared gets its reason in
the ``error`` column.

By default a local cluster of worker processes (one thread each) is started for the
call; ``scheduler="tcp://host:8786"`` or ``client=`` runs the same call on an existing
Dask cluster of any number of machines (paths must be readable by the workers).
:func:`map_scans` runs any per-scan function on the same machinery.  Dask is imported
only when a cluster is needed; importing this module changes nothing global.  The
local workers are spawned processes: in a script, call these functions under
``if __name__ == "__main__":`` (not from code piped into ``python -``).
"""

from __future__ import annotations

from ._execute import BatchSummary
from ._manifest import Manifest, ScanRef
from ._map import MapResult, map_scans
from ._options import BatchOptions
from ._run import all_pairs, auto_tile_size, compare_spec, one_vs_many, pairs
from ._table import SCHEMA_FIELDS, read_results
from ._tiles import Tile

__all__ = [
           "SCHEMA_FIELDS",
           "BatchOptions",
           "BatchSummary",
           "Manifest",
           "MapResult",
           "ScanRef",
           "Tile",
           "all_pairs",
           "auto_tile_size",
           "compare_spec",
           "map_scans",
           "one_vs_many",
           "pairs",
           "read_results",
]
