"""Signatures (ballistics.retrieval.signature): shape, invariances, twins of the building blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ballistics import BallisticsError, EmptyScanError, datasets
from ballistics.reading import scan_from_array
from ballistics.retrieval import SIGNATURE_PARAMS, signature, signature_dim
from ballistics.retrieval import _signature as sg


@pytest.fixture(scope="module")
def sample():
    return datasets.fadul("processed")


@pytest.fixture(scope="module")
def sigs(sample):
    return np.array([signature(s) for s in sample])


def _rotate(scan, angle_deg):
    """Rotate a scan's heights (NaN kept as missing) about the array centre."""
    z = scan.data
    m = np.isfinite(z).astype(float)
    zr = ndimage.rotate(np.where(m > 0, z, 0.0), angle_deg, reshape=True, order=1, cval=0.0)
    mr = ndimage.rotate(m, angle_deg, reshape=True, order=1, cval=0.0)
    out = np.where(mr > 0.99, zr / np.maximum(mr, 1e-9), np.nan)
    return scan.derive(out, "test_rotate", {"angle_deg": angle_deg})


def test_signature_shape_norm_and_determinism(sample, sigs):
    assert sigs.shape == (len(sample), signature_dim())
    assert sigs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sigs, axis=1), 1.0, atol=1e-5)
    again = signature(sample[0])
    np.testing.assert_array_equal(again, sigs[0])
    # different surfaces give different vectors
    assert np.max(np.abs(sigs[0] - sigs[1])) > 1e-3


def test_mate_is_nearest_for_bundled_pairs(sigs, sample):
    """Fadul 1-1's nearest neighbour among the six is its same-slide mate 1-2 (measured: it is)."""
    sim = sigs @ sigs.T
    np.fill_diagonal(sim, -np.inf)
    labels = [s.metadata["firearm"] for s in sample]
    nn = np.argmax(sim, axis=1)
    hits = sum(labels[i] == labels[j] for i, j in enumerate(nn))
    assert labels[nn[0]] == labels[0]
    assert hits >= 3  # far above the 1/5 expected by chance


@pytest.mark.parametrize("angle", [90.0, 37.0, -143.0])
def test_rotation_invariance(sample, sigs, angle):
    """A rotated copy stays far closer to the original than any other scan is."""
    rot = signature(_rotate(sample[0], angle))
    cos_self = float(rot @ sigs[0])
    cos_others = sigs[1:] @ rot
    assert cos_self > 0.35, cos_self  # measured 0.44-0.88 (interpolation blurs texture)
    assert cos_self > cos_others.max() + 0.2


def test_translation_and_missing_data(sample, sigs):
    s = sample[2]
    z = s.data
    shifted = np.full((z.shape[0] + 40, z.shape[1] + 70), np.nan)
    shifted[40:, 70:] = z
    v_shift = signature(s.derive(shifted, "test_shift", {}))
    assert float(v_shift @ sigs[2]) > 0.8
    # remove a quarter of the surface (partial overlap)
    cut = z.copy()
    cut[: z.shape[0] // 2, : z.shape[1] // 2] = np.nan
    v_cut = signature(s.derive(cut, "test_cut", {}))
    others = np.delete(sigs, 2, axis=0) @ v_cut
    assert float(v_cut @ sigs[2]) > others.max() + 0.1


def test_resampling_to_canonical_spacing(sample, sigs):
    """A surface at half the pixel size (upsampled x2) gives nearly the same signature."""
    s = sample[0]
    z = s.data
    up = np.repeat(np.repeat(z, 2, axis=0), 2, axis=1)
    s2 = s.derive(up, "test_upsample", {}, spacing=(s.spacing[0] / 2, s.spacing[1] / 2))
    v = signature(s2)
    assert float(v @ sigs[0]) > 0.6
    assert float(v @ sigs[0]) > (sigs[1:] @ v).max()


def test_bad_input():
    with pytest.raises(EmptyScanError):
        signature(scan_from_array(np.full((50, 50), np.nan), 6.25e-6))
    with pytest.raises(EmptyScanError):
        signature(scan_from_array(np.zeros((80, 80)), 6.25e-6))  # flat: no texture
    with pytest.raises(BallisticsError):
        signature(np.zeros((10, 10)))  # type: ignore[arg-type]


def _vlad_twin(desc, mean, basis, centroids):
    """Slow, obvious VLAD: loop over descriptors and words."""
    K, d = centroids.shape
    V = np.zeros((K, d))
    for x in desc:
        y = (x.astype(np.float64) - mean) @ basis
        dist = [np.sum((y - c) ** 2) for c in centroids]
        k = int(np.argmin(dist))
        V[k] += y - centroids[k]
    V = np.sign(V) * np.sqrt(np.abs(V))
    for k in range(K):
        n = np.linalg.norm(V[k])
        if n > 0:
            V[k] /= n
    return V.ravel()


def test_vlad_matches_twin_random_and_real(sample):
    cb = sg._codebook()
    rng = np.random.default_rng(3)
    rand = rng.random((57, 128)).astype(np.float32) * 60
    np.testing.assert_allclose(sg.vlad(rand, cb["mean"], cb["basis"], cb["centroids"]),
                               _vlad_twin(rand, cb["mean"], cb["basis"], cb["centroids"]), atol=1e-9)
    z, m, _ = sg._standardise(sample[3], SIGNATURE_PARAMS["spacing_m"])
    _, real = sg.sift_descriptors(z, m)
    assert len(real) > 50
    np.testing.assert_allclose(sg.vlad(real, cb["mean"], cb["basis"], cb["centroids"]),
                               _vlad_twin(real, cb["mean"], cb["basis"], cb["centroids"]), atol=1e-9)
    assert not np.any(sg.vlad(real[:0], cb["mean"], cb["basis"], cb["centroids"]))


def test_polar_spectrum_exact_rotation_invariance():
    """A 90-degree rotation about the grid centre is exact on pixels: spectra agree closely."""
    rng = np.random.default_rng(0)
    z = ndimage.gaussian_filter(rng.standard_normal((201, 201)), 2)
    yy, xx = np.mgrid[:201, :201]
    m = (yy - 100) ** 2 + (xx - 100) ** 2 < 95 ** 2
    z = np.where(m, z, 0)
    a = sg.polar_spectrum(z, m, (100.0, 100.0))
    b = sg.polar_spectrum(np.rot90(z), np.rot90(m), (100.0, 100.0))
    other = sg.polar_spectrum(ndimage.gaussian_filter(rng.standard_normal((201, 201)), 2) * m, m, (100.0, 100.0))
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    assert np.abs(a - other).max() > 5 * np.abs(a - b).max()


def test_codebook_shapes_and_retraining(sample):
    cb = sg._codebook()
    assert cb["basis"].shape == (128, SIGNATURE_PARAMS["pca_components"])
    assert cb["centroids"].shape == (SIGNATURE_PARAMS["codebook_size"], SIGNATURE_PARAMS["pca_components"])
    new = sg.train_codebook(sample[:2], {"codebook_size": 4, "pca_components": 8})
    assert new["centroids"].shape == (4, 8)
    # PCA basis is orthonormal
    np.testing.assert_allclose(new["basis"].T @ new["basis"], np.eye(8), atol=1e-8)
