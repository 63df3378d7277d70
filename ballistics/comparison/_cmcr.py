"""cmcR 0.1.11's cell comparison, step for step (the pipeline of ``preset="cmcr"``).

What cmcR's ``comparison_allTogether`` does at one rotation, and how it is reproduced here
(the numbered differences were each measured on the Fadul reference pairs, see
``benchmarks/results_compare.md`` section 3):

1. Cells: ``imager::imsplit`` cuts each axis into 8 blocks with CImg's error-diffusion
   rule (545 px -> 69, 68, 68, 68, 68, 68, 68, 68), :func:`split_bounds`.  Cells with more
   than 85 % missing pixels are dropped.
2. Regions: the cell's centre +- 3/2 of its side in the *unaligned* target frame (same
   pixel indices as in the reference: top-left alignment), cut from the target rotated
   by nearest neighbour about ``floor(n / 2)``; pixels outside the target are missing.
   Regions with more than 85 % missing pixels are dropped.
3. Cell and region standardised (mean, sd) over their valid pixels, missing set to 0;
   translation = arg-max of the zero-padded linear FFT cross-correlation over a window of
   the region's size around its centre (cartridges3D's ``filterViaFFT``).
4. Correlation: the pairwise-complete Pearson correlation of the cell with the same-sized
   window of the rotated target at that translation (``comparison_alignedTargetCell``;
   one window, shifted by cmcR's fixed +2 / +1 px offsets reproduced exactly).

cmcR stores surfaces transposed (x3ptools: rows = x); every step is symmetric under the
transpose except the arg-max tie order (R's column-major = row-major here) and the names:
cmcR's ``x`` is our row offset, its ``y`` our column offset.

References
----------
Zemmels, Hofmann, VanderPlas (2023). "A study in reproducibility: the Congruent Matching
Cells algorithm and cmcR package". R Journal; cmcR 0.1.11.  Song (2013) AFTE J. 45(2).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ..errors import EmptyScanError
from ..kernels._cmc_cmcr import ccf_argmax, cut_windows, window_pearson
from ..kernels._cmc_rotate import rotate_nearest
from ._features import Features

__all__ = ["split_bounds", "CmcrCells", "cmcr_cells", "cmcr_features"]

_LOCK = threading.Lock()
# cells per batch of transforms (see _window_peaks)
_CHUNK = 4


def split_bounds(n: int, nb: int) -> np.ndarray:
    """Block boundaries of ``imager::imsplit(nb = nb)`` along an axis of ``n`` pixels.

    CImg's ``get_split`` with a number of blocks distributes the remainder by error
    diffusion: for ``n = 545, nb = 8`` the blocks are 69, 68, ..., 68 pixels.
    """
    if not 1 <= nb <= n:
        raise ValueError(f"cannot split {n} pixels into {nb} blocks")
    b, err = [0], n
    for p in range(n):
        err -= nb
        if err <= 0:
            b.append(p + 1)
            err += n
    return np.array(b, dtype=np.int64)


def _round2(x):
    """MATLAB's round (half away from zero), as cartridges3D's ``round2``."""
    return np.sign(x) * np.trunc(np.abs(x) + 0.5)


@dataclass
class CmcrCells:
    """A reference scan's cells as cmcR cuts them (step 1), with their spectra cached."""

    shape: tuple[int, int]
    rc: np.ndarray        # (K, 2) block row, column
    boxes: np.ndarray     # (K, 4) r0, c0, h, w
    cells: np.ndarray     # (K, H, W) standardised, NaN kept, NaN-padded to the largest cell
    zero: np.ndarray      # (K, H, W) standardised, 0 where missing / padding
    _fft: dict = field(default_factory=dict, repr=False)

    def spectra(self, frame: tuple[int, int], index: np.ndarray, shift_r: np.ndarray, shift_c: np.ndarray,
                workers: int, dtype=np.complex128) -> np.ndarray:
        """``conj(rfft2)`` of cells ``index``, each placed in an ``frame``-sized zero frame
        with its first pixel at ``(shift_r[i], shift_c[i])`` (mod the frame); cached.

        Shifting the cell by ``-q`` shifts the circular cross-correlation by ``q``, so a
        CCF window starting at offset ``q`` starts at index 0 of the correlation.
        """
        key = (tuple(frame), index.tobytes(), shift_r.tobytes(), shift_c.tobytes(), np.dtype(dtype).str)
        with _LOCK:
            hit = self._fft.get(key)
        if hit is None:
            _, h, w = self.zero.shape
            z = np.zeros((len(index), frame[0], frame[1]))
            rows = (np.arange(h)[None, :] + shift_r[:, None]) % frame[0]
            cols = (np.arange(w)[None, :] + shift_c[:, None]) % frame[1]
            for i, k in enumerate(index):
                z[i][np.ix_(rows[i], cols[i])] = self.zero[k]
            hit = np.conj(sfft.rfft2(z, workers=workers)).astype(dtype)
            with _LOCK:
                self._fft[key] = hit
        return hit


