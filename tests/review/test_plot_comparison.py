"""Figures of real comparisons of the bundled scans: cells, rotation curve, agreement, regions.

Same-firearm pair: Fadul 1-1 vs 1-2; different-firearm pair: Fadul 1-1 vs 2-1
(tests/review/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import ballistics
from ballistics import datasets
from ballistics.review import plot


def _filled_patches(ax):
    return [p for p in ax.patches if p.get_fill()]


@pytest.mark.parametrize("which", ["same_pair", "diff_pair"])
def test_comparison_figure_marks_every_cell(which, request):
    a, b, cmp = request.getfixturevalue(which)
    direction = next(iter(cmp.directions)) if cmp.directions else "a_to_b"
    sel = [c for c in cmp.cells if c["direction"] == direction]
    n_cong = sum(bool(c["congruent"]) for c in sel)
    fig = plot.comparison(a, b, cmp, direction=direction)
    ref_ax, tgt_ax = fig.axes[0], fig.axes[1]
    assert len(ref_ax.patches) == len(sel)            # every cell outlined on the reference
    assert len(_filled_patches(ref_ax)) == n_cong      # congruent ones filled
    assert len(_filled_patches(tgt_ax)) == n_cong      # ... and drawn on the target too
    numbers = sorted(int(t.get_text().split("\n")[0]) for t in ref_ax.texts
                     if t.get_text().split("\n")[0].isdigit())
    assert numbers == list(range(1, n_cong + 1))
    # the shared colour scale: both height panels use the same limits
    assert ref_ax.get_images()[0].get_clim() == tgt_ax.get_images()[0].get_clim()
    assert a.name in ref_ax.get_title() and b.name in tgt_ax.get_title()
    assert ref_ax.get_xlabel() == "x (mm)"


def test_rotation_curve_figure_shows_the_curve(same_pair):
    _, _, cmp = same_pair
    ax = plot.rotation_curve(cmp)
    lines = [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "")]
    assert len(lines) == len(cmp.rotation_curve)
    for ln, pts in zip(lines, cmp.rotation_curve.values()):
        arr = np.asarray(pts, float)
        arr = arr[np.argsort(arr[:, 0])]
        np.testing.assert_allclose(ln.get_xdata(), arr[:, 0])
        np.testing.assert_allclose(ln.get_ydata(), arr[:, 1])
    assert "degrees" in ax.get_xlabel()


def test_agreement_is_higher_for_the_same_firearm(same_pair, diff_pair):
    def mean_local_corr(a, b, cmp):
        a_al, b_al = plot.aligned_pair(a, b, cmp)
        assert a_al.shape == b_al.shape
        win = int(round(150e-6 / a_al.spacing[1]))
        return float(np.nanmean(plot.local_correlation(a_al.data, b_al.data, win)))

    r_same = mean_local_corr(*same_pair)
    r_diff = mean_local_corr(*diff_pair)
    assert r_same > r_diff + 0.05, (r_same, r_diff)
    fig = plot.agreement(*same_pair)
    assert "um" in fig.axes[2].get_ylabel() or any("um" in a.get_ylabel() for a in fig.axes)



def test_regions_figure_on_found_regions():
    raw = datasets.fadul("raw")[0]
    found = ballistics.find_regions(raw)
    ax = plot.regions(raw, found)
    circles = [p for p in ax.patches if type(p).__name__ == "Circle"]
    assert circles[0].center == pytest.approx((found.centre_m[1] * 1e3, found.centre_m[0] * 1e3))
    assert circles[0].radius == pytest.approx(found.primer_radius_m * 1e3)
    # the extracted scan's region, shifted back, lands on the same circles
    ext = ballistics.extract_breech_face(raw)
    ax2 = plot.regions(raw, ext)
    c2 = [p for p in ax2.patches if type(p).__name__ == "Circle"]
    assert c2[0].center == pytest.approx(circles[0].center, abs=1e-3)   # within 1 um
    assert c2[1].center == pytest.approx(circles[1].center, abs=1e-3)


