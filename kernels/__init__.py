"""Numba kernels of the engine (installed as ``ballistics.kernels``).

Each kernel is a private ``_function`` compiled with Numba, behind a thin public
wrapper that validates and prepares the arrays; each has a plain NumPy twin in the
test suite.
"""