def cmcr_cells(data: np.ndarray, grid: tuple[int, int] = (8, 8), max_missing: float = 0.85) -> CmcrCells:
    """Cut a reference surface into cmcR's cells (steps 1 and 3 of the module docstring).

    Parameters
    ----------
    data : numpy.ndarray
        Heights (any unit), NaN missing.
    grid : tuple of int
        Blocks along rows and columns (cmcR ``numCells = c(8, 8)``).
    max_missing : float
        Cells with a larger missing fraction are dropped (cmcR ``maxMissingProp``).

    Returns
    -------
    CmcrCells

    Raises
    ------
    EmptyScanError
        No cell has enough valid pixels.
    """
    H, W = data.shape
    rb, cb = split_bounds(H, grid[0]), split_bounds(W, grid[1])
    hmax, wmax = int(np.diff(rb).max()), int(np.diff(cb).max())
    rc, boxes, cells = [], [], []
    for i in range(grid[0]):
        for j in range(grid[1]):
            c = data[rb[i]:rb[i + 1], cb[j]:cb[j + 1]]
            m = np.isfinite(c)
            if m.sum() < 2 or 1.0 - m.mean() > max_missing:
                continue
            v = c[m]
            sd = v.std(ddof=1)
            if not sd > 0:
                continue
            z = np.full((hmax, wmax), np.nan)
            z[:c.shape[0], :c.shape[1]] = (c - v.mean()) / sd
            rc.append((i, j))
            boxes.append((rb[i], cb[j], c.shape[0], c.shape[1]))
            cells.append(z)
    if not cells:
        raise EmptyScanError("No cell of the surface has at least "
                             f"{100 * (1 - max_missing):.0f} % valid pixels; it holds too little data to compare.")
    cells_a = np.array(cells)
    return CmcrCells(shape=(H, W), rc=np.array(rc, dtype=int), boxes=np.array(boxes, dtype=np.int64),
                     cells=cells_a, zero=np.nan_to_num(cells_a, nan=0.0))


def _axis_geometry(start: np.ndarray, size: np.ndarray, mult: float):
    """Per cell along one axis: region start (0-based) and size, the region index of each
    CCF-window position's cell offset (``s``), and the constants of the aligned cell."""
    centre = (2 * start + 1 + size) / 2.0                           # 1-based centre of the cell
    lo = np.floor(centre - mult * size / 2.0).astype(np.int64)      # 1-based, may be <= 0
    hi = np.ceil(centre + mult * size / 2.0).astype(np.int64)
    n = hi - lo + 1
    x = size + n - 1
    v = _round2((n - size) / 2.0).astype(np.int64)
    hm = _round2(size / 2.0).astype(np.int64)
    C = hm - 1 - v + np.ceil(x / 2.0).astype(np.int64)              # k(a) = a + C (mod x), s = -k
    return lo - 1, n, x, C


