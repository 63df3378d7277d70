"""Feature extraction on the real-scan collection (../shared/data): agreement with cmcR 0.1.11,
consistency across resolutions, 2-D NBIDE images.  Skips cleanly without the collection."""

from __future__ import annotations

import numpy as np
import pytest
from agreement_tool import surface_agreement
from shared_files import shared_path

import ballistics
from ballistics import datasets
from ballistics.features import extract_breech_face, extract_firing_pin, find_regions

pytestmark = [pytest.mark.shared, pytest.mark.slow]

NAMES = ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1"]


@pytest.fixture(scope="module")
def raw_full(shared_data):
    return {n: ballistics.read_scan(shared_path("fadul", "raw", f"{n}.x3p")) for n in NAMES}


@pytest.fixture(scope="module")
def bf_full(raw_full):
    return {n: extract_breech_face(s) for n, s in raw_full.items()}


@pytest.mark.parametrize("name", NAMES)
def test_breech_face_agrees_with_cmcR_0_1_11(bf_full, name):
    """Same raw file, our extraction vs cmcR 0.1.11's: overlap of valid regions and heights.

    Measured (this version, see benchmarks/results_preprocess.md): IoU 0.85 / 0.92 / 0.91,
    correlation 0.92 / 0.94 / 0.93 (0.98 / 0.98 / 0.96 more than 8 px from the region's
    edge: cmcR zero-fills missing data before its Gaussian filter, we use normalised
    convolution, so edges differ).
    """
    ref = ballistics.read_scan(shared_path("fadul", "cmcR_reference", f"{name} processed by cmcR 0.1.11.x3p"))
    bf = bf_full[name]
    assert bf.spacing == pytest.approx(ref.spacing)
    a = surface_agreement(bf.data, ref.data)
    print(f"{name} vs cmcR 0.1.11: IoU {a['iou']:.3f}, corr {a['correlation']:.3f}, "
          f"interior {a['correlation_interior']:.3f}, shift {a['shift']}")
    assert a["iou"] > 0.83
    assert a["correlation"] > 0.90
    assert a["correlation_interior"] > 0.94
    assert 0.9 < a["std_ratio"] < 1.1
    # same crop size as cmcR's, within a few pixels (both: bounding box of the annulus)
    assert abs(bf.shape[0] - ref.shape[0]) < 12 and abs(bf.shape[1] - ref.shape[1]) < 12


@pytest.mark.parametrize("name", NAMES)
def test_breech_face_agrees_with_2020_processed(bf_full, name):
    old = ballistics.read_scan(shared_path("fadul", "processed", f"{name}.x3p"))
    a = surface_agreement(bf_full[name].data, old.data)
    print(f"{name} vs fadul/processed (2020): IoU {a['iou']:.3f}, corr {a['correlation']:.3f}")
    assert a["iou"] > 0.85 and a["correlation"] > 0.90


def test_regions_consistent_across_resolution(raw_full):
    """3.125 um shared scans vs the bundled 6.25 um versions of the same files."""
    bundled = {s.name: s for s in datasets.fadul("raw")}
    for name, full in raw_full.items():
        a, b = find_regions(full), find_regions(bundled[name])
        assert np.allclose(a.centre_m, b.centre_m, atol=15e-6)
        assert abs(a.primer_radius_m - b.primer_radius_m) < 15e-6
        assert np.allclose(a.firing_pin_centre_m, b.firing_pin_centre_m, atol=30e-6)
        assert abs(a.firing_pin_radius_m - b.firing_pin_radius_m) < 30e-6
        assert abs(a.breech_face_inner_radius_m - b.breech_face_inner_radius_m) < 40e-6


def test_firing_pin_full_resolution(raw_full):
    fp = extract_firing_pin(raw_full["Fadul 2-1"])
    assert fp.spacing == (3.125e-6, 3.125e-6)
    assert fp.region["type"] == "firing_pin"
    assert 0.9e-3 < fp.region["outer_radius_m"] < 1.6e-3


@pytest.fixture(scope="module")
def nbide(shared_data):
    paths = sorted(shared_path("nbide_2d").glob("*.png"))
    assert len(paths) == 2
    return [ballistics.read_scan(p) for p in paths]


def test_nbide_2d_regions_and_extraction(nbide):
    regs = [find_regions(s) for s in nbide]
    for s, r in zip(nbide, regs):
        assert s.kind == "intensity" and r.kind == "intensity"
        assert 1.5e-3 < r.primer_radius_m < 2.2e-3
        assert 0.6e-3 < r.firing_pin_radius_m < 1.3e-3
        assert r.breech_face_inner_radius_m < r.breech_face_outer_radius_m
        assert r.confidence > 0.5
    # two test fires from one pistol and one ammunition: same primer size
    assert abs(regs[0].primer_radius_m - regs[1].primer_radius_m) < 0.05 * regs[0].primer_radius_m
    bf = extract_breech_face(nbide[0], regions=regs[0])
    assert bf.kind == "intensity" and bf.spacing == pytest.approx((6.25e-6, 6.25e-6))
    assert bf.provenance.steps[-1]["conditioning"]["level"]["method"].startswith("flat-field")
    assert 0.4 < bf.missing_fraction < 0.8
    fp = extract_firing_pin(nbide[1], regions=regs[1])
    assert fp.kind == "intensity" and fp.region["type"] == "firing_pin"
