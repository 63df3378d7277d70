"""The base module ``ballistics.limits``: the limits, their error messages, and that the
scan model reads them without importing the reading layer."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import ballistics
import ballistics.limits
import ballistics.scan
from ballistics.errors import ScanTooLargeError, ScanValidationError
from ballistics.limits import LIMITS, Limits, check_expansion, current_limits, limit_error


def test_limit_error_names_the_limit_and_how_to_raise_it():
    err = limit_error("f.x3p", "a matrix of 9 points", "max_pixels", 8, "Crop it.")
    assert isinstance(err, ScanTooLargeError)
    msg = str(err)
    assert msg.startswith("f.x3p: a matrix of 9 points exceeds Limits.max_pixels = 8")
    assert "Crop it." in msg and "read_scan(path, limits=LIMITS.replace(max_pixels=...))" in msg


def test_expansion_is_refused_only_above_floor_and_ratio():
    lim = Limits(max_expansion=100.0, expansion_floor_bytes=8000)
    check_expansion("a", 1000, 1, lim)  # 8000 bytes: at the floor, any ratio
    check_expansion("a", 10_000, 800, lim)  # 80 kB from 800 B: ratio 100, allowed
    with pytest.raises(ScanTooLargeError, match=r"expansion 101 x.*Limits\.max_expansion = 100"):
        check_expansion("a", 10_100, 800, lim)
    check_expansion("a", 10_100, 800, lim.replace(max_expansion=200.0))


def test_current_limits_and_replace():
    assert current_limits() is LIMITS
    mine = LIMITS.replace(max_pixels=5)
    assert current_limits(mine) is mine and mine.max_pixels == 5 and LIMITS.max_pixels != 5


def test_scan_validate_reads_the_limit_at_call_time(monkeypatch):
    s = ballistics.scan_from_array(np.full((4, 4), 1e-3), 1e-6)
    s.validate()
    monkeypatch.setattr(LIMITS, "max_abs_height_m", 1e-4)
    with pytest.raises(ScanValidationError, match="max_abs_height_m"):
        s.validate()


def test_scan_and_limits_import_nothing_above_the_base():
    """Not at module level, not inside a function (the package's own __init__ imports
    reading eagerly, so the check reads the modules' import statements)."""
    base = {"errors", "_json", "_params", "_io", "_version", "_threads", "limits", "scan"}
    for mod in (ballistics.scan, ballistics.limits):
        tree = ast.parse(Path(mod.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert (node.module or "").split(".")[0] in base, (mod.__name__, node.module)