def _offsets(a: np.ndarray, n: np.ndarray, x: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Offset ``s`` (region pixel of the cell's first pixel) of CCF-window position ``a``."""
    s = (-(a + C)) % x
    return np.where(s <= n - 1, s, s - x)


def _aligned_start(size, n, d, clamp_ok):
    """0-based region index of the aligned target cell's first pixel (cmcR 0.1.11
    ``extractTargetCell``: the window centred ``d`` px from the padded region's centre,
    moved by +2 px, the first of the ``2 floor(size/2) + 1`` rows dropped when ``size`` is
    even; when clamping to the region already gives ``size`` pixels on both axes, the
    clamped window)."""
    ac = (size + n - 1) // 2 - (d + size // 2 + 1)
    lo, hi = ac - size // 2 + 2, ac + size // 2 + 2                # 1-based
    clo = np.maximum(lo, 1)
    general = np.where(hi - lo + 1 > size, lo + 1, lo)
    return np.where(clamp_ok, clo, general) - 1, clo, np.minimum(hi, n)


def _window_peaks(rot: np.ndarray, rstart: np.ndarray, cstart: np.ndarray, nr: np.ndarray, nc: np.ndarray,
                  FA: np.ndarray, ir: np.ndarray, ic: np.ndarray, L: tuple[int, int], max_missing: float,
                  buf: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut every cell's region from ``rot`` and find its CCF peak (steps 2 and 3).

    Region ``k`` (``rot[rstart:rstart+nr, cstart:cstart+nc]``, standardised, zero-padded to
    ``L[1]`` columns) is cross-correlated with the cell of conjugate spectrum ``FA[k]``
    over an ``L`` frame by axes: the real pass over the region's rows only, the complex
    pass padded to ``L[0]`` rows, the inverse real pass only over the window's rows.  In
    chunks of ``buf.shape[0]`` cells cut into ``buf``, so that a chunk's regions,
    transforms and arg-max stay in the cache (measured 15 % faster than one batch).

    Returns
    -------
    a_r, a_c : numpy.ndarray
        ``(K,)`` window position of the row-major first maximum (0 for dropped regions).
    miss : numpy.ndarray
        ``(K,)`` missing fraction of each region; regions above ``max_missing`` are dropped.
    """
    K, chunk = len(nr), buf.shape[0]
    a_r, a_c, miss = np.zeros(K, np.int64), np.zeros(K, np.int64), np.empty(K)
    for s in range(0, K, chunk):
        e = min(s + chunk, K)
        f = buf[:e - s]
        f, miss[s:e] = cut_windows(rot, rstart[s:e], cstart[s:e], nr[s:e], nc[s:e], buf.shape[1:], buf.dtype,
                                   out=f)
        ok = np.flatnonzero(miss[s:e] <= max_missing)
        if ok.size == 0:
            continue
        sel = slice(s, e) if ok.size == e - s else s + ok
        hr = int(nr[sel].max())
        X = sfft.rfft(f[:, :hr] if ok.size == e - s else f[ok, :hr], axis=-1, workers=workers)
        X = sfft.fft(X, n=L[0], axis=-2, workers=workers, overwrite_x=True)
        X *= FA[sel]
        X = sfft.ifft(X, axis=-2, workers=workers, overwrite_x=True)
        G = sfft.irfft(X[:, :hr], n=L[1], axis=-1, workers=workers)
        # the CCF window: rows ir[k, a], columns ic[k, b], a < nr[k], b < nc[k]
        a_r[sel], a_c[sel] = ccf_argmax(G, ir[sel], ic[sel], nr[sel], nc[sel])
    return a_r, a_c, miss


def cmcr_features(ref: CmcrCells, target: np.ndarray, thetas: np.ndarray, region_multiplier: float = 3.0,
                  max_missing: float = 0.85, workers: int = 2, float32: bool = False) -> Features:
    """cmcR 0.1.11's cell features of one direction (``comparison_allTogether`` per theta).

    Parameters
    ----------
    ref : CmcrCells
        Reference cells (:func:`cmcr_cells`).
    target : numpy.ndarray
        Target heights, NaN missing, same pixel spacing.
    thetas : numpy.ndarray
        Rotations of the target, degrees (the sign convention of :mod:`..kernels._cmc_rotate`).
    region_multiplier : float
        Region side / cell side (cmcR ``sideLengthMultiplier = 3``).
    max_missing : float
        Regions with a larger missing fraction are dropped (cmcR ``maxMissingProp``).
    workers : int
        Threads of ``scipy.fft``.
    float32 : bool
        Single-precision FFTs (faster; may flip an arg-max between near-equal peaks).

    Returns
    -------
    Features
        ``dy``/``dx`` are cmcR's translations (its ``x`` and ``y``), pixels; ``ncc`` its
        ``pairwiseCompCor``; NaN for dropped cells.

    References
    ----------
    Zemmels, Hofmann & VanderPlas, cmcR 0.1.11 ``comparison_allTogether``; Tai & Eddy,
    cartridges3D ``filterViaFFT``.
    """
    K = len(ref.rc)
    r0, c0, h, w = (ref.boxes[:, i] for i in range(4))
    rstart, nr, xr, Cr = _axis_geometry(r0, h, region_multiplier)
    cstart, nc, xc, Cc = _axis_geometry(c0, w, region_multiplier)
    HR, WR = int(nr.max()), int(nc.max())
    # CCF-window positions a -> cell offsets s; frame large enough for a linear correlation
    ar, ac_ = np.arange(HR)[None, :], np.arange(WR)[None, :]
    sr = _offsets(ar, nr[:, None], xr[:, None], Cr[:, None])
    sc = _offsets(ac_, nc[:, None], xc[:, None], Cc[:, None])
    vr, vc = ar < nr[:, None], ac_ < nc[:, None]
    # the smallest fast frame per cell and axis for a linear correlation over its window
    # (cells of different frames are transformed separately: 240 for most Fadul cells, 243
    # for the 69-pixel first block row / column; measured 4 % faster than 243 for all)
    need_r = np.maximum(np.where(vr, nr[:, None] - sr, 0).max(1), np.where(vr, sr + h[:, None], 0).max(1))
    need_c = np.maximum(np.where(vc, nc[:, None] - sc, 0).max(1), np.where(vc, sc + w[:, None], 0).max(1))
    fast = {int(n): sfft.next_fast_len(int(n), real=True) for n in np.unique(np.r_[need_r, need_c])}
    Lk = np.array([[fast[int(a)], fast[int(b)]] for a, b in zip(need_r, need_c)], dtype=np.int64).reshape(K, 2)
    # window position a reads offset s = sr[k, a]; the offsets of a window are the n_k
    # consecutive integers from q_k = min s, so with the cell spectra shifted by q_k the
    # window is the correlation's first n_k rows / columns (ir, ic: a permutation of them)
    big = np.iinfo(np.int64).max
    q_r, q_c = np.where(vr, sr, big).min(1), np.where(vc, sc, big).min(1)
    ir, ic = np.where(vr, sr - q_r[:, None], 0), np.where(vc, sc - q_c[:, None], 0)
    if (ir >= nr[:, None]).any() or (ic >= nc[:, None]).any():
        raise AssertionError("cmcR's CCF window is not a run of consecutive offsets")
    cdt, rdt = (np.complex64, np.float32) if float32 else (np.complex128, np.float64)
    groups = []
    for L0, L1 in np.unique(Lk, axis=0):
        g = np.flatnonzero((Lk[:, 0] == L0) & (Lk[:, 1] == L1))
        L = (int(L0), int(L1))
        groups.append((g, L, ref.spectra(L, g, q_r[g], q_c[g], workers, cdt), (rstart[g], cstart[g], nr[g], nc[g]),
                       ir[g], ic[g], np.empty((min(_CHUNK, g.size), int(nr[g].max()), L[1]), rdt)))
    H, W = target.shape
    centre = (H // 2, W // 2)                      # imager::imrotate(cx = floor(nrow / 2), ...)
    T = len(thetas)
    ncc, dy, dx = np.full((T, K), np.nan), np.zeros((T, K)), np.zeros((T, K))
    a_r, a_c, miss = np.zeros(K, np.int64), np.zeros(K, np.int64), np.empty(K)
    for t, th in enumerate(thetas):
        rot = rotate_nearest(target, float(th), centre_in=centre, centre_out=centre)
        for g, L, FA, geom, ir_g, ic_g, buf in groups:
            a_r[g], a_c[g], miss[g] = _window_peaks(rot, *geom, FA, ir_g, ic_g, L, max_missing, buf, workers)
        keep = np.flatnonzero(miss <= max_missing)
        if keep.size == 0:
            continue
        d_r = a_r[keep] - nr[keep] // 2
        d_c = a_c[keep] - nc[keep] // 2
        # the aligned target cell (cmcR 0.1.11 extractTargetCell) and its correlation
        st_r, clo_r, chi_r = _aligned_start(h[keep], nr[keep], d_r, False)
        st_c, clo_c, chi_c = _aligned_start(w[keep], nc[keep], d_c, False)
        clamp_ok = (chi_r - clo_r + 1 == h[keep]) & (chi_c - clo_c + 1 == w[keep])
        st_r = _aligned_start(h[keep], nr[keep], d_r, clamp_ok)[0]
        st_c = _aligned_start(w[keep], nc[keep], d_c, clamp_ok)[0]
        cells = ref.cells if keep.size == K else ref.cells[keep]
        r, _ = window_pearson(rot, cells, h[keep], w[keep], rstart[keep] + st_r, cstart[keep] + st_c)
        ncc[t, keep], dy[t, keep], dx[t, keep] = r, d_r, d_c
    boxes = ref.boxes.astype(int)
    return Features(np.asarray(thetas, float), ncc, dy, dx, ref.rc, boxes)


def native_translation(feat_boxes: np.ndarray, dy: np.ndarray, dx: np.ndarray, region_multiplier: float = 3.0):
    """Translation of each cell's window in the rotated target from the cell's own place
    (pixels, row and column), from cmcR's ``(x, y)``: ``window start - cell start``.

    Used for reporting only (the decision rules use cmcR's values, as cmcR).
    """
    r0, c0, h, w = (feat_boxes[:, i] for i in range(4))
    rstart, nr, _, _ = _axis_geometry(r0, h, region_multiplier)
    cstart, nc, _, _ = _axis_geometry(c0, w, region_multiplier)
    dyi, dxi = np.asarray(dy).astype(np.int64), np.asarray(dx).astype(np.int64)
    st_r = _aligned_start(h, nr, dyi, False)[0]
    st_c = _aligned_start(w, nc, dxi, False)[0]
    return rstart + st_r - r0, cstart + st_c - c0


def rotation_centre(shape: tuple[int, int]) -> np.ndarray:
    """cmcR's rotation centre ``floor(n / 2)`` (0-based pixels)."""
    return np.array([shape[0] // 2, shape[1] // 2], float)

