"""Where the larger real-scan collection is (``../shared/data`` or ``BALLISTICS_SHARED_DATA``).

A plain module, imported by the tests as ``from shared_files import shared_path`` (the
root ``conftest.py`` puts this folder on ``sys.path``), so that no test imports a
``conftest`` module by name: with conftests in several folders that name is ambiguous.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared/data, skipping the test when it is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (the ../shared/data real-scan collection is only on CI/dev machines)")
    return p
