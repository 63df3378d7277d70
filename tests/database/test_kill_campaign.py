"""A short kill campaign (benchmarks/kill_campaign.py): writers SIGKILLed at random moments
during add, remove and rebuild; after each kill the database opens, deep-verifies, and
holds every acknowledged change."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_campaign.py"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_ten_kills_lose_nothing_acknowledged(tmp_path):
    spec = importlib.util.spec_from_file_location("kill_campaign", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kill_campaign", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    lines: list[str] = []
    s = mod.run(10, tmp_path, seed=7, log=lines.append)
    report = "\n".join(lines)
    assert s["rounds"] == 10 and s["survived"] == 10, report
    assert s["lost"] == [] and s["resurrected"] == [], report
    assert s["killed_mid_operation"] >= 2, report  # kills really landed inside operations
    assert s["acknowledged_present_at_end"] > 0
    assert set(s["by_op"]) == {"add", "remove", "rebuild"} and s["by_op"]["add"] > 0
