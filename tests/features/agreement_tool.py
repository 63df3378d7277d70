"""The developer tool ``benchmarks/agreement.py`` (not part of the package), loaded for tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "agreement.py"
_spec = importlib.util.spec_from_file_location("_benchmarks_agreement", _PATH)
assert _spec is not None and _spec.loader is not None
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

surface_agreement = _mod.surface_agreement

__all__ = ["surface_agreement"]
