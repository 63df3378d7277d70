"""Robust circle fitting: algebraic least squares inside a RANSAC loop.

The primer edge and the firing-pin impression are found as circles fitted to edge
points that carry outliers (ragged data boundaries, debris, the drag mark of the
firing pin).  RANSAC (Fischler & Bolles 1981) rejects them; the best candidate is
then refined on a band around it by the Kasa (1976) algebraic fit re-weighted with
Huber weights of the geometric residuals (IRLS; Huber 1964), so that an irregular rim
is fitted by consensus rather than by one hard inlier cut.

References
----------
Fischler, M. A. & Bolles, R. C. (1981). Random sample consensus. *Comm. ACM* 24(6).
Kasa, I. (1976). A circle fitting procedure and its error analysis. *IEEE Trans.
Instrum. Meas.* 25(1), 8-14.
Huber, P. J. (1964). Robust estimation of a location parameter. *Ann. Math. Stat.* 35(1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Circle", "fit_circle_lsq", "fit_circle_ransac"]


@dataclass(frozen=True)
class Circle:
    """A circle in pixel coordinates of the grid it was fitted on.

    Attributes
    ----------
    cy, cx : float
        Centre (row, column), pixels.
    r : float
        Radius, pixels.
    rms : float
        Root-mean-square geometric residual of the inliers, pixels.
    inlier_fraction : float
        Fraction of the edge points within the RANSAC threshold (0..1).
    coverage : float
        Fraction of the 36 ten-degree sectors around the centre that hold inliers (0..1).
    n_points : int
        Number of edge points offered to the fit.
    outside_fraction : float
        Fraction of the edge points farther than the threshold *outside* the circle
        (for a primer edge these contradict the circle; points inside it may be the
        boundary of a hole that an off-centre scan cuts open).
    """

    cy: float
    cx: float
    r: float
    rms: float = 0.0
    inlier_fraction: float = 1.0
    coverage: float = 1.0
    n_points: int = 0
    outside_fraction: float = 0.0

    @property
    def support(self) -> float:
        """Inliers among the points that are on or outside the circle (0..1)."""
        tot = self.inlier_fraction + self.outside_fraction
        return self.inlier_fraction / tot if tot > 0 else 0.0


def fit_circle_lsq(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through ``pts`` (N x 2, rows ``(y, x)``)."""
    y, x = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    r2 = sol[2] + cx * cx + cy * cy
    return float(cy), float(cx), float(np.sqrt(max(r2, 0.0)))


def _huber_kasa(pts: np.ndarray, c: tuple[float, float, float], scale: float,
                n_iter: int = 6) -> tuple[float, float, float]:
    """Kasa fit re-weighted by Huber weights of the geometric residuals (IRLS)."""
    y, x = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    for _ in range(n_iter):
        d = np.abs(np.hypot(y - c[0], x - c[1]) - c[2])
        w = np.sqrt(1.0 / np.maximum(1.0, d / scale))
        sol, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
        cx, cy = sol[0] / 2.0, sol[1] / 2.0
        c = (float(cy), float(cx), float(np.sqrt(max(sol[2] + cx * cx + cy * cy, 0.0))))
    return c


def _coverage(pts: np.ndarray, cy: float, cx: float) -> float:
    ang = np.arctan2(pts[:, 0] - cy, pts[:, 1] - cx)
    bins = np.floor((ang + np.pi) / (2 * np.pi) * 36).astype(int) % 36
    return float(np.unique(bins).size / 36.0)


def fit_circle_ransac(
    pts: np.ndarray,
    threshold: float,
    r_range: tuple[float, float] = (0.0, np.inf),
    n_trials: int = 300,
    seed: int = 0,
) -> Circle | None:
    """RANSAC circle fit with a radius prior.

    Parameters
    ----------
    pts : numpy.ndarray
        Edge points, N x 2 array of ``(y, x)`` in pixels.
    threshold : float
        Inlier distance from the circle, pixels.
    r_range : (float, float)
        Accepted radii, pixels; candidate circles outside are discarded.
    n_trials : int
        Number of random 3-point samples.
    seed : int
        Seed of the random generator (results are reproducible).

    Returns
    -------
    Circle or None
        The circle with most inliers, refined on them; None if no admissible circle.
    """
    pts = np.asarray(pts, dtype=float)
    n = len(pts)
    if n < 8:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_trials, 3))
    p1, p2, p3 = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    # circumcircle of three points, vectorised over trials
    ax, ay = p1[:, 1], p1[:, 0]
    bx, by = p2[:, 1], p2[:, 0]
    cx_, cy_ = p3[:, 1], p3[:, 0]
    d = 2 * (ax * (by - cy_) + bx * (cy_ - ay) + cx_ * (ay - by))
    ok = np.abs(d) > 1e-9
    d = np.where(ok, d, 1.0)
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx_ * cx_ + cy_ * cy_
    ux = (a2 * (by - cy_) + b2 * (cy_ - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx_ - bx) + b2 * (ax - cx_) + c2 * (bx - ax)) / d
    rr = np.hypot(ax - ux, ay - uy)
    ok &= (rr >= r_range[0]) & (rr <= r_range[1])
    if not ok.any():
        return None
    ux, uy, rr = ux[ok], uy[ok], rr[ok]
    # score candidates on a subsample of points to bound the cost
    sub = pts if n <= 2000 else pts[rng.choice(n, 2000, replace=False)]
    sub = sub.astype(np.float32)
    dist = np.hypot(sub[:, None, 0] - uy[None, :].astype(np.float32),
                    sub[:, None, 1] - ux[None, :].astype(np.float32))
    dist -= rr[None, :].astype(np.float32)
    score = (np.abs(dist) < threshold).sum(axis=0)
    best = int(np.argmax(score))
    c = (float(uy[best]), float(ux[best]), float(rr[best]))
    for _ in range(2):  # robust refinement on a band around the candidate (consensus of modes)
        resid = np.abs(np.hypot(pts[:, 0] - c[0], pts[:, 1] - c[1]) - c[2])
        band = resid < 3 * threshold
        if band.sum() < 5:
            return None
        c = _huber_kasa(pts[band], c, scale=threshold)
    resid = np.hypot(pts[:, 0] - c[0], pts[:, 1] - c[1]) - c[2]
    inl = np.abs(resid) < threshold
    if not (r_range[0] <= c[2] <= r_range[1]) or inl.sum() < 5:
        return None
    return Circle(cy=c[0], cx=c[1], r=c[2], rms=float(np.sqrt(np.mean(resid[inl] ** 2))),
                  inlier_fraction=float(inl.mean()), coverage=_coverage(pts[inl], c[0], c[1]),
                  n_points=int(n), outside_fraction=float((resid >= threshold).mean()))
