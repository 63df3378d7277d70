"""Empirical Lower and Upper Bounds (ELUB) of likelihood ratios.

A system calibrated on a small reference set can output LRs (10^8, 10^-12) that the
reference data cannot support: with ``n`` different-source pairs, no data-driven claim
of an LR far above ``n`` can be checked.  Vergeer et al. (2016) bound the LRs to the
range where the system, used to make decisions at every threshold ``T``, does at least
as well as a neutral system (LR = 1 always), after adding one misleading LR on each
side to the reference data.

With decisions "H1 if LR > T", the expected cost (misses weighted 1, false alarms
weighted ``T``, i.e. prior odds ``1/T``) is::

    C_sys(T) = (n1(LR <= T) + a) / (N1 + a) + T (n2(LR > T) + a) / (N2 + a)
    C_ref(T) = min(1, T)                           # the neutral system

with ``a = add_misleading``.  The upper bound is the largest ``T >= 1`` below the first
``T`` where ``C_sys > C_ref``; the lower bound mirrors it below 1; without such a
``T`` the bound is the most extreme LLR observed.  This is the computation of the NFI's
``lir`` package (``lir.bounding.elub``), except that thresholds are scanned on a grid of
0.01 in log10 (``lir``: 0.01 in natural log).

References
----------
Vergeer, P., van Es, A., de Jongh, A., Alberink, I., Stoel, R. (2016). Numerical
likelihood ratios outputted by LR systems are often based on extrapolation: when to
stop extrapolating? Science & Justice 56(6), 482-491.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ._checks import as_labels, as_llr, check_both_classes

__all__ = ["elub_bounds"]

STEP = 0.01


def elub_bounds(llr: Any, same_source: Any, add_misleading: int = 1) -> tuple[float, float]:
    """ELUB bounds (log10) for a set of validation LLRs.

    Parameters
    ----------
    llr : array_like, shape (n,)
        log10 LRs of the system on reference data it was not fitted on (e.g.
        cross-validated), +-inf allowed.
    same_source : array_like of bool, shape (n,)
        Ground truth, True for same-source pairs.
    add_misleading : int
        Misleading LRs added on each side (Vergeer et al. 2016 use 1), >= 0.

    Returns
    -------
    (float, float)
        ``(lower, upper)`` log10 LR bounds, ``lower <= 0 <= upper``.  Apply them with
        ``np.clip(llr, lower, upper)``.

    References
    ----------
    Vergeer et al. (2016), section 3.
    """
    a = as_llr(llr)
    y = as_labels(same_source, a.size)
    check_both_classes(y)
    if not isinstance(add_misleading, (int, np.integer)) or add_misleading < 0:
        raise ParameterError(f"add_misleading must be an integer >= 0, got {add_misleading!r}")
    finite = a[np.isfinite(a)]
    top = max(float(np.ceil(finite.max())) if finite.size else 0.0, 0.0) + 1.0
    bot = min(float(np.floor(finite.min())) if finite.size else 0.0, 0.0) - 1.0
    if add_misleading > 0:  # C_sys > T a / (N + a) > C_ref beyond these: no need to scan further
        top = min(top, float(np.ceil(np.log10((y.size + add_misleading) / add_misleading))) + 1.0)
        bot = max(bot, -top)
    top, bot = min(top, 300.0), max(bot, -300.0)
    n_up = int(round(top / STEP))
    n_dn = int(round(-bot / STEP))
    grid = np.concatenate([-np.arange(n_dn, 0, -1) * STEP, [0.0], np.arange(1, n_up + 1) * STEP])
    s1 = np.sort(a[y])
    s0 = np.sort(a[~y])
    n1, n0 = s1.size, s0.size
    miss = np.searchsorted(s1, grid, side="right")          # H1 with llr <= g
    fa = n0 - np.searchsorted(s0, grid, side="right")       # H2 with llr > g
    t = 10.0 ** grid
    c_sys = (miss + add_misleading) / (n1 + add_misleading) + t * (fa + add_misleading) / (n0 + add_misleading)
    c_ref = np.minimum(1.0, t)
    worse = c_sys > c_ref * (1 + 1e-12)
    up = (grid > 0) & worse
    dn = (grid < 0) & worse
    # no threshold where the system does worse: bound at the most extreme LLR observed
    # (as lir does); with add_misleading >= 1 this cannot happen on a side with data
    upper = float(grid[np.argmax(up)] - STEP) if up.any() else (float(finite.max()) if finite.size else 0.0)
    lower = float(grid[len(grid) - 1 - np.argmax(dn[::-1])] + STEP) if dn.any() else (
        float(finite.min()) if finite.size else 0.0)
    return round(min(lower, 0.0), 2), round(max(upper, 0.0), 2)
