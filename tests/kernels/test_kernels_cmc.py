"""Each comparison kernel against a slow, obviously-correct NumPy twin (random + real data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft as sfft

from ballistics.kernels._cmc_regions import cut_planes, cut_regions
from ballistics.kernels._cmc_rotate import rotate_nearest
from ballistics.kernels._ncc import masked_ncc_direct, ncc_from_sums, pairwise_corr_at


# ----------------------------------------------------------------------------- twins
def twin_rotate(img, theta_deg, out_shape=None, centre_in=None, centre_out=None, pad=0):
    out_shape = img.shape if out_shape is None else out_shape
    ci = ((img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2) if centre_in is None else centre_in
    co = ((out_shape[0] - 1) / 2, (out_shape[1] - 1) / 2) if centre_out is None else centre_out
    t = math.radians(theta_deg)
    out = np.full((out_shape[0] + 2 * pad, out_shape[1] + 2 * pad), np.nan)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            di, dj = i - pad - co[0], j - pad - co[1]
            r = math.floor(ci[0] + math.cos(t) * di - math.sin(t) * dj + 0.5)
            c = math.floor(ci[1] + math.cos(t) * dj + math.sin(t) * di + 0.5)
            if 0 <= r < img.shape[0] and 0 <= c < img.shape[1]:
                out[i, j] = img[r, c]
    return out


def twin_pearson(x, y):
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < 2:
        return np.nan, int(m.sum())
    a, b = x[m] - x[m].mean(), y[m] - y[m].mean()
    d = math.sqrt((a * a).sum() * (b * b).sum())
    return (float((a * b).sum() / d) if d > 0 else np.nan), int(m.sum())


def twin_masked_search(cell, region, min_n):
    h, w = cell.shape
    best = (-np.inf, -1, -1)
    for sr in range(region.shape[0] - h + 1):
        for sc in range(region.shape[1] - w + 1):
            r, n = twin_pearson(cell, region[sr:sr + h, sc:sc + w])
            if n >= min_n and np.isfinite(r) and r > best[0]:
                best = (r, sr, sc)
    return best


# ----------------------------------------------------------------------------- inputs
def random_surface(rng, shape, missing=0.3):
    a = rng.normal(size=shape)
    a[rng.random(shape) < missing] = np.nan
    return a


@pytest.fixture(scope="module")
def real_surface():
    from ballistics import datasets
    s = datasets.fadul("processed")[0]
    return s.data[100:220, 380:500] / np.nanstd(s.data)   # a crescent piece with NaN edges


# ----------------------------------------------------------------------------- rotation
@pytest.mark.parametrize("theta", [0.0, 3.0, -21.0, 90.0, 147.5])
def test_rotate_matches_twin_random(theta):
    rng = np.random.default_rng(1)
    img = random_surface(rng, (23, 31))
    got = rotate_nearest(img, theta, pad=3)
    np.testing.assert_array_equal(got, twin_rotate(img, theta, pad=3))


def test_rotate_matches_twin_real(real_surface):
    img = real_surface[:40, :50]
    got = rotate_nearest(img, -24.0, out_shape=(45, 41), centre_in=(20.0, 21.5), centre_out=(22.0, 20.0))
    np.testing.assert_array_equal(got, twin_rotate(img, -24.0, (45, 41), (20.0, 21.5), (22.0, 20.0)))


def test_rotate_zero_is_identity_and_360_too():
    rng = np.random.default_rng(2)
    img = random_surface(rng, (17, 17))
    np.testing.assert_array_equal(rotate_nearest(img, 0.0), img)
    np.testing.assert_array_equal(rotate_nearest(img, 360.0), img)


# ----------------------------------------------------------------------------- regions
@pytest.mark.parametrize("source", ["random", "real"])
def test_cut_regions_matches_twin(source, real_surface):
    rng = np.random.default_rng(3)
    img = random_surface(rng, (60, 70)) if source == "random" else real_surface
    r0s = np.array([-5, 0, 20, 50])
    c0s = np.array([3, -7, 40, 60])
    raw, f, m, frac = cut_regions(img, r0s, c0s, (25, 30), dtype=np.float64)
    pad = 40
    big = np.full((img.shape[0] + 2 * pad, img.shape[1] + 2 * pad), np.nan)
    big[pad:-pad, pad:-pad] = img
    for k in range(4):
        ref = big[r0s[k] + pad:r0s[k] + pad + 25, c0s[k] + pad:c0s[k] + pad + 30]
        np.testing.assert_array_equal(raw[k], ref)
        v = np.isfinite(ref)
        assert frac[k] == pytest.approx(v.mean())
        np.testing.assert_array_equal(m[k], v.astype(float))
        if v.any():
            expect = np.where(v, (ref - np.nanmean(ref)) / (np.nanstd(ref) or 1.0), 0.0)
            np.testing.assert_allclose(f[k], expect, atol=1e-9)


# ----------------------------------------------------------------------------- NCC
def _fft_sums(cells, regions, fshape):
    mc = np.isfinite(cells)
    c0 = np.where(mc, cells, 0.0)
    mr = np.isfinite(regions)
    f0 = np.where(mr, regions, 0.0)
    fw = lambda x: sfft.rfft2(x, s=fshape)  # noqa: E731
    inv = lambda x: sfft.irfft2(x, s=fshape)  # noqa: E731
    C, C2, CM = np.conj(fw(c0)), np.conj(fw(c0 * c0)), np.conj(fw(mc.astype(float)))
    F, F2, FM = fw(f0), fw(f0 * f0), fw(mr.astype(float))
    return inv(C * F), inv(C * FM), inv(C2 * FM), inv(CM * F), inv(CM * F2), inv(CM * FM)


@pytest.mark.parametrize("source", ["random", "real"])
def test_ncc_from_sums_and_direct_match_twin(source, real_surface):
    rng = np.random.default_rng(4)
    h, w, m = 9, 8, 5
    if source == "random":
        regions = np.stack([random_surface(rng, (h + 2 * m, w + 2 * m)) for _ in range(3)])
    else:
        regions = np.stack([real_surface[i:i + h + 2 * m, j:j + w + 2 * m] for i, j in ((0, 0), (30, 40), (60, 10))])
    cells = regions[:, m + 1:m + 1 + h, m - 2:m - 2 + w].copy()     # true shift (m+1, m-2)
    cells[0, :2] = np.nan
    cells[1] += 0.3 * rng.normal(size=cells[1].shape)
    min_n = np.full(3, 30.0)
    fshape = (h + 2 * m, w + 2 * m)
    r, sr, sc, n = ncc_from_sums(*_fft_sums(cells, regions, fshape), (2 * m + 1, 2 * m + 1), min_n)
    rd, srd, scd, nd = masked_ncc_direct(cells, regions, (2 * m + 1, 2 * m + 1), min_n)
    for k in range(3):
        expect = twin_masked_search(cells[k], regions[k], 30)
        if not np.isfinite(expect[0]):
            assert np.isnan(r[k]) and np.isnan(rd[k])
            continue
        assert r[k] == pytest.approx(expect[0], abs=1e-7)
        assert rd[k] == pytest.approx(expect[0], abs=1e-9)
        assert (sr[k], sc[k]) == (expect[1], expect[2]) == (srd[k], scd[k])
    # the exact copies are found at their true shift with correlation 1
    assert r[0] == pytest.approx(1.0) and (sr[0], sc[0]) == (m + 1, m - 2)


def test_ncc_no_admissible_shift_is_nan():
    cells = np.full((1, 4, 4), np.nan)
    cells[0, 0, 0] = 1.0
    regions = np.random.default_rng(5).normal(size=(1, 8, 8))
    r, *_ = masked_ncc_direct(cells, regions, (5, 5), np.array([8.0]))
    assert np.isnan(r[0])


@pytest.mark.parametrize("source", ["random", "real"])
def test_pairwise_corr_matches_twin(source, real_surface):
    rng = np.random.default_rng(6)
    if source == "random":
        regions = np.stack([random_surface(rng, (20, 22)) for _ in range(4)])
    else:
        regions = np.stack([real_surface[i:i + 20, j:j + 22] for i, j in ((0, 0), (40, 30), (80, 80), (5, 90))])
    cells = np.stack([random_surface(rng, (7, 6)) + regions[k, 3:10, 4:10] for k in range(4)])
    sr = np.array([0, 3, 13, 5])
    sc = np.array([0, 4, 16, 2])
    r, n = pairwise_corr_at(cells, regions, sr, sc)
    for k in range(4):
        er, en = twin_pearson(cells[k], regions[k, sr[k]:sr[k] + 7, sc[k]:sc[k] + 6])
        assert n[k] == en
        if np.isfinite(er):
            assert r[k] == pytest.approx(er, abs=1e-10)
        else:
            assert np.isnan(r[k])
    with pytest.raises(ValueError):
        pairwise_corr_at(cells, regions, np.array([14, 0, 0, 0]), sc)


# ----------------------------------------------------------------------------- cmcR-compatible pipeline
from ballistics.comparison._cmcr import cmcr_cells, cmcr_features, split_bounds  # noqa: E402
from ballistics.kernels._cmc_cmcr import ccf_argmax, cut_windows, window_pearson  # noqa: E402


def twin_window(img, r0, c0, nr, nc):
    out = np.full((nr, nc), np.nan)
    for i in range(nr):
        for j in range(nc):
            if 0 <= r0 + i < img.shape[0] and 0 <= c0 + j < img.shape[1]:
                out[i, j] = img[r0 + i, c0 + j]
    return out


@pytest.mark.parametrize("source", ["random", "real"])
def test_cut_windows_matches_twin(source, real_surface):
    rng = np.random.default_rng(5)
    img = random_surface(rng, (60, 70)) if source == "random" else real_surface
    r0s, c0s = np.array([-5, 0, 20, 50]), np.array([3, -7, 40, 60])
    nrs, ncs = np.array([25, 30, 17, 33]), np.array([30, 22, 31, 33])
    f, miss = cut_windows(img, r0s, c0s, nrs, ncs, (40, 41))
    assert f.shape == (4, 40, 41)
    for k in range(4):
        w = twin_window(img, r0s[k], c0s[k], nrs[k], ncs[k])
        v = np.isfinite(w)
        assert miss[k] == pytest.approx(1 - v.mean())
        expect = np.zeros((40, 41))
        if v.sum() > 1:
            expect[:nrs[k], :ncs[k]] = np.where(v, (w - w[v].mean()) / w[v].std(ddof=1), 0.0)
        np.testing.assert_allclose(f[k], expect, atol=1e-9)


def test_cut_windows_into_a_reused_buffer(real_surface):
    """``out=``: the same windows written into a caller's float32 buffer (production path)."""
    r0s, c0s = np.array([-5, 0, 20, 50]), np.array([3, -7, 40, 60])
    nrs, ncs = np.array([25, 30, 17, 33]), np.array([30, 22, 31, 33])
    f, miss = cut_windows(real_surface, r0s, c0s, nrs, ncs, (40, 41), np.float32)
    buf = np.full((4, 40, 41), np.nan, np.float32)
    f2, miss2 = cut_windows(real_surface, r0s, c0s, nrs, ncs, (40, 41), np.float32, out=buf)
    assert f2 is buf and np.array_equal(f, f2) and np.array_equal(miss, miss2)
    with pytest.raises(ValueError, match="out must be"):
        cut_windows(real_surface, r0s, c0s, nrs, ncs, (40, 41), np.float64, out=buf)


