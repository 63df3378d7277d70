"""Structure-aware bundle fuzzing (benchmarks/fuzz_bundles.py), a short seeded run: only
BallisticsErrors escape, nothing hangs, a refused import leaves the database byte-identical."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_bundles.py"


@pytest.mark.slow
def test_two_hundred_mutated_bundles(tmp_path):
    spec = importlib.util.spec_from_file_location("fuzz_bundles", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_bundles", mod)
    spec.loader.exec_module(mod)
    lines: list[str] = []
    res = mod.run(200, seed=3, workdir=tmp_path, log=lines.append)
    assert res["cases"] == 200 and res["failures"] == [], (lines, res["failures"][:5])
    assert res["refused"] > 100  # the mutations really were hostile
    assert res["slowest_s"] < mod.CASE_LIMIT_S
