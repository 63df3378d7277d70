"""Per-scan work of the cell comparison, done once and reused: cells and their FFTs.

:func:`prepare` turns a :class:`~ballistics.Scan` into a :class:`PreparedScan` that holds,
for each working scale (full resolution and the coarse scale of the 360-degree search):
the grid of cells, each cell standardised over its valid pixels (mean 0, sd 1, NaN kept),
the cells' Fourier transforms for the FFT correlation (cached per FFT shape), and the
rotated copies of the surface used when the scan is the *target* (coarse scale only:
full-resolution rotations are cheap next to the correlations, and would cost memory).

References
----------
Song, J. (2013). Proposed NIST ballistics identification system (NBIS) based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Zemmels, J., Hofmann, H., VanderPlas, S. (2023). Zemmels et al., cmcR (R package):
``comparison_cellDivision``, cells with fewer than ``minObservedProp`` valid pixels dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft as sfft

from .._threads import with_compute_threads
from ..errors import ComparisonError, EmptyScanError
from ..kernels._cmc_rotate import rotate_nearest
from ..scan import Scan

log = logging.getLogger(__name__)

__all__ = ["PreparedScan", "prepare", "Level", "downsample"]


def downsample(data: np.ndarray, factor: int, min_valid: float = 0.5) -> np.ndarray:
    """Block-average ``data`` by ``factor`` ignoring NaN; blocks with fewer than
    ``min_valid`` valid pixels become NaN."""
    if factor <= 1:
        return data
    H, W = data.shape
    h, w = H // factor, W // factor
    a = data[:h * factor, :w * factor].reshape(h, factor, w, factor)
    m = np.isfinite(a)
    cnt = m.sum(axis=(1, 3))
    s = np.where(m, a, 0.0).sum(axis=(1, 3))
    out = np.full((h, w), np.nan)
    ok = cnt >= min_valid * factor * factor
    out[ok] = s[ok] / cnt[ok]
    return out


@dataclass
class Level:
    """The cells of one scan at one scale (``factor`` = downsampling factor)."""

    factor: int
    data: np.ndarray
    grid: tuple[int, int]
    min_valid: float
    cell_shape: tuple[int, int] = (0, 0)
    rc: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))      # (K, 2) grid row, col
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), int))   # (K, 4) r0, c0, h, w
    cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1)))     # (K, h, w) standardised, NaN kept
    n_valid: np.ndarray = field(default_factory=lambda: np.zeros(0))           # (K,) valid pixels per cell
    only: frozenset | None = None      # build exactly these (row, col) cells, no min_valid test
    _fft: dict = field(default_factory=dict, repr=False)
    _rot: dict = field(default_factory=dict, repr=False)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.data.shape[0] - 1) / 2.0, (self.data.shape[1] - 1) / 2.0])

    @property
    def cell_centres(self) -> np.ndarray:
        """(K, 2) cell centres in this level's pixels (row, col)."""
        h, w = self.cell_shape
        return self.boxes[:, :2].astype(float) + np.array([(h - 1) / 2.0, (w - 1) / 2.0])

    def build(self) -> None:
        H, W = self.data.shape
        gr, gc = self.grid
        h, w = -(-H // gr), -(-W // gc)
        self.cell_shape = (h, w)
        padded = np.full((gr * h, gc * w), np.nan)
        padded[:H, :W] = self.data
        rc, boxes, cells, nval = [], [], [], []
        for i in range(gr):
            for j in range(gc):
                if self.only is not None and (i, j) not in self.only:
                    continue
                c = padded[i * h:(i + 1) * h, j * w:(j + 1) * w]
                m = np.isfinite(c)
                n = int(m.sum())
                # validity measured over the cell's area inside the scan (as cmcR)
                area = max(1, min(h, H - i * h) * min(w, W - j * w))
                if n < max(self.min_valid * area if self.only is None else 0.0, 8):
                    continue
                v = c[m]
                sd = v.std()
                if not np.isfinite(sd) or sd <= 0:
                    continue
                rc.append((i, j))
                boxes.append((i * h, j * w, h, w))
                cells.append((c - v.mean()) / sd)
                nval.append(n)
        self.rc = np.array(rc, dtype=int).reshape(-1, 2)
        self.boxes = np.array(boxes, dtype=int).reshape(-1, 4)
        self.cells = np.array(cells, dtype=np.float64).reshape(-1, h, w)
        self.n_valid = np.array(nval, dtype=float)

    def cell_ffts(self, shape: tuple[int, int], workers: int) -> tuple[np.ndarray, ...]:
        """Conjugated FFTs of the zero-filled cells, their squares and masks (cached)."""
        key = tuple(shape)
        with _LOCK:
            hit = self._fft.get(key)
        if hit is not None:
            return hit
        m = np.isfinite(self.cells)
        c0 = np.where(m, self.cells, 0.0).astype(np.float32)
        out = tuple(np.conj(sfft.rfft2(x, s=key, workers=workers))
                    for x in (c0, c0 * c0, m.astype(np.float32)))
        with _LOCK:
            self._fft[key] = out
        return out

    def cell_spectra(self, shape: tuple[int, int], workers: int) -> np.ndarray:
        """As :meth:`cell_ffts` (conjugated FFTs of the zero-filled cells, their squares and
        masks), stacked ``(3, K, L0 // 2 + 1, L1)``: the real transform along the rows, so
        that the inverse's complex pass runs along the contiguous last axis (cached)."""
        key = ("rows", tuple(shape))
        with _LOCK:
            hit = self._fft.get(key)
        if hit is not None:
            return hit
        m = np.isfinite(self.cells)
        c0 = np.where(m, self.cells, 0.0).astype(np.float32)
        x = np.stack((c0, c0 * c0, m.astype(np.float32)))
        out = np.conj(sfft.rfftn(x, s=(shape[1], shape[0]), axes=(-1, -2), workers=workers))
        with _LOCK:
            self._fft[key] = out
        return out

    def rotated(self, theta: float, pad: int, cache: bool) -> np.ndarray:
        """The level's surface rotated by ``theta`` degrees about its centre, NaN-padded."""
        key = (round(float(theta), 6), int(pad))
        if cache:
            with _LOCK:
                hit = self._rot.get(key)
            if hit is not None:
                return hit
        out = rotate_nearest(self.data, theta, pad=pad)
        if cache:
            with _LOCK:
                self._rot[key] = out
        return out


_LOCK = threading.Lock()


@dataclass
class PreparedScan:
    """A scan with its per-scan comparison work done once (cells, cell FFTs, rotations).

    Create with :func:`prepare`; pass to :func:`ballistics.comparison.compare` in place of
    a scan to compare one scan against many without repeating that work.
    """

    scan: Scan
    grid: tuple[int, int]
    min_valid: float
    levels: dict[int, Level] = field(default_factory=dict)
    _checksum: str | None = field(default=None, repr=False)
    _cmcr: Any = field(default=None, repr=False)
    _mirror: PreparedScan | None = field(default=None, repr=False)

    def mirrored(self) -> PreparedScan:
        """The scan mirrored (rows reversed, x3ptools' ``x3p_flip_y``), prepared with the
        same settings; built once and cached (``handedness="both"``)."""
        with _LOCK:
            hit = self._mirror
        if hit is None:
            data = np.ascontiguousarray(self.scan.data[::-1])
            s = self.scan.derive(data, "mirror_rows", {"note": "rows reversed for the handedness check"})
            hit = PreparedScan(scan=s, grid=self.grid, min_valid=self.min_valid)
            hit._mirror = self
            with _LOCK:
                self._mirror = hit
        return hit

    def cmcr(self):
        """The scan's cells as cmcR 0.1.11 cuts them (``preset="cmcr"``; built once)."""
        if self._cmcr is None:
            from ._cmcr import cmcr_cells
            self._cmcr = cmcr_cells(self.scan.data, self.grid, 1.0 - self.min_valid)
        return self._cmcr

    @property
    def name(self) -> str:
        return self.scan.name

    def level(self, factor: int, aligned: bool = False) -> Level:
        """The cells at downsampling ``factor`` (built on first use, then cached).

        ``aligned=True``: exactly the grid cells that full resolution uses (no validity
        test of their own), so that a search at this scale can seed a full-resolution one.
        """
        key = -factor if (aligned and factor != 1) else factor
        with _LOCK:
            lv = self.levels.get(key)
        if lv is None:
            data = self.scan.data if factor == 1 else downsample(self.scan.data, factor)
            only = frozenset((int(r), int(c)) for r, c in self.level(1).rc) if key < 0 else None
            lv = Level(factor=factor, data=data, grid=self.grid, min_valid=self.min_valid, only=only)
            lv.build()
            with _LOCK:
                self.levels[key] = lv
        return lv

    @property
    def checksum(self) -> str:
        """SHA-256 of the scan's array (computed once)."""
        if self._checksum is None:
            self._checksum = self.scan.checksum
        return self._checksum

    def describe(self) -> dict[str, Any]:
        lv = self.level(1)
        return {"name": self.name, "grid": list(self.grid), "cells_valid": int(len(lv.rc)),
                "cell_shape_px": list(lv.cell_shape)}


@with_compute_threads()
def prepare(scan: Scan | PreparedScan, cell_grid: tuple[int, int] = (8, 8),
            min_valid: float = 0.15) -> PreparedScan:
    """Precompute the per-scan part of the cell comparison (reusable across comparisons).

    Parameters
    ----------
    scan : Scan or PreparedScan
        An extracted breech-face (or firing-pin) surface, heights in metres.  A
        ``PreparedScan`` with the same settings is returned unchanged.
    cell_grid : tuple of int
        Number of cells ``(rows, columns)`` the scan's bounding box is split into
        (default 8 x 8, as Song 2013 / cmcR).
    min_valid : float
        Minimum fraction of valid pixels for a cell to be used (default 0.15, cmcR's
        ``minObservedProp``).

    Returns
    -------
    PreparedScan

    Raises
    ------
    EmptyScanError
        If the scan has no cell with enough valid data.

    References
    ----------
    Song (2013); Zemmels, Hofmann & VanderPlas, cmcR ``comparison_cellDivision``.
    """
    if isinstance(scan, PreparedScan):
        if tuple(scan.grid) == tuple(cell_grid) and scan.min_valid == min_valid:
            return scan
        scan = scan.scan
    if not isinstance(scan, Scan):
        raise ComparisonError(f"compare() needs ballistics.Scan objects, got {type(scan).__name__}; "
                              "read files with ballistics.read_scan().")
    try:
        g = (int(cell_grid[0]), int(cell_grid[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ComparisonError(f"cell_grid must be (rows, cols), got {cell_grid!r}") from exc
    if min(g) < 1 or not (0.0 < float(min_valid) <= 1.0):
        raise ComparisonError(f"cell_grid must be positive and min_valid in (0, 1]; got {cell_grid!r}, {min_valid!r}")
    scan.require_valid(0.0, "surface")
    if min(scan.shape) < 4 * max(g):
        raise EmptyScanError(f"The surface {scan.name!r} ({scan.shape[0]} x {scan.shape[1]} px) is too small "
                             f"for a {g[0]} x {g[1]} cell grid; use a coarser grid.")
    p = PreparedScan(scan=scan, grid=g, min_valid=float(min_valid))
    lv = p.level(1)
    if len(lv.rc) == 0:
        raise EmptyScanError(f"The surface {scan.name!r} has no cell with at least {100 * min_valid:.0f} % "
                             "valid pixels; it holds too little measured data to compare.")
    return p


