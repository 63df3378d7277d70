"""Fixtures of the review tests: the bundled scans by name, two real comparisons, the reference.

Same-firearm pair: Fadul 1-1 vs 1-2; different-firearm pair: Fadul 1-1 vs 2-1.  The
comparisons and the bundled reference scores are computed once per session.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

import ballistics
from ballistics import datasets


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def scans(sample):
    """The bundled processed breech faces by name (``"Fadul 1-1"`` ...)."""
    return {s.name: s for s in sample}


@pytest.fixture(scope="session")
def raw_scans():
    """The bundled raw scans by name."""
    return {s.name: s for s in datasets.fadul("raw")}


@pytest.fixture(scope="session")
def same_pair(scans):
    a, b = scans["Fadul 1-1"], scans["Fadul 1-2"]
    return a, b, ballistics.compare(a, b)


@pytest.fixture(scope="session")
def diff_pair(scans):
    a, b = scans["Fadul 1-1"], scans["Fadul 2-1"]
    return a, b, ballistics.compare(a, b)


@pytest.fixture(scope="session")
def reference():
    """Reference scores of the 15 bundled pairs (compare's defaults)."""
    from ballistics.review import reference_scores

    return reference_scores("bundled")
