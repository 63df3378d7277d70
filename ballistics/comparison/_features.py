"""The per-direction comparison features (theta x cell table) and angle helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Features", "wrap", "circ_median", "circ_span"]


def wrap(a):
    """Angles (degrees) wrapped to [-180, 180)."""
    return (np.asarray(a, dtype=float) + 180.0) % 360.0 - 180.0


def circ_median(a: np.ndarray) -> float:
    """Median of angles (degrees) that lie within a half circle, robust to the wrap.

    The angles are unwrapped around their circular mean before the ordinary median.
    """
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        return float("nan")
    ref = np.degrees(np.arctan2(np.sin(np.radians(a)).mean(), np.cos(np.radians(a)).mean()))
    return float(wrap(ref + np.median(wrap(a - ref))))


def circ_span(a: np.ndarray) -> float:
    """Length (degrees) of the shortest arc holding all angles."""
    a = np.sort(wrap(np.unique(np.round(np.asarray(a, dtype=float), 9))))
    if a.size <= 1:
        return 0.0
    gaps = np.diff(np.concatenate([a, [a[0] + 360.0]]))
    return float(360.0 - gaps.max())


@dataclass
class Features:
    """Best translation and correlation of every reference cell at every rotation tried.

    Attributes
    ----------
    thetas : numpy.ndarray
        ``(T,)`` rotations of the target, degrees.
    ncc, dy, dx : numpy.ndarray
        ``(T, K)`` best correlation and its translation (full-resolution pixels);
        ``ncc`` is NaN where the cell could not be matched (too little data).
    rc : numpy.ndarray
        ``(K, 2)`` grid row and column of each reference cell.
    boxes : numpy.ndarray
        ``(K, 4)`` ``(r0, c0, h, w)`` of each cell in the reference's pixels.
    """

    thetas: np.ndarray
    ncc: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    rc: np.ndarray
    boxes: np.ndarray

    @property
    def n_cells(self) -> int:
        return int(self.ncc.shape[1])

    def best_per_cell(self) -> tuple[np.ndarray, np.ndarray]:
        """Index of the best rotation for each cell, and a mask of cells matched at all."""
        ok = np.isfinite(self.ncc).any(axis=0)
        filled = np.where(np.isfinite(self.ncc), self.ncc, -np.inf)
        return filled.argmax(axis=0), ok
