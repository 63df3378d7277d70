"""Each comparison kernel against a slow, obviously-correct NumPy twin (random + real data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft as sfft

from ballistics.kernels._cmc_regions import cut_regions
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
