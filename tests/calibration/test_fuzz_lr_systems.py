"""Structure-aware fuzzing of LR-system files (benchmarks/fuzz_lr_systems.py), a short
seeded run: a hostile system file is refused with a CalibrationError at load, never used
half-broken, and nothing else escapes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ballistics.calibration import DATA_DIR, get_system
from ballistics.calibration._storage import content_sha256
from ballistics.errors import CalibrationError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_lr_systems.py"


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_lr_systems", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_lr_systems", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_two_hundred_mutated_system_files():
    res = _fuzzer().run(200, seed=5, quiet=True)
    assert res["failures"] == [], res["failures"][:5]
    assert res["refused"] > 50 and res["ok"] > 20     # the mutations were hostile, and some harmless


def test_a_damaged_state_with_a_valid_checksum_is_refused_at_load(tmp_path):
    src = next(p for p in sorted(DATA_DIR.glob("*.json")) if not p.name.endswith(".validation.json"))
    d = json.loads(src.read_text())
    d["state"] = {"coef": "not a number"}          # a hostile author recomputes the checksum
    d["content_sha256"] = content_sha256(d)
    bad = tmp_path / "system.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="not a usable LR system|not a valid LR-system"):
        get_system(bad)
    d["elub"] = [2.0, 1.0]                          # low above high
    d["content_sha256"] = content_sha256(d)
    bad.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="elub"):
        get_system(bad)