@pytest.mark.parametrize("source", ["random", "real"])
def test_ccf_argmax_matches_twin(source, real_surface):
    rng = np.random.default_rng(6)
    K, L0, L1 = 5, 30, 28
    G = rng.normal(size=(K, L0, L1)) if source == "random" else np.stack(
        [np.nan_to_num(real_surface[k * 10:k * 10 + L0, k * 12:k * 12 + L1]) for k in range(K)])
    nrs, ncs = rng.integers(5, 25, K), rng.integers(5, 25, K)
    ir, ic = rng.integers(0, L0, (K, 25)), rng.integers(0, L1, (K, 25))
    a, b = ccf_argmax(G, ir, ic, nrs, ncs)
    for k in range(K):
        win = G[k][np.ix_(ir[k, :nrs[k]], ic[k, :ncs[k]])]
        ea, eb = np.unravel_index(np.argmax(win), win.shape)   # first maximum, row-major
        assert (a[k], b[k]) == (ea, eb)


@pytest.mark.parametrize("source", ["random", "real"])
def test_window_pearson_matches_twin(source, real_surface):
    rng = np.random.default_rng(7)
    img = random_surface(rng, (60, 70)) if source == "random" else real_surface
    cells = random_surface(rng, (4, 20, 21)) if source == "random" else np.stack(
        [real_surface[5 * k:5 * k + 20, 30:51] for k in range(4)])
    hs, ws = np.array([20, 19, 20, 15]), np.array([21, 21, 18, 20])
    r0s, c0s = np.array([-3, 10, 45, 30]), np.array([0, -10, 60, 25])
    r, n = window_pearson(img, cells, hs, ws, r0s, c0s)
    for k in range(4):
        e, en = twin_pearson(cells[k, :hs[k], :ws[k]], twin_window(img, r0s[k], c0s[k], hs[k], ws[k]))
        assert n[k] == en
        assert (np.isnan(r[k]) and np.isnan(e)) or r[k] == pytest.approx(e, abs=1e-9)


