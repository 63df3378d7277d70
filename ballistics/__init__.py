"""ballistics: an open ballistic image comparison engine.

Pipeline stages, each a folder of the package:

* :mod:`ballistics.reading`  -- ``read_scan`` / ``write_x3p`` (x3p, PNG, TIFF)
* :mod:`ballistics.features` -- ``extract_breech_face`` / ``extract_firing_pin``
* :mod:`ballistics.comparison` -- ``compare`` (Congruent Matching Cells family)
* :mod:`ballistics.calibration` -- likelihood-ratio systems and their metrics
* :mod:`ballistics.retrieval` -- signatures, FAISS, key-point verification, the search cascade
* :mod:`ballistics.database` -- ``CaseDatabase`` (catalogue, evidence store, audit chain, bundles)
* :mod:`ballistics.batch`   -- many comparisons on a Dask cluster (Parquet results, resumable)
* :mod:`ballistics.workflow` -- validation studies of LR systems on a lab's labelled scans
* :mod:`ballistics.review`  -- figures and HTML reports
* :mod:`ballistics.cli`     -- the ``ballistics`` command

Each layer imports only from those listed above it and the base modules (``scan``,
``errors``, ``limits``); see ``ARCHITECTURE.md``.

The Numba kernels live in the source tree's top-level ``kernels/`` folder and are
installed as :mod:`ballistics.kernels`.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ._threads import set_threads, threads
from ._version import __version__
from .errors import (
    BallisticsError,
    BundleError,
    CalibrationError,
    ComparisonError,
    DatabaseError,
    EmptyScanError,
    OutputError,
    ParameterError,
    RegionNotFoundError,
    ResourceLimitError,
    ScanFormatError,
    ScanReadError,
    ScanTooLargeError,
    ScanValidationError,
    UnitsError,
)
from .reading import read_scan, scan_from_array, write_x3p
from .scan import Provenance, Scan

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: The heavier stages, imported on first use: public name -> (module, attribute or None
#: for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "extract_breech_face": ("features", "extract_breech_face"),
    "extract_firing_pin": ("features", "extract_firing_pin"),
    "find_regions": ("features", "find_regions"),
    "ExtractParams": ("features", "ExtractParams"),
    "compare": ("comparison", "compare"),
    "prepare": ("comparison", "prepare"),
    "align": ("comparison", "align"),
    "Comparison": ("comparison", "Comparison"),
    "CompareParams": ("comparison", "CompareParams"),
    "CaseDatabase": ("database", "CaseDatabase"),
    "SearchParams": ("retrieval", "SearchParams"),
    "report": ("review.report", "report"),
    "plot": ("review.plot", None),
    "calibration": ("calibration", None),
    "batch": ("batch", None),
    "workflow": ("workflow", None),
    "datasets": ("datasets", None),
    "synth": ("synth", None),
}

__all__ = [
    "__version__", "Scan", "Provenance", "read_scan", "write_x3p", "scan_from_array",
    "BallisticsError", "ParameterError", "ScanReadError", "ScanFormatError", "ScanTooLargeError", "UnitsError",
    "EmptyScanError", "RegionNotFoundError", "ComparisonError", "DatabaseError", "set_threads", "threads",
    "ScanValidationError", "BundleError", "CalibrationError", "ResourceLimitError", "OutputError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """The heavier stages, imported when first used (``ballistics.compare``, ...)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ballistics' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(f".{module}", __name__)
    return mod if attr is None else getattr(mod, attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
