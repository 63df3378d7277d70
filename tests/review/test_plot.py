"""Figures of ballistics.plot: units, shared colour scales, correct geometry and numbers.

These tests need no comparison engine: they check the drawing helpers against slow,
obviously-correct NumPy versions and against the bundled real scans.  Figures of real
comparisons are in test_plot_comparison.py.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

import ballistics
from ballistics import BallisticsError, EmptyScanError, ParameterError, datasets
from ballistics.review import plot


def test_public_plot_module_is_review_plot():
    assert ballistics.plot is plot


def test_facade_exports_every_figure_family():
    """The façade lists what it has, including every calibration figure that module lists."""
    from ballistics.review import _plot_calibration

    for name in plot.__all__:
        assert hasattr(plot, name), name
    for name in _plot_calibration.__all__:
        assert name in plot.__all__ and getattr(plot, name) is getattr(_plot_calibration, name), name
    for name in ("scan", "virtual_light", "regions", "cells", "comparison", "rotation_curve", "agreement",
                 "score_reference", "roc", "roc_curve", "roc_auc", "hillshade", "local_correlation",
                 "common_limits", "aligned_pair", "figure_to_png"):
        assert name in plot.__all__, name


# --------------------------------------------------------------------- hill-shading
def test_hillshade_lights_the_slope_facing_the_light():
    # a ridge: left flank faces west, right flank faces east
    x = np.linspace(-1, 1, 81)
    z = np.tile(1e-4 * (1 - np.abs(x)), (40, 1))
    west = plot.hillshade(z, (1e-5, 1e-5), azimuth_deg=270, altitude_deg=30)
    east = plot.hillshade(z, (1e-5, 1e-5), azimuth_deg=90, altitude_deg=30)
    left, right = slice(5, 35), slice(46, 76)
    assert np.nanmean(west[:, left]) > np.nanmean(west[:, right]) + 0.3
    assert np.nanmean(east[:, right]) > np.nanmean(east[:, left]) + 0.3
    # azimuth 0 = light from the top of the image: the upper half rises towards the
    # bottom (its slope faces the top) and must be lit, the lower half in shadow
    zy = np.tile(np.linspace(0, 1e-4, 60)[:, None], (1, 30))
    zy = np.vstack([zy, zy[::-1]])
    north = plot.hillshade(zy, (1e-5, 1e-5), azimuth_deg=0, altitude_deg=30)
    assert np.nanmean(north[5:55]) > np.nanmean(north[65:115]) + 0.3


def test_hillshade_keeps_missing_pixels_and_range(sample):
    s = sample[0]
    h = plot.hillshade(s.data, s.spacing, azimuth_deg=45)
    assert h.shape == s.shape
    assert np.array_equal(np.isnan(h), ~s.mask)
    assert np.nanmin(h) >= 0 and np.nanmax(h) <= 1 and np.nanstd(h) > 0.05
    # moving the light changes the rendering
    h2 = plot.hillshade(s.data, s.spacing, azimuth_deg=225)
    assert np.nanmean(np.abs(h - h2)) > 0.05


def test_hillshade_rejects_bad_input():
    with pytest.raises(BallisticsError):
        plot.hillshade(np.zeros((5, 5)), altitude_deg=120)
    with pytest.raises(EmptyScanError):
        plot.hillshade(np.full((5, 5), np.nan))
    with pytest.raises(BallisticsError):
        plot.hillshade(np.zeros(5))


# --------------------------------------------------------------------- local correlation
def _local_corr_slow(x, y, w, min_valid):
    """Obviously-correct twin: loop over pixels, Pearson r on the jointly valid window."""
    H, W = x.shape
    out = np.full((H, W), np.nan)
    h = w // 2
    for i in range(H):
        for j in range(W):
            if not (np.isfinite(x[i, j]) and np.isfinite(y[i, j])):
                continue
            xs = x[max(0, i - h):i + h + 1, max(0, j - h):j + h + 1]
            ys = y[max(0, i - h):i + h + 1, max(0, j - h):j + h + 1]
            m = np.isfinite(xs) & np.isfinite(ys)
            if m.sum() < min_valid * w * w:
                continue
            a, b = xs[m] - xs[m].mean(), ys[m] - ys[m].mean()
            den = np.sqrt((a * a).sum() * (b * b).sum())
            if den > 0:
                out[i, j] = (a * b).sum() / den
    return out


def test_local_correlation_matches_slow_twin_random():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 34))
    y = 0.6 * x + rng.normal(size=x.shape)
    x[rng.random(x.shape) < 0.2] = np.nan
    y[:4, :] = np.nan
    fast = plot.local_correlation(x, y, 7, min_valid=0.5)
    slow = _local_corr_slow(x, y, 7, 0.5)
    both = np.isfinite(fast) & np.isfinite(slow)
    assert both.sum() > 300
    assert np.array_equal(np.isfinite(fast), np.isfinite(slow))
    np.testing.assert_allclose(fast[both], slow[both], atol=1e-8)


def test_local_correlation_real_scan(sample):
    s = sample[2]
    sub = s.data[200:260, 10:70]
    noisy = sub + np.random.default_rng(0).normal(scale=np.nanstd(sub), size=sub.shape)
    fast = plot.local_correlation(sub, noisy, 9)
    slow = _local_corr_slow(sub, noisy, 9, 0.5)
    both = np.isfinite(fast) & np.isfinite(slow)
    assert both.sum() > 100
    np.testing.assert_allclose(fast[both], slow[both], atol=1e-8)
    assert np.nanmean(plot.local_correlation(sub, sub, 9)) > 0.999
    assert np.nanmean(plot.local_correlation(sub, -sub, 9)) < -0.999


# --------------------------------------------------------------------- ROC
def test_roc_curve_against_brute_force():
    rng = np.random.default_rng(1)
    same = rng.integers(0, 30, 20)
    diff = rng.integers(0, 10, 50)
    fpr, tpr, thr = plot.roc_curve(same, diff)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert len(thr) == len(np.unique(np.concatenate([same, diff]))) + 1
    for t, f, p in zip(thr[1:], fpr[1:], tpr[1:]):
        assert f == np.mean([d >= t for d in diff])
        assert p == np.mean([s >= t for s in same])
    # AUC from the figure = Mann-Whitney probability (ties count half)
    ax = plot.roc(same, diff)
    label = ax.get_legend().get_texts()[0].get_text()
    auc_mw = np.mean([(s > d) + 0.5 * (s == d) for s in same for d in diff])
    assert f"AUC = {auc_mw:.3f}" in label


def test_roc_on_tiny_data_by_hand():
    # same = {2, 4}, different = {1, 2, 3}: thresholds inf, 4, 3, 2, 1
    fpr, tpr, thr = plot.roc_curve([4, 2], [1, 3, 2])
    assert thr.tolist() == [np.inf, 4, 3, 2, 1]
    assert tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert fpr.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3, 1])
    # pairs (s, d): (4,1) (4,3) (4,2) win, (2,1) wins, (2,2) ties, (2,3) loses -> 4.5 / 6
    assert plot.roc_auc([4, 2], [1, 3, 2]) == pytest.approx(0.75)
    assert plot.roc_auc([1], [5]) == 0.0 and plot.roc_auc([5], [5]) == 0.5


def test_roc_needs_both_classes_and_finite_scores():
    with pytest.raises(ParameterError):
        plot.roc_curve([], [1, 2])
    with pytest.raises(ParameterError):
        plot.roc_curve([1, np.nan], [1, 2])


# --------------------------------------------------------------------- figures on real scans
def test_scan_figure_units_title_and_extent(sample):
    s = sample[0]
    ax = plot.scan(s)
    assert ax.get_xlabel() == "x (mm)" and ax.get_ylabel() == "y (mm)"
    assert "Fadul 1-1" in ax.get_title()
    im = ax.get_images()[0]
    left, right, bottom, top = im.get_extent()
    assert right - left == pytest.approx(s.shape[1] * s.spacing[1] * 1e3)
    assert bottom - top == pytest.approx(s.shape[0] * s.spacing[0] * 1e3)
    assert im.get_cmap().name == plot.HEIGHT_CMAP
    cbar_labels = [a.get_ylabel() for a in ax.figure.axes if a is not ax]
    assert "height (um)" in cbar_labels
    # heights are shown in micrometres
    np.testing.assert_allclose(np.ma.filled(im.get_array(), np.nan), s.data * 1e6, equal_nan=True)


def test_common_limits_shared_between_scans(sample):
    a, b = sample[0], sample[2]
    lo, hi = plot.common_limits(a, b)
    pooled = np.concatenate([a.data[a.mask], b.data[b.mask]]) * 1e6
    assert (lo, hi) == pytest.approx(tuple(np.percentile(pooled, [1, 99])))
    fig, axs = plt.subplots(1, 2)
    plot.scan(a, ax=axs[0], vmin=lo, vmax=hi)
    plot.scan(b, ax=axs[1], vmin=lo, vmax=hi)
    assert axs[0].get_images()[0].get_clim() == axs[1].get_images()[0].get_clim() == (lo, hi)
    with pytest.raises(EmptyScanError):
        plot.common_limits(ballistics.scan_from_array(np.full((4, 4), np.nan), (1e-6, 1e-6)))


def test_virtual_light_figure(sample):
    s = sample[1]
    ax = plot.virtual_light(s, azimuth_deg=90, altitude_deg=20)
    assert "Fadul 1-2" in ax.get_title() and "azimuth 90" in ax.get_title()
    img = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.ma.filled(img, np.nan),
                               plot.hillshade(s.data, s.spacing, 90, 20), equal_nan=True)


def test_regions_figure_draws_circles_in_mm():
    raw = datasets.fadul("raw")[0]
    found = {"centre_m": (1.9e-3, 1.8e-3), "primer_radius_m": 1.7e-3,
             "firing_pin_centre_m": (1.95e-3, 1.85e-3), "firing_pin_radius_m": 0.55e-3}
    ax = plot.regions(raw, found)
    circles = [p for p in ax.patches if type(p).__name__ == "Circle"]
    assert len(circles) == 2
    assert circles[0].center == pytest.approx((1.8, 1.9)) and circles[0].radius == pytest.approx(1.7)
    assert circles[1].center == pytest.approx((1.85, 1.95)) and circles[1].radius == pytest.approx(0.55)
    # an extracted scan's region is shifted back onto the raw scan
    ext = dict(found, centre_m=(1.0e-3, 1.0e-3), firing_pin_centre_m=(1.05e-3, 1.05e-3),
               source_centre_m=(1.9e-3, 1.8e-3))
    ax = plot.regions(raw, ext)
    circles = [p for p in ax.patches if type(p).__name__ == "Circle"]
    assert circles[1].center == pytest.approx((1.85, 1.95))
    with pytest.raises(BallisticsError):
        plot.regions(raw, {"primer_radius_m": 1e-3})


def test_score_reference_figure_counts():
    ax = plot.score_reference(12, [20, 15, 9], [0, 1, 2, 0, 3, 1, 13])
    text = " ".join(t.get_text() for t in ax.texts)
    assert ">= 12: 2 of 3" in text and ">= 12: 1 of 7" in text
    assert ax.get_xlabel().startswith("congruent matching cells")
    with pytest.raises(BallisticsError):
        plot.score_reference(3, [], [])


def test_figure_functions_reject_non_scans():
    with pytest.raises(BallisticsError):
        plot.scan(np.zeros((4, 4)))


def test_target_cell_box_follows_the_registration_convention(sample):
    """A cell drawn on the target is the reference box mapped by
    ``x_b = c_b + M(theta) (x_a - c_a + t)`` (Comparison's documented convention)."""
    a, b = sample[0], sample[1]
    theta, t = 17.0, np.array([4.0, -9.0])
    th = np.deg2rad(theta)
    M = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c_a = (np.array(a.shape) - 1) / 2
    c_b = (np.array(b.shape) - 1) / 2
    r0, c0, h, w = 100, 300, 60, 50
    centre_a = np.array([r0 + (h - 1) / 2, c0 + (w - 1) / 2])
    cell = {"direction": "a_to_b", "row": 1, "col": 4, "ref_box_px": (r0, c0, h, w),
            "target_centre_px": tuple(c_b + M @ (centre_a - c_a + t)), "rotation_deg": theta,
            "dy_px": t[0], "dx_px": t[1], "ncc": 0.7, "congruent": True}
    ax = plot.cells(b, {"cells": [cell]}, role="target")
    poly = ax.patches[0].get_xy()[:4]                       # (x, y) in mm
    got = poly[:, ::-1] / (np.array(b.spacing) * 1e3)        # (row, col) pixels
    # corners of the reference box (pixel edges), mapped by the convention
    corners = np.array([[r0 - 0.5, c0 - 0.5], [r0 - 0.5, c0 + w - 0.5],
                        [r0 + h - 0.5, c0 + w - 0.5], [r0 + h - 0.5, c0 - 0.5]])
    want = (c_b + (M @ (corners - c_a + t).T).T)
    for p in want:
        assert np.min(np.linalg.norm(got - p, axis=1)) < 1e-6
    # and on the reference the box sits on its pixels
    ax = plot.cells(a, {"cells": [cell]}, role="reference")
    rect = ax.patches[0]
    assert rect.get_x() == pytest.approx((c0 - 0.5) * a.spacing[1] * 1e3)
    assert rect.get_width() == pytest.approx(w * a.spacing[1] * 1e3)


def test_regions_draws_the_firing_pin_hole_last():
    raw = datasets.fadul("raw")[0]
    found = {"centre_m": (1.9e-3, 1.8e-3), "primer_radius_m": 1.7e-3,
             "firing_pin_centre_m": (1.95e-3, 1.85e-3), "firing_pin_radius_m": 0.55e-3,
             "hole_centre_m": (2.0e-3, 1.9e-3), "hole_radius_m": 0.2e-3}
    ax = plot.regions(raw, found, ax=Figure().add_subplot())
    circles = [p for p in ax.patches if type(p).__name__ == "Circle"]
    assert len(circles) == 3
    assert circles[2].center == pytest.approx((1.9, 2.0)) and circles[2].radius == pytest.approx(0.2)


def test_features_plot_regions_saves_png_without_pyplot(tmp_path):
    """The features stage's figure is the review one, saved as PNG, made outside pyplot."""
    from ballistics.features import find_regions
    from ballistics.review.plot import plot_regions

    raw = datasets.fadul("raw")[0]
    reg = find_regions(raw)
    n_pyplot = len(plt.get_fignums())
    out = tmp_path / "regions.png"
    assert plot_regions(raw, reg, out) is None
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plt.get_fignums()) == n_pyplot          # no pyplot figure left behind
    fig = plot_regions(raw, reg, title="check")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "check"
    circles = [p for p in fig.axes[0].patches if type(p).__name__ == "Circle"]
    assert circles[0].radius == pytest.approx(reg.primer_radius_m * 1e3)


def test_figure_to_png_closes_pyplot_figures_only():
    fig = plt.figure()
    assert plt.fignum_exists(fig.number)
    assert plot.figure_to_png(fig)[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)
    assert plot.figure_to_png(plot.new_figure((2, 2)))[:4] == b"\x89PNG"
