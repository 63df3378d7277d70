"""Firearm-bootstrap intervals of a log10 LR: refits with their own ELUB bounds.

The uncertainty an interval should show is that of the reference population: another
sample of firearms would have given another calibrator and other bounds.  Each refit
draws the firearms with replacement (a pair's weight is the product of its firearms'
draw counts), refits the calibrator on the weighted pairs and sets its own ELUB bounds
from its own LLRs on them.  The interval at a score is the percentile interval of the
refits' bounded log10 LRs there.  Where the LR is held by a bound -- in the system or in
enough refits to set an end of the interval -- the interval says so: an end at a bound
is a limit of the data, not a measured precision.

References
----------
Efron, B., Tibshirani, R. (1993). An Introduction to the Bootstrap, ch. 13.
Vergeer, P. et al. (2016). Numerical likelihood ratios outputted by LR systems are
often based on extrapolation: when to stop extrapolating? Science & Justice 56(6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CalibrationError, ParameterError
from ._calibrators import METHODS, Calibrator, make_calibrator
from ._elub import elub_bounds

__all__ = ["Replicates", "bootstrap_interval", "fit_replicates", "GRID_POINTS"]

#: Grid points on which refits of non-parametric calibrators are stored.
GRID_POINTS = 61


@dataclass
class Replicates:
    """Stored refits: calibrators (parametric) or LLR rows on a grid, and their bounds."""

    bounds: np.ndarray                   # (n, 2) log10 ELUB bounds of each refit
    calibrators: list[Calibrator] | None = None
    grid: np.ndarray | None = None
    table: np.ndarray | None = None      # (n, len(grid)) unbounded LLRs

    @property
    def n(self) -> int:
        return int(self.bounds.shape[0])

    def unbounded(self, x: np.ndarray) -> np.ndarray:
        """Each refit's unbounded log10 LR at ``x`` (shape ``(n_refits, len(x))``)."""
        if self.calibrators is not None:
            return np.stack([c.llr(x) for c in self.calibrators])
        assert self.grid is not None and self.table is not None
        return np.stack([np.interp(np.ravel(x), self.grid, row) for row in self.table])

    @classmethod
    def from_stored(cls, method: str, params: dict[str, Any], boot: dict[str, Any],
                    elub: tuple[float, float]) -> Replicates:
        """Rebuild from a system's ``bootstrap`` dict (refits without bounds get the system's)."""
        if boot.get("states"):
            cals = [METHODS[method].from_state(params, s) for s in boot["states"]]
            b = np.asarray(boot.get("elub") or [list(elub)] * len(cals), float)
            return cls(bounds=b, calibrators=cals)
        if boot.get("grid"):
            table = np.asarray([[np.nan if v is None else v for v in row] for row in boot["llr"]], float)
            b = np.asarray(boot.get("elub") or [list(elub)] * len(table), float)
            return cls(bounds=b, grid=np.asarray(boot["grid"], float), table=table)
        raise CalibrationError("the LR system holds no bootstrap refits; refit it with bootstrap > 0")


