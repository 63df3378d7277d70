"""ballistics: an open ballistic image comparison engine.

Pipeline stages, each a folder of the package:

* :mod:`ballistics.reading`  -- ``read_scan`` / ``write_x3p`` (x3p, PNG, TIFF)
* :mod:`ballistics.features` -- ``extract_breech_face`` / ``extract_firing_pin``
* :mod:`ballistics.comparison` -- ``compare`` (Congruent Matching Cells family)
* :mod:`ballistics.calibration` -- likelihood-ratio systems, their metrics and validation
* :mod:`ballistics.index`   -- ``CaseDatabase`` (search cascade, evidence store, exchange bundles)
* :mod:`ballistics.batch`   -- many comparisons on a Dask cluster (Parquet results, resumable)
* :mod:`ballistics.review`  -- figures and HTML reports

The Numba kernels live in the source tree's top-level ``kernels/`` folder and are
installed as :mod:`ballistics.kernels`.
"""

from __future__ import annotations

import logging

from ._threads import set_threads, threads
from ._version import __version__
from .errors import (
    BallisticsError,
    BundleError,
    CalibrationError,
    ComparisonError,
    DatabaseError,
    EmptyScanError,
    ParameterError,
    RegionNotFoundError,
    ScanFormatError,
    ScanReadError,
    ScanTooLargeError,
    ScanValidationError,
    UnitsError,
)
from .reading import read_scan, scan_from_array, write_x3p
from .scan import Provenance, Scan

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__", "Scan", "Provenance", "read_scan", "write_x3p", "scan_from_array",
    "BallisticsError", "ParameterError", "ScanReadError", "ScanFormatError", "ScanTooLargeError", "UnitsError",
    "EmptyScanError", "RegionNotFoundError", "ComparisonError", "DatabaseError", "set_threads", "threads",
    "ScanValidationError", "BundleError", "CalibrationError",
]


def __getattr__(name: str):  # lazy access to the heavier stages
    if name in ("extract_breech_face", "extract_firing_pin", "find_regions"):
        from . import features
        return getattr(features, name)
    if name in ("compare", "Comparison"):
        from . import comparison
        return getattr(comparison, name)
    if name == "CaseDatabase":
        from .index import CaseDatabase
        return CaseDatabase
    if name == "report":
        from .review.report import report
        return report
    if name in ("datasets", "synth", "plot", "calibration", "batch"):
        import importlib
        mod = {"plot": "review.plot"}.get(name, name)
        return importlib.import_module(f".{mod}", __name__)
    raise AttributeError(f"module 'ballistics' has no attribute {name!r}")
