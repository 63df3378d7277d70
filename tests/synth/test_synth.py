"""Synthetic cartridge cases: seeded, with ground truth, statistically like real scans."""

from __future__ import annotations

import numpy as np
import pytest

import ballistics
from ballistics import datasets, synth


def test_seeded_and_reproducible():
    fa = synth.make_firearm(3)
    a, ta = synth.fire(fa, 11)
    b, tb = synth.fire(synth.make_firearm(3), 11)
    np.testing.assert_array_equal(a.data, b.data)
    assert ta == tb
    c, _ = synth.fire(fa, 12)
    assert not np.array_equal(np.nan_to_num(a.data), np.nan_to_num(c.data))


def test_ground_truth_rotation_is_applied():
    """A shot fired at 0 deg and one at 90 deg carry the same marks, 90 deg apart."""
    fa = synth.make_firearm(5)
    kw = dict(shift_px=(0, 0), mark_strength=1.0, noise=0.0, dropout=0.0, pits=0.0)
    a, _ = synth.fire(fa, 1, rotation_deg=0.0, **kw)
    b, _ = synth.fire(fa, 1, rotation_deg=90.0, **kw)
    both = a.mask & np.rot90(b.mask, k=-1)
    r_right = np.corrcoef(a.data[both], np.rot90(b.data, k=-1)[both])[0, 1]
    both2 = a.mask & b.mask
    r_wrong = np.corrcoef(a.data[both2], b.data[both2])[0, 1]
    assert r_right > 0.95 and abs(r_wrong) < 0.5


def test_same_firearm_correlates_more_than_different():
    f1, f2 = synth.make_firearm(1), synth.make_firearm(2)
    kw = dict(rotation_deg=0.0, shift_px=(0, 0))
    a, _ = synth.fire(f1, 1, **kw)
    b, _ = synth.fire(f1, 2, **kw)
    c, _ = synth.fire(f2, 3, **kw)

    def r(x, y):
        m = x.mask & y.mask
        return np.corrcoef(x.data[m], y.data[m])[0, 1]

    assert r(a, b) > 0.4 > abs(r(a, c))


def test_statistics_resemble_bundled_real_scans():
    real = [synth.surface_statistics(s) for s in datasets.fadul("processed")]
    lo = {k: min(r[k] for r in real) for k in real[0]}
    hi = {k: max(r[k] for r in real) for k in real[0]}
    for s in synth.make_collection(3, 2, seed=4):
        st = synth.surface_statistics(s)
        assert 0.5 * lo["sq_m"] <= st["sq_m"] <= 1.5 * hi["sq_m"]
        assert 0.5 * lo["median_slope"] <= st["median_slope"] <= 2.0 * hi["median_slope"]
        assert lo["missing_fraction"] - 0.1 <= st["missing_fraction"] <= hi["missing_fraction"] + 0.1
        assert -1.5 <= st["kurtosis"] <= 1.5 * hi["kurtosis"]


def test_collection_labels():
    scans = synth.make_collection(2, 3, seed=1)
    assert [s.metadata["firearm"] for s in scans] == ["synthetic-1-0"] * 3 + ["synthetic-1-1"] * 3
    assert all(s.spacing == (6.25e-6, 6.25e-6) for s in scans)


def test_canvas_too_small():
    with pytest.raises(ballistics.ParameterError, match="too small"):
        synth.fire(synth.make_firearm(1, size_px=300), 1, size_px=560)
