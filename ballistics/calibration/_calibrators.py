"""Score-to-log10-LR calibrators: logistic regression, per-class KDE, isotonic (PAV).

Each calibrator is fitted on scores with ground truth and optional weights (the
weights carry the firearm bootstrap), gives *unbounded* log10 LRs (bounding is the
job of :func:`~ballistics.calibration.elub_bounds`), and round-trips through a plain
JSON-able ``state`` dict (no pickle).  Classes are weighted equally (prior odds 1), so
the posterior log-odds of every model are log likelihood ratios.

References
----------
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3) (logistic-regression calibration).
Morrison, G. S. (2013). Tutorial on logistic-regression calibration and fusion.
Australian Journal of Forensic Sciences 45(2), 173-197.
Aitken, C. G. G., Lucy, D. (2004). Evaluation of trace evidence in the form of
multivariate data. Applied Statistics 53(1), 109-122; Zadora, G., Martyna, A., Ramos,
D., Aitken, C. (2014). Statistical Analysis in Forensic Science, Wiley, ch. 4 (KDE).
Zadrozny, B., Elkan, C. (2002). Transforming classifier scores into accurate multiclass
probability estimates. KDD (isotonic / PAV calibration).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp

from ..errors import ParameterError
from ._pav import pav

__all__ = ["Calibrator", "LogisticCalibrator", "KDECalibrator", "IsotonicCalibrator", "make_calibrator",
           "METHODS"]

_LN10 = math.log(10.0)


def _balanced(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weights scaled so both classes weigh the same in total (prior odds 1)."""
    w1 = w[y].sum()
    w0 = w[~y].sum()
    out = np.where(y, w / (2 * w1), w / (2 * w0))
    return out * y.size


