"""Numba kernels of the engine (installed as ``ballistics.kernels``).

Each kernel is a private ``_function`` compiled with Numba, behind a thin public
wrapper that validates and prepares the arrays; each has a plain NumPy twin in the
test suite (``tests/kernels/``).

Importing the kernels changes nothing global.  Threads: :func:`ballistics.set_threads`
(or ``with ballistics.threads(n):``).  Numba's OpenMP layer spin-waits between parallel
regions unless ``OMP_WAIT_POLICY=PASSIVE`` is in the environment before Numba starts
its threads (the ``ballistics`` command sets it; see :mod:`ballistics._threads`).
"""
