"""Shared fixtures: the bundled sample (always there) and ../shared/data (CI only)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # tests' helper modules (shared_files)

from shared_files import ROOT, SHARED, shared_path  # noqa: E402,F401


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests that need it skip with a reason where it is absent."""
    if not (SHARED / "README.md").exists():
        pytest.skip(f"the ../shared/data real-scan collection is not at {SHARED} "
                    "(set BALLISTICS_SHARED_DATA to it); "
                    "the bundled sample still covers the core")
    return SHARED


# Reports cache reference scores in $BALLISTICS_CACHE; tests must not touch the user's cache.
@pytest.fixture(scope="session", autouse=True)
def _test_cache(tmp_path_factory):
    """Reference scores are cached per test session, never in the user's ~/.cache."""
    d = tmp_path_factory.getbasetemp() / "ballistics_cache"
    d.mkdir(exist_ok=True)
    old = os.environ.get("BALLISTICS_CACHE")
    os.environ["BALLISTICS_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("BALLISTICS_CACHE", None)
    else:
        os.environ["BALLISTICS_CACHE"] = old


@pytest.fixture(scope="session")
def sample():
    """The six processed Fadul breech faces bundled with the package (Fadul 1-1 ... 3-2)."""
    from ballistics import datasets
    return datasets.fadul("processed")
