"""Importing the package changes nothing global.

In a fresh interpreter, the process state a library must leave alone is recorded
(environment, matplotlib's backend, Pillow's decompression-bomb limit, the umask, the
root logger, NumPy's floating-point error handling, warning filters, the thread settings
of Numba, OpenCV and FAISS), then ``ballistics`` and every one of its modules is
imported -- ``ballistics.kernels`` and ``ballistics.cli`` included -- and the state is
compared after each import, so a failure names the module that changed what.

The third-party libraries are imported before the first snapshot: what they do on
import is theirs; only what the package's own code does is measured.  ``__main__``
modules are entry points (they run the program when imported) and are left out.  A
probe module that does break the rules is imported last, to show the check sees it.
matplotlib's resolved backend (``get_backend()``) is not asked: asking resolves it, which
is itself a change; the raw rcParams entry and whether pyplot was imported are compared.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(r'''
    import importlib, json, logging, os, pkgutil, sys, warnings

    # third-party libraries first: their own import-time effects are not ours
    import numpy, scipy, scipy.ndimage, scipy.fft, cv2, skimage, numba, faiss, x3pio, PIL.Image, sklearn
    import matplotlib, matplotlib.colors, matplotlib.figure, pyarrow, filelock, tqdm, dask, distributed

    def umask():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return line.split()[1]
        return None

    def state():
        root = logging.getLogger()
        return {
            "environ": dict(os.environ),
            # the raw rcParams entry: reading it this way does not resolve the "auto" backend
            "matplotlib backend (rcParams, unresolved)": repr(dict.__getitem__(matplotlib.rcParams, "backend")),
            "matplotlib.pyplot imported": "matplotlib.pyplot" in sys.modules,
            "matplotlib interactive": matplotlib.is_interactive(),
            "PIL.Image.MAX_IMAGE_PIXELS": PIL.Image.MAX_IMAGE_PIXELS,
            "umask": umask(),
            "root logger handlers": [repr(h) for h in root.handlers],
            "root logger level": root.level,
            "logging disabled level": logging.root.manager.disable,
            "numpy errstate": numpy.geterr(),
            "warning filters": [repr(f) for f in warnings.filters],
            "numba NUMBA_NUM_THREADS": numba.config.NUMBA_NUM_THREADS,
            "numba THREADING_LAYER": numba.config.THREADING_LAYER,
            "numba get_num_threads": numba.get_num_threads(),
            "opencv threads": cv2.getNumThreads(),
            "faiss omp threads": faiss.omp_get_max_threads(),
            "sys.excepthook": repr(sys.excepthook),
        }

    before = state()
    names = json.loads(sys.argv[1])
    assert "ballistics" not in sys.modules
    changes, errors = [], {}
    current = before
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported, not hidden
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        after = state()
        for key in after:
            if key == "environ":
                diff = {k: (current[key].get(k), after[key].get(k))
                        for k in set(current[key]) | set(after[key]) if current[key].get(k) != after[key].get(k)}
                if diff:
                    changes.append([name, key, repr(diff)])
            elif after[key] != current[key]:
                changes.append([name, key, f"{current[key]!r} -> {after[key]!r}"])
        current = after
    print(json.dumps({"modules": names, "changes": changes, "errors": errors}))
''')


def _module_names() -> list[str]:
    """``ballistics`` and every module under it and under ``ballistics.kernels`` (walked here,
    in the test process, so that the fresh interpreter imports each one for the first time)."""
    import ballistics
    import ballistics.kernels

    names = ["ballistics", "ballistics.kernels"]
    for pkg in (ballistics, ballistics.kernels):
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return [n for n in dict.fromkeys(names) if n.rsplit(".", 1)[-1] != "__main__"]


_PROBE = """
import os
import matplotlib.pyplot
os.environ["HYGIENE_PROBE"] = "set on import"
"""


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    """Import every module in a fresh interpreter, then a probe module known to break the rules
    (last, so it can only show that the check sees such changes)."""
    probe_dir = tmp_path_factory.mktemp("probe")
    (probe_dir / "_hygiene_probe.py").write_text(_PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(probe_dir), os.environ.get("PYTHONPATH", "")]))
    env.pop("HYGIENE_PROBE", None)
    names = _module_names() + ["_hygiene_probe"]
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(names)], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_every_module_changes_no_global_state(imported):
    out = imported
    # the walk really covered the package, the kernels and the command line
    mods = set(out["modules"])
    for must in ("ballistics", "ballistics.kernels", "ballistics.cli", "ballistics.review.plot",
                 "ballistics.review.report", "ballistics.database", "ballistics.retrieval", "ballistics.workflow",
                 "ballistics.comparison"):
        assert must in mods, must
    assert any(m.startswith("ballistics.kernels._") for m in mods)
    assert not out["errors"], f"modules that fail to import: {out['errors']}"
    ours = [c for c in out["changes"] if c[0].startswith("ballistics")]
    changes = "\n".join(f"  importing {m} changed {what}: {how}" for m, what, how in ours)
    assert not ours, "importing the package changed global state:\n" + changes


def test_the_check_sees_a_module_that_changes_global_state(imported):
    probe = {what: how for m, what, how in imported["changes"] if m == "_hygiene_probe"}
    assert "HYGIENE_PROBE" in probe.get("environ", "")
    assert probe.get("matplotlib.pyplot imported") == "False -> True"