class Calibrator:
    """Base class: ``fit(x, y, w)``, ``llr(x)``, ``state()``, ``from_state(d)``."""

    kind: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Calibrator:
        raise NotImplementedError

    def llr(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Calibrator:
        obj = cls(**params)
        obj._set_state(state)
        return obj

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _logistic_newton(z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, max_iter: int = 100) -> np.ndarray:
    """L2-penalised weighted logistic regression by Newton's method with step halving.

    Minimises ``0.5 |coef|^2 + C sum_i w_i log(1 + exp(-t_i (b + z_i . coef)))`` with
    ``t_i = +-1`` -- scikit-learn's ``LogisticRegression(C=C)`` objective (the
    intercept ``b`` is not penalised).  Returns ``[b, coef...]``.
    """
    n, k = z.shape
    a = np.hstack([np.ones((n, 1)), z])
    t = np.where(y, 1.0, -1.0)
    pen = np.r_[0.0, np.ones(k)] / C
    beta = np.zeros(k + 1)

    def loss(b: np.ndarray) -> float:
        return float(np.sum(w * np.logaddexp(0.0, -t * (a @ b))) + 0.5 * np.sum(pen * b * b))

    cur = loss(beta)
    for _ in range(max_iter):
        m = t * (a @ beta)
        p = np.exp(-np.logaddexp(0.0, m))           # sigmoid(-m)
        grad = -(a.T @ (w * t * p)) + pen * beta
        h = (a.T * (w * p * (1 - p))) @ a + np.diag(pen) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(h, grad)
        s = 1.0
        while s > 1e-10:
            new = beta - s * step
            val = loss(new)
            if val <= cur + 1e-15:
                break
            s /= 2
        done = abs(cur - val) <= 1e-12 * max(1.0, abs(cur))
        beta, cur = new, val
        if done:
            break
    return beta


class LogisticCalibrator(Calibrator):
    """Linear logistic regression: ``llr = (w . x + b) / ln 10``.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength on the standardised scores (the ``C`` of
        scikit-learn's ``LogisticRegression``, whose objective is minimised here by
        Newton's method -- two or three parameters need no general solver).
        Regularisation keeps the slope finite when the reference data are
        perfectly separated (as Fadul's are).
    """

    kind = "logistic"

    def __init__(self, C: float = 1.0) -> None:
        if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
            raise ParameterError(f"C must be a positive number, got {C!r}")
        super().__init__(C=float(C))
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def fit(self, x, y, w=None):
        x2 = x.reshape(len(x), -1)
        w = np.ones(len(x)) if w is None else w
        keep = w > 0
        x2, y, w = x2[keep], y[keep], w[keep]
        mu = np.average(x2, axis=0, weights=w)
        sd = np.sqrt(np.average((x2 - mu) ** 2, axis=0, weights=w))
        sd = np.where(sd > 0, sd, 1.0)
        beta = _logistic_newton((x2 - mu) / sd, y, _balanced(y, w), self.params["C"])
        self.coef = beta[1:] / sd
        self.intercept = float(beta[0] - np.sum(beta[1:] * mu / sd))
        return self

    def llr(self, x):
        x2 = x.reshape(len(x), -1)
        if x2.shape[1] != len(self.coef):
            raise ParameterError(f"this system combines {len(self.coef)} scores per pair, got {x2.shape[1]}")
        return (x2 @ self.coef + self.intercept) / _LN10

    def state(self):
        return {"coef": [float(c) for c in self.coef], "intercept": self.intercept}

    def _set_state(self, state):
        self.coef = np.asarray(state["coef"], dtype=float)
        self.intercept = float(state["intercept"])


def _bandwidth(x: np.ndarray, w: np.ndarray, rule: Any, floor: float) -> float:
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return float(rule)
    n_eff = w.sum() ** 2 / np.sum(w ** 2)
    mu = np.average(x, weights=w)
    sd = math.sqrt(np.average((x - mu) ** 2, weights=w))
    order = np.argsort(x)
    cw = np.cumsum(w[order]) / w.sum()
    q1, q3 = np.interp([0.25, 0.75], cw, x[order])
    iqr = (q3 - q1) / 1.349
    spread = min(sd, iqr) if iqr > 0 else sd
    if rule == "silverman":
        h = 0.9 * spread * n_eff ** -0.2
    else:  # scott
        h = 1.06 * sd * n_eff ** -0.2
    return max(h, floor)


class KDECalibrator(Calibrator):
    """Gaussian kernel density of each class; ``llr = log10 f1(s) - log10 f2(s)``.

    Parameters
    ----------
    bandwidth : {"silverman", "scott"} or float
        Bandwidth rule (per class, on the weighted scores) or a fixed bandwidth in score
        units.  A class whose scores barely vary (e.g. 0 CMCs for almost every
        different-source pair) gets at least ``min_bandwidth`` x the spread of all scores.
        Scores outside the fitted range are evaluated at its nearest end (the ratio of
        two Gaussian tails says nothing about the data).
    min_bandwidth : float
        Floor of the bandwidth as a fraction of the pooled standard deviation.
    """

    kind = "kde"

    def __init__(self, bandwidth: Any = "silverman", min_bandwidth: float = 0.05) -> None:
        if not (bandwidth in ("silverman", "scott") or (isinstance(bandwidth, (int, float))
                                                         and not isinstance(bandwidth, bool) and bandwidth > 0)):
            raise ParameterError(f"bandwidth must be 'silverman', 'scott' or a positive number, got {bandwidth!r}")
        if not (isinstance(min_bandwidth, (int, float)) and 0 < min_bandwidth < 10):
            raise ParameterError(f"min_bandwidth must be in (0, 10), got {min_bandwidth!r}")
        super().__init__(bandwidth=bandwidth, min_bandwidth=float(min_bandwidth))
        self.data: dict[str, np.ndarray] = {}
        self.h: dict[str, float] = {}

    def fit(self, x, y, w=None):
        if x.ndim != 1:
            raise ParameterError("method='kde' takes one score per pair")
        w = np.ones(len(x)) if w is None else w
        keep = w > 0
        x, y, w = x[keep], y[keep], w[keep]
        floor = self.params["min_bandwidth"] * max(float(np.std(x)), 1e-12)
        for key, sel in (("same", y), ("different", ~y)):
            self.data[key] = np.stack([x[sel], w[sel] / w[sel].sum()])
            self.h[key] = _bandwidth(x[sel], w[sel], self.params["bandwidth"], floor)
        return self

    def log10_density(self, x: np.ndarray, key: str) -> np.ndarray:
        """log10 of the fitted density of class ``key`` ("same"/"different") at ``x``."""
        xs, ws = self.data[key]
        h = self.h[key]
        z = (np.asarray(x, dtype=float)[:, None] - xs[None, :]) / h
        ln = logsumexp(-0.5 * z * z, b=ws[None, :], axis=1) - math.log(h * math.sqrt(2 * math.pi))
        return ln / _LN10

    def llr(self, x):
        # outside the scores it was fitted on, a KDE ratio is decided by the kernels'
        # tails (e.g. the wider class wins far below every score): hold it constant there
        lo = min(self.data["same"][0].min(), self.data["different"][0].min())
        hi = max(self.data["same"][0].max(), self.data["different"][0].max())
        xc = np.clip(np.asarray(x, dtype=float), lo, hi)
        return self.log10_density(xc, "same") - self.log10_density(xc, "different")

    def state(self):
        return {k: {"scores": [round(float(v), 8) for v in d[0]], "weights": [float(v) for v in d[1]],
                    "bandwidth": self.h[k]} for k, d in self.data.items()}

    def _set_state(self, state):
        for k in ("same", "different"):
            self.data[k] = np.stack([np.asarray(state[k]["scores"], float), np.asarray(state[k]["weights"], float)])
            self.h[k] = float(state[k]["bandwidth"])


class IsotonicCalibrator(Calibrator):
    """Isotonic regression (PAV) of the label on the score, as log10 LR.

    Parameters
    ----------
    add_misleading : int
        Pseudo-pairs added before the fit: a same-source pair at the lowest score and a
        different-source pair at the highest, ``add_misleading`` of each, so no block
        holds one class only and every LR is finite (as ``lir``'s IsotonicCalibrator).
    """

    kind = "isotonic"

    def __init__(self, add_misleading: int = 1) -> None:
        if not isinstance(add_misleading, (int, np.integer)) or add_misleading < 0:
            raise ParameterError(f"add_misleading must be an integer >= 0, got {add_misleading!r}")
        super().__init__(add_misleading=int(add_misleading))
        self.kx = np.zeros(0)
        self.ky = np.zeros(0)

    def fit(self, x, y, w=None):
        if x.ndim != 1:
            raise ParameterError("method='isotonic' takes one score per pair")
        w = np.ones(len(x)) if w is None else w
        keep = w > 0
        x, y, w = x[keep], y[keep], w[keep]
        m = self.params["add_misleading"]
        if m:
            unit = w.mean()
            x = np.r_[x, [x.min()] * m, [x.max()] * m]
            y = np.r_[y, [True] * m, [False] * m]
            w = np.r_[w, [unit] * (2 * m)]
        bw = _balanced(y, w)
        _, kx, ky = pav(x, y.astype(float), bw)
        with np.errstate(divide="ignore"):
            self.kx, self.ky = kx, np.log10(ky) - np.log10(1 - ky)
        return self

    def llr(self, x):
        if self.ky.size == 1:
            return np.full(len(x), self.ky[0])
        with np.errstate(invalid="ignore"):
            out = np.interp(x, self.kx, self.ky)
        # np.interp mixes +-inf into NaN between knots: fall back to the step value
        bad = np.isnan(out)
        if bad.any():
            idx = np.clip(np.searchsorted(self.kx, x[bad], side="right") - 1, 0, self.kx.size - 1)
            out[bad] = self.ky[idx]
        return out

    def state(self):
        return {"knots_score": [float(v) for v in self.kx],
                "knots_llr": [None if not math.isfinite(v) else float(v) for v in self.ky],
                "knots_llr_inf": [0 if math.isfinite(v) else int(np.sign(v)) for v in self.ky]}

    def _set_state(self, state):
        self.kx = np.asarray(state["knots_score"], float)
        vals = [v if v is not None else s * math.inf for v, s in zip(state["knots_llr"], state["knots_llr_inf"])]
        self.ky = np.asarray(vals, float)


METHODS: dict[str, type[Calibrator]] = {c.kind: c for c in (LogisticCalibrator, KDECalibrator, IsotonicCalibrator)}


def make_calibrator(method: str, **params: Any) -> Calibrator:
    """A calibrator of kind ``method`` ("logistic", "kde", "isotonic") with ``params``."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    try:
        return METHODS[method](**params)
    except TypeError as exc:
        raise ParameterError(f"bad parameters for method={method!r}: {exc}") from exc