def bootstrap_interval(reps: Replicates, x: np.ndarray, point: float, elub: tuple[float, float],
                       level: float = 0.95) -> dict[str, Any]:
    """Percentile interval of the refits' bounded log10 LR at one score, with its bound flag.

    Parameters
    ----------
    reps : Replicates
    x : ndarray
        One score (shape ``(1,)`` or ``(1, k)``).
    point : float
        The system's bounded log10 LR at ``x``.
    elub : (float, float)
        The system's ELUB bounds.
    level : float
        Coverage in (0, 1).

    Returns
    -------
    dict
        ``interval``, ``level``, ``n_refits``, ``at_bound``, ``fraction_at_bound``, ``note``.
    """
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ParameterError(f"level must be in (0, 1), got {level!r}")
    u = reps.unbounded(x)[:, 0]
    lo_b, hi_b = reps.bounds[:, 0], reps.bounds[:, 1]
    v = np.clip(u, lo_b, hi_b)
    ok = np.isfinite(v)
    if not ok.any():
        raise CalibrationError("no bootstrap refit gives a finite LR at this score")
    a = (1 - level) / 2
    lo, hi = (float(q) for q in np.quantile(v[ok], [a, 1 - a]))
    lo, hi = min(lo, point), max(hi, point)
    at_lo = float(np.mean(u[ok] <= lo_b[ok]))
    at_hi = float(np.mean(u[ok] >= hi_b[ok]))
    at_bound = None
    if point <= elub[0] + 1e-9 or at_lo >= a:
        at_bound = "lower"
    elif point >= elub[1] - 1e-9 or at_hi >= a:
        at_bound = "upper"
    note = (f"{int(ok.sum())} firearm-bootstrap refits, each with its own ELUB bounds; "
            f"{100 * level:g} % percentile interval")
    if at_bound:
        frac = at_lo if at_bound == "lower" else at_hi
        side = "low" if at_bound == "lower" else "high"
        note = (f"held at the {at_bound} ELUB bound: in {100 * frac:.0f} % of the refits (and "
                + ("" if (point <= elub[0] + 1e-9 or point >= elub[1] - 1e-9) else "not ")
                + f"in the system itself) the reference data support no more extreme value, so the interval's "
                f"{side} end is a limit of the reference data, not a measured precision ({note})")
    return {"interval": [round(lo, 4), round(hi, 4)], "level": level, "n_refits": int(ok.sum()),
            "at_bound": at_bound, "fraction_at_bound": round(at_lo if at_bound != "upper" else at_hi, 4),
            "note": note}


def fit_replicates(x: np.ndarray, y: np.ndarray, g: list[tuple[str, str]], method: str, params: dict[str, Any],
                   n: int, rng: np.random.Generator, add_misleading: int = 1) -> dict[str, Any]:
    """``n`` firearm-bootstrap refits, each with its own ELUB bounds, as a JSON-able dict.

    Parameters
    ----------
    x, y : ndarray
        Scores and labels.
    g : list of (str, str)
        Firearms of each pair.
    method, params :
        Calibrator.
    n : int
        Number of refits.
    rng : numpy.random.Generator
    add_misleading : int
        For the refits' ELUB bounds.

    Returns
    -------
    dict
        ``n``, ``unit``, ``method``, ``bounds`` (how each refit is bounded), ``elub``
        (per refit) and ``states`` (parametric) or ``grid`` + ``llr`` (others).
    """
    firearms = sorted({f for p in g for f in p})
    index = {f: i for i, f in enumerate(firearms)}
    ia = np.array([index[p[0]] for p in g])
    ib = np.array([index[p[1]] for p in g])
    states: list[dict[str, Any]] = []
    rows: list[list[float]] = []
    bounds: list[list[float]] = []
    grid = None if method == "logistic" else np.linspace(float(x.min()), float(x.max()), GRID_POINTS)
    tries = 0
    while len(bounds) < n and tries < 5 * n:
        tries += 1
        m = np.bincount(rng.integers(0, len(firearms), len(firearms)), minlength=len(firearms))
        w = np.where(ia == ib, m[ia], m[ia] * m[ib]).astype(int)
        if w[y].sum() == 0 or w[~y].sum() == 0:
            continue
        rep = np.repeat(np.arange(x.shape[0]), w)      # drawn pairs as rows: the fit sees the sample's size
        cal = make_calibrator(method, **params).fit(x[rep], y[rep])
        bounds.append(list(elub_bounds(cal.llr(x[rep]), y[rep], add_misleading)))
        if grid is None:
            states.append(cal.state())
        else:
            rows.append([round(float(v), 3) for v in np.clip(cal.llr(grid), -50, 50)])
    out: dict[str, Any] = {"n": len(bounds), "unit": "firearm", "method": "percentile",
                           "bounds": "each refit's own ELUB bounds from its LLRs on its resampled pairs",
                           "elub": bounds}
    if grid is None:
        out["states"] = states
    else:
        out["grid"] = [round(float(v), 6) for v in grid]
        out["llr"] = rows
    return out
