"""Fixtures of the database tests: the bundled sample's entries, computed once."""

from __future__ import annotations

import pytest

from ballistics.database import prepare_entry


@pytest.fixture(scope="session")
def entries(sample):
    """Signatures and key points of the six bundled scans (the lock-free half of add)."""
    return [prepare_entry(s, preprocess=False) for s in sample]