def test_split_bounds_is_imsplits_error_diffusion():
    assert np.diff(split_bounds(545, 8)).tolist() == [69] + [68] * 7
    for n, nb in [(545, 8), (546, 8), (549, 8), (100, 7), (9, 9)]:
        assert split_bounds(n, nb).tolist() == [math.ceil(n * j / nb) for j in range(nb + 1)]


# A literal NumPy transcription of cmcR 0.1.11's per-cell steps (comparison_allTogether),
# written from its R source: the twin of ballistics.comparison._cmcr.cmcr_features.
def _r_round(x):
    return np.sign(x) * np.trunc(np.abs(x) + 0.5)


def twin_filter_via_fft(A, B):
    m, n = np.array(A.shape), np.array(B.shape)
    x = m + n - 1
    pa, pb = np.zeros(x), np.zeros(x)
    pa[:m[0], :m[1]], pb[:n[0], :n[1]] = A, B
    C = np.fft.ifft2(np.fft.fft2(pa) * np.conj(np.fft.fft2(pb))).real
    C = np.roll(C, (-int(math.ceil(x[0] / 2)), -int(math.ceil(x[1] / 2))), axis=(0, 1))   # R fftshift
    v = _r_round((n - m) / 2).astype(int)
    C = np.roll(C, (v[0], v[1]), axis=(0, 1))                                                 # circshift
    hm = _r_round(m / 2).astype(int)
    return C[hm[0] - 1:hm[0] - 1 + n[0], hm[1] - 1:hm[1] - 1 + n[1]]


