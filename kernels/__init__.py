"""Numba kernels of the engine (installed as ``ballistics.kernels``).

Each kernel is a private ``_function`` compiled with Numba, behind a thin public
wrapper that validates and prepares the arrays; each has a plain NumPy twin in the
test suite (``tests/test_kernels_*.py``).

Numba's OpenMP threading layer spin-waits between parallel regions by default; on a
small shared machine that made the comparison kernels 10-20x slower (measured in
``benchmarks/results_compare.md``), so waiting threads sleep unless the user chose
otherwise.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
