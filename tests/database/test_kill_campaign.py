"""Writers SIGKILLed at named points inside add, remove and rebuild (benchmarks/kill_campaign.py).

The child stops at each point and the parent kills it exactly there, so every assertion
is deterministic: after each kill the database opens, deep-verifies, holds every
acknowledged change, and shows the interrupted operation exactly when its transaction
had committed.  The campaign of kills at random moments is the benchmark's job.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_campaign.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")


def _campaign():
    spec = importlib.util.spec_from_file_location("kill_campaign", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kill_campaign", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    """Every named point, killed in turn on one database; one result per point."""
    mod = _campaign()
    lines: list[str] = []
    results = mod.run_points(tmp_path_factory.mktemp("kill_points"), log=lines.append)
    return mod.POINTS, {r["point"]: r for r in results}, "\n".join(lines)


def test_every_operation_has_points_before_and_after_its_commit():
    named = _campaign().POINTS
    for op in ("add", "remove", "rebuild"):
        committed = {c for o, _, _, c in named.values() if o == op}
        assert committed == {False, True}, op
    assert {"add/before-files", "add/files-written", "add/in-transaction", "add/committed"} <= set(named)


@pytest.mark.slow
def test_each_named_point_is_reached_and_killed_there(points):
    named, results, report = points
    assert list(results) == list(named), report
    for name, r in results.items():
        assert r["reached"], f"{name}: the child never stopped there\n{r['output']}"
        assert len(r["acknowledged"]) == 1, f"{name}: {r['acknowledged']}\n{r['output']}"


@pytest.mark.slow
def test_after_each_kill_the_database_opens_deep_verifies_and_loses_nothing_acknowledged(points):
    _, results, report = points
    for name, r in results.items():
        assert r["problems"] == [], (name, report)
        assert r["lost"] == [] and r["resurrected"] == [], (name, report)
        assert r["ok"], (name, report)


@pytest.mark.slow
def test_interrupted_operation_took_effect_exactly_when_committed(points):
    _, results, report = points
    for name, r in results.items():
        assert r["took_effect"] is r["expected_effect"], (name, report)


@pytest.mark.slow
def test_kills_between_commit_and_index_leave_damage_that_opening_repairs(points):
    _, results, report = points
    for name in ("add/committed", "add/index-half-saved", "remove/committed", "remove/index-half-saved",
                 "rebuild/index-half-saved"):
        assert results[name]["repaired"], (name, report)
    for name in ("add/before-files", "add/in-transaction", "remove/in-transaction"):
        assert not results[name]["repaired"], (name, report)