def twin_cmcr_cell(cell, rot, r0, c0, mult=3, max_missing=0.85):
    """(row offset, column offset, correlation) of one cell, or None if its region is dropped."""
    h, w = cell.shape
    xc, yc = (2 * r0 + 1 + h) / 2, (2 * c0 + 1 + w) / 2
    top, bottom = math.floor(xc - mult * h / 2), math.ceil(xc + mult * h / 2)
    left, right = math.floor(yc - mult * w / 2), math.ceil(yc + mult * w / 2)
    reg = twin_window(rot, top - 1, left - 1, bottom - top + 1, right - left + 1)
    if np.isnan(reg).mean() > max_missing:
        return None
    std = lambda z: (z - np.nanmean(z)) / np.nanstd(z, ddof=1)  # noqa: E731
    cs, rs = std(cell), std(reg)
    resp = twin_filter_via_fft(np.nan_to_num(cs), np.nan_to_num(rs))
    ar, ac = np.unravel_index(np.argmax(resp), resp.shape)      # R: column-major on the transpose
    dy, dx = ar - reg.shape[0] // 2, ac - reg.shape[1] // 2

    def span(size, n, d):   # extractTargetCell: rows of the aligned cell in the region (1-based)
        cen = (size + n - 1) // 2 - (d + size // 2 + 1)
        lo, hi = cen - size // 2 + 2, cen + size // 2 + 2
        return lo, hi, max(lo, 1), min(hi, n)

    lo, hi, clo, chi = span(h, reg.shape[0], dy)
    lc, hc, clc, chc = span(w, reg.shape[1], dx)
    if chi - clo + 1 == h and chc - clc + 1 == w:
        sr, sc = clo, clc
    else:
        sr, sc = lo + (hi - lo + 1 > h), lc + (hc - lc + 1 > w)
    tgt = twin_window(rot, top - 1 + sr - 1, left - 1 + sc - 1, h, w)
    return dy, dx, twin_pearson(cs, tgt)[0]


