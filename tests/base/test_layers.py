"""The layer contract in pyproject.toml catches an import that points up.

The contract is checked on the real package by ``lint-imports`` in the README's test
command; here it is run on a copy of the package with one upward import added, once at
module level and once inside a function, and must fail both times (and pass unchanged).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    return subprocess.run([str(LINT), "--config", str(tmp / "pyproject.toml"), "--no-cache"], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    if not LINT.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: install the test extra")
    shutil.copytree(ROOT / "ballistics", tmp_path / "ballistics",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contract_holds_on_the_package(copy: Path) -> None:
    res = _lint(copy)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("where", ["module", "function"])
def test_contract_catches_an_upward_import(copy: Path, where: str) -> None:
    target = copy / "ballistics" / "reading" / "__init__.py"
    line = ("\nfrom ..review import report as _upward  # noqa\n" if where == "module" else
            "\n\ndef _upward():\n    from ..cli import main  # noqa\n    return main\n")
    target.write_text(target.read_text() + line)
    res = _lint(copy)
    assert res.returncode != 0
    assert "ballistics.reading is not allowed to import" in res.stdout, res.stdout
