"""The examples in the docstrings run, and print what they say they print.

Every module of the package (``ballistics.kernels`` included; ``__main__`` entry points
left out) is searched for examples, which run with ``NORMALIZE_WHITESPACE`` and
``ELLIPSIS`` in a temporary working directory, so an example that writes a file writes
it there.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ballistics
import ballistics.kernels


def _module_names() -> list[str]:
    names = ["ballistics", "ballistics.kernels"]
    for pkg in (ballistics, ballistics.kernels):
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return [n for n in dict.fromkeys(names) if n.rsplit(".", 1)[-1] != "__main__"]


def _with_examples(names: list[str]) -> list[str]:
    out = []
    for name in names:
        module = importlib.import_module(name)
        tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
        if any(not ex.options.get(doctest.SKIP) for t in tests for ex in t.examples):
            out.append(name)  # examples that all carry +SKIP run nothing
    return out


MODULES = _module_names()
WITH_EXAMPLES = _with_examples(MODULES)
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def test_the_walk_finds_the_examples():
    """The search covers the package: the kernels are walked, and the modules known to hold
    examples are found to hold them."""
    assert "ballistics.kernels" in MODULES and any(m.startswith("ballistics.kernels._") for m in MODULES)
    for name in ("ballistics.review.plot", "ballistics.review.reference", "ballistics.review._roc"):
        assert name in WITH_EXAMPLES, name


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for t in tests:
        runner.run(t, out=report.append)
    assert runner.tries > 0
    if runner.failures:
        pytest.fail(f"{runner.failures} failing example(s) in {name}:\n" + "".join(report)[-6000:])