@pytest.mark.parametrize("source", ["random", "real"])
def test_cmcr_features_match_literal_twin(source):
    from ballistics import datasets
    rng = np.random.default_rng(8)
    if source == "random":
        a, b, grid = random_surface(rng, (93, 97), 0.4), random_surface(rng, (95, 92), 0.4), (4, 4)
        thetas = np.array([-6.0, 0.0, 9.0])
    else:
        s = datasets.fadul("processed")
        a, b, grid = s[0].data, s[1].data, (8, 8)
        thetas = np.array([-21.0, 3.0])
    cells = cmcr_cells(a, grid)
    rb, cb = split_bounds(a.shape[0], grid[0]), split_bounds(a.shape[1], grid[1])
    kept = [(i, j) for i in range(grid[0]) for j in range(grid[1])
            if np.isnan(a[rb[i]:rb[i + 1], cb[j]:cb[j + 1]]).mean() <= 0.85]   # maxMissingProp
    assert [tuple(x) for x in cells.rc] == kept
    # float64 and float32 transforms; with a stricter missing-data limit, some regions of
    # a chunk of cells are dropped (the partial-chunk path of _window_peaks)
    for f32, max_missing in ((False, 0.85), (True, 0.85), (True, 0.6)):
        feat = cmcr_features(cells, b, thetas, float32=f32, max_missing=max_missing)
        n_checked = 0
        for t, th in enumerate(thetas):
            c = (b.shape[0] // 2, b.shape[1] // 2)
            rot = twin_rotate(b, th, centre_in=c, centre_out=c)
            for k, (r0, c0, h, w) in enumerate(cells.boxes):
                e = twin_cmcr_cell(a[r0:r0 + h, c0:c0 + w], rot, r0, c0, max_missing=max_missing)
                if e is None:
                    assert np.isnan(feat.ncc[t, k])
                    continue
                n_checked += 1
                assert (feat.dy[t, k], feat.dx[t, k]) == (e[0], e[1])
                assert feat.ncc[t, k] == pytest.approx(e[2], abs=1e-9)
        assert n_checked >= 10


# ----------------------------------------------------------------------------- float32 production path
def test_cut_regions_float32_production_dtype_matches_twin(real_surface):
    """The engine calls cut_regions with its default float32 output: same as the twin at
    float32 precision."""
    r0s, c0s = np.array([-5, 0, 20, 50]), np.array([3, -7, 40, 60])
    raw, f, m, frac = cut_regions(real_surface, r0s, c0s, (25, 30))
    assert f.dtype == np.float32 and m.dtype == np.float32
    pad = 40
    big = np.full((real_surface.shape[0] + 2 * pad, real_surface.shape[1] + 2 * pad), np.nan)
    big[pad:-pad, pad:-pad] = real_surface
    for k in range(4):
        ref = big[r0s[k] + pad:r0s[k] + pad + 25, c0s[k] + pad:c0s[k] + pad + 30]
        v = np.isfinite(ref)
        if v.any():
            expect = np.where(v, (ref - np.nanmean(ref)) / (np.nanstd(ref) or 1.0), 0.0)
            np.testing.assert_allclose(f[k], expect, rtol=0, atol=2e-6)


@pytest.mark.parametrize("rows_first", [False, True])
@pytest.mark.parametrize("theta", [0.0, -21.0])
def test_match_cells_float32_production_path_matches_twin(theta, rows_first, monkeypatch):
    """match_cells as compare() runs it (float32 cells, regions and FFTs) against the
    NumPy twin (float64 pairwise-complete Pearson at every shift) on real Fadul cells,
    in both FFT layouts (real pass along the columns or, for large frames, the rows)."""
    from ballistics import datasets
    from ballistics.comparison import _ncc, prepare
    from ballistics.comparison._ncc import match_cells, region_corners
    monkeypatch.setattr(_ncc, "_ROWS_FIRST_MIN", 0 if rows_first else 10 ** 9)
    s = datasets.fadul("processed")
    ref, tgt = prepare(s[0]).level(4), prepare(s[1]).level(4)
    margin, min_overlap = 5, 0.8
    res = match_cells(ref, tgt, theta, margin, min_valid=0.0, min_overlap=min_overlap, workers=1)
    rot = twin_rotate(tgt.data, theta)
    corners, off = region_corners(ref, tgt, margin)
    h, w = ref.cell_shape
    checked = 0
    for k in range(len(ref.rc)):
        region = twin_window(rot, corners[k, 0], corners[k, 1], h + 2 * margin, w + 2 * margin)
        min_n = max(min_overlap * ref.n_valid[k], 8.0)
        best = twin_masked_search(ref.cells[k], region, min_n)
        if not np.isfinite(best[0]):
            assert np.isnan(res["ncc"][k])
            continue
        checked += 1
        assert res["ncc"][k] == pytest.approx(best[0], abs=2e-4)          # float32 FFT sums
        assert (res["dy"][k], res["dx"][k]) == (best[1] - margin + off[k, 0], best[2] - margin + off[k, 1])
    assert checked >= 15


@pytest.mark.parametrize("source", ["random", "real"])
def test_cut_planes_matches_twin(source, real_surface):
    """The three zero-padded float32 planes (region, its square, mask) the masked FFT
    correlation transforms, against the NumPy twin at float32 precision."""
    rng = np.random.default_rng(9)
    img = random_surface(rng, (60, 70)) if source == "random" else real_surface
    r0s, c0s = np.array([-5, 0, 20, 50]), np.array([3, -7, 40, 60])
    planes, frac = cut_planes(img, r0s, c0s, (25, 30), (27, 32))
    assert planes.shape == (3, 4, 27, 32) and planes.dtype == np.float32
    for k in range(4):
        ref = twin_window(img, r0s[k], c0s[k], 25, 30)
        v = np.isfinite(ref)
        assert frac[k] == pytest.approx(v.mean())
        f = np.zeros((27, 32))
        if v.any():
            f[:25, :30] = np.where(v, (ref - np.nanmean(ref)) / (np.nanstd(ref) or 1.0), 0.0)
        m = np.zeros((27, 32))
        m[:25, :30] = v
        np.testing.assert_allclose(planes[0, k], f, rtol=0, atol=2e-6)
        np.testing.assert_allclose(planes[1, k], f * f, rtol=2e-6, atol=2e-6)
        np.testing.assert_array_equal(planes[2, k], m)
    with pytest.raises(ValueError):
        cut_planes(img, r0s, c0s, (25, 30), (20, 32))
