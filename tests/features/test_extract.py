"""Feature extraction: region finding, conditioning, extract_* and the CLI (bundled data + synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from agreement_tool import surface_agreement
from scipy import ndimage as ndi

import ballistics
from ballistics import BallisticsError, EmptyScanError, RegionNotFoundError, datasets
from ballistics.cli import main as cli_main
from ballistics.features import Regions, extract_breech_face, extract_firing_pin, find_regions
from ballistics.features._circle import fit_circle_ransac
from ballistics.features._filter import ISO_SIGMA_PER_CUTOFF, gaussian_bandpass, gaussian_lowpass, remove_outliers
from ballistics.features._level import robust_level
from ballistics.features._resample import resample
from ballistics.reading import scan_from_array

SP = 6.25e-6


# ----------------------------------------------------------------------------- synthetic primer
def synthetic_primer(seed: int = 0, shape=(640, 660), spacing=SP, centre=(2.02e-3, 2.07e-3), r_primer=1.8e-3,
                     fp_centre=(1.95e-3, 1.90e-3), r_hole=0.70e-3, r_rim=1.20e-3, tilt=(0.01, -0.02),
                     kind="height"):
    """Height map of a primer: NaN outside the primer and in the firing-pin hole, a raised
    crater shoulder with a steep rim, breech-face texture, a tilt; ground truth returned."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape) * spacing
    rp = np.hypot(yy - centre[0], xx - centre[1])
    rf = np.hypot(yy - fp_centre[0], xx - fp_centre[1])
    tex = ndi.gaussian_filter(rng.normal(size=shape), 3) * 3e-6
    shoulder = 20e-6 * 0.5 * (1 - np.tanh((rf - r_rim) / 8e-6))
    z = 50e-6 + tilt[0] * yy + tilt[1] * xx + tex + shoulder
    # ragged primer edge: partly measured roll-off
    edge_noise = rng.random(shape) < 0.5
    z[(rp > r_primer) | ((rp > r_primer - 20e-6) & edge_noise)] = np.nan
    z[rf < r_hole] = np.nan
    if kind == "intensity":
        img = np.full(shape, 180.0) + ndi.gaussian_filter(rng.normal(size=shape), 2) * 40
        img[(rp > r_primer) & (rp < r_primer + 0.6e-3)] = 25.0          # dark gap around the primer
        ring = np.abs(rf - r_rim) < 40e-6
        img[ring] = 20.0                                                # dark crater rim
        img[rf < r_hole] = 60.0
        z = img
    truth = dict(centre=centre, r_primer=r_primer, fp_centre=fp_centre, r_hole=r_hole, r_rim=r_rim)
    return scan_from_array(z, spacing, kind=kind, name=f"synthetic-{seed}"), truth


def test_find_regions_synthetic_geometry():
    scan, t = synthetic_primer()
    r = find_regions(scan)
    assert isinstance(r, Regions)
    assert np.allclose(r.centre_m, t["centre"], atol=15e-6)
    assert abs(r.primer_radius_m - t["r_primer"]) < 30e-6
    assert np.allclose(r.hole_centre_m, t["fp_centre"], atol=15e-6)
    assert abs(r.hole_radius_m - t["r_hole"]) < 20e-6
    assert np.allclose(r.firing_pin_centre_m, t["fp_centre"], atol=20e-6)
    assert abs(r.firing_pin_radius_m - t["r_rim"]) < 25e-6
    # annulus: inside the primer edge, outside the rim
    assert r.breech_face_outer_radius_m < r.primer_radius_m
    assert r.breech_face_inner_radius_m > r.firing_pin_radius_m
    assert 0.5 < r.confidence <= 1.0
    assert r.params["primer_radius_range_m"] == (1.0e-3, 3.5e-3)


@pytest.mark.parametrize("variant", ["tilt", "offcentre", "dropouts", "debris", "spacing"])
def test_find_regions_robust(variant):
    kw = {}
    if variant == "tilt":
        kw["tilt"] = (0.05, 0.04)  # ~3.7 degrees
    if variant == "spacing":
        kw.update(spacing=3.9e-6, shape=(1030, 1060))  # another instrument's pixel
    scan, t = synthetic_primer(seed=1, **kw)
    d = scan.data.copy()
    off = (0.0, 0.0)
    if variant == "offcentre":
        cut = int(0.3 * d.shape[1])
        d = d[:, cut:]
        off = (0.0, cut * scan.spacing[1])
    if variant == "dropouts":
        d[np.random.default_rng(2).random(d.shape) < 0.2] = np.nan
    if variant == "debris":
        yy, xx = np.indices(d.shape)
        d[np.hypot(yy - 80, xx - 320) < 15] += 30e-6   # a particle on the breech face
        d[np.hypot(yy - 500, xx - 200) < 10] = np.nan
    r = find_regions(scan_from_array(d, scan.spacing))
    assert np.allclose(np.add(r.centre_m, off), t["centre"], atol=25e-6)
    assert abs(r.primer_radius_m - t["r_primer"]) < 40e-6
    assert abs(r.firing_pin_radius_m - t["r_rim"]) < 40e-6


def test_find_regions_intensity_image():
    img, t = synthetic_primer(seed=3, kind="intensity")
    r = find_regions(img)
    assert r.kind == "intensity" and r.hole_radius_m is None
    assert np.allclose(r.centre_m, t["centre"], atol=25e-6)
    assert abs(r.primer_radius_m - t["r_primer"]) < 40e-6
    assert abs(r.firing_pin_radius_m - t["r_rim"]) < 60e-6
    bf = extract_breech_face(img)
    assert bf.kind == "intensity" and bf.spacing == (SP, SP)
    v = bf.data[bf.mask]
    assert abs(np.median(v)) < 0.05  # illumination normalised: relative contrast around 0


# ----------------------------------------------------------------------------- bad input
def _bad_inputs():
    rng = np.random.default_rng(1)
    sq = rng.normal(size=(600, 600)) * 1e-6
    sq[:80], sq[-80:], sq[:, :80], sq[:, -80:] = np.nan, np.nan, np.nan, np.nan
    yy, xx = np.indices((500, 650))
    return {
        "all-NaN": (scan_from_array(np.full((400, 400), np.nan), SP), EmptyScanError),
        "tiny": (scan_from_array(rng.normal(size=(12, 12)) * 1e-6, 3.125e-6), RegionNotFoundError),
        "no primer (plane, fully measured)": (scan_from_array((yy + xx) * 1e-9, SP), RegionNotFoundError),
        "square measured area": (scan_from_array(sq, SP), RegionNotFoundError),
        "noise image": (scan_from_array(rng.uniform(0, 255, (500, 650)), SP, kind="intensity"), RegionNotFoundError),
        "uniform image": (scan_from_array(np.full((500, 650), 9.0), SP, kind="intensity"), RegionNotFoundError),
        "gradient image": (scan_from_array((yy + xx) / 7.0, SP, kind="intensity"), RegionNotFoundError),
    }


@pytest.mark.parametrize("name", list(_bad_inputs()))
@pytest.mark.parametrize("fn", [extract_breech_face, extract_firing_pin])
def test_bad_input_gives_clear_error(name, fn):
    scan, err = _bad_inputs()[name]
    with pytest.raises(err) as ei:
        fn(scan)
    assert isinstance(ei.value, BallisticsError)
    assert len(str(ei.value)) > 30


def test_bad_parameters_give_clear_errors():
    with pytest.raises(ballistics.ParameterError):
        extract_breech_face(np.zeros((10, 10)))  # type: ignore[arg-type]
    with pytest.raises(ballistics.ParameterError):
        find_regions(np.zeros((10, 10)))  # type: ignore[arg-type]
    scan, _ = synthetic_primer()
    with pytest.raises(ballistics.UnitsError):
        extract_breech_face(scan, target_spacing_m=6.25)  # micrometres given as metres
    with pytest.raises(ballistics.UnitsError):
        extract_breech_face(scan, bandpass_m=(16, 500))
    bad = [dict(bandpass_m=(500e-6, 16e-6)), dict(level_order=3), dict(primer_radius=2e-3),
           dict(primer_radius_range_m=(3e-3, 1e-3)), dict(edge_slope_deg=95.0)]
    for kw in bad:
        with pytest.raises(ballistics.ParameterError):
            extract_firing_pin(scan, **kw)


# ----------------------------------------------------------------------------- conditioning
def test_lowpass_handles_missing_data_without_edge_droop():
    z = np.full((200, 200), 3e-6)
    z[60:120, 50:90] = np.nan  # a hole
    z[:, :20] = np.nan
    out = gaussian_lowpass(z, SP, 500e-6)
    assert np.array_equal(np.isfinite(out), np.isfinite(z))
    np.testing.assert_allclose(out[np.isfinite(z)], 3e-6, rtol=1e-5)  # zero-filling would droop here


@pytest.mark.parametrize("wavelength_factor,expected", [(1.0, 0.5), (3.0, 0.925), (0.5, 0.0625)])
def test_lowpass_transmission_follows_iso_16610(wavelength_factor, expected):
    cutoff = 100e-6
    lam = cutoff * wavelength_factor
    x = np.arange(2048) * 1e-6
    z = np.tile(np.sin(2 * np.pi * x / lam), (64, 1))
    out = gaussian_lowpass(z, 1e-6, cutoff)
    amp = np.std(out[:, 600:1500]) * math.sqrt(2)  # whole periods of every wavelength
    theory = math.exp(-math.pi * (math.sqrt(math.log(2) / math.pi) * cutoff / lam) ** 2)
    assert abs(theory - expected) < 0.01
    assert abs(amp - theory) < 0.01
    assert abs(ISO_SIGMA_PER_CUTOFF - 0.18739) < 1e-4


def test_bandpass_removes_form_and_keeps_texture():
    rng = np.random.default_rng(0)
    yy, xx = np.indices((300, 300)) * SP
    tex = ndi.gaussian_filter(rng.normal(size=(300, 300)), 4)
    z = 5e-3 * yy + 0.3 * (xx - 1e-3) ** 2 + tex * 1e-6
    out = gaussian_bandpass(z, SP, 16e-6, 500e-6)
    c = np.corrcoef(out[50:-50, 50:-50].ravel(), tex[50:-50, 50:-50].ravel())[0, 1]
    assert c > 0.9
    assert abs(np.mean(out[50:-50, 50:-50])) < 0.2e-6


def test_robust_level_ignores_outliers():
    rng = np.random.default_rng(3)
    yy, xx = np.indices((200, 220))
    z = 1e-5 + 0.02 * yy * SP - 0.01 * xx * SP + rng.normal(size=yy.shape) * 1e-8
    bad = rng.random(z.shape) < 0.2
    z[bad] += 5e-5  # 20 % debris
    z[:10] = np.nan
    lev, coef = robust_level(z, (SP, SP), order=1)
    assert abs(coef[1] - 0.02) < 1e-3 and abs(coef[2] + 0.01) < 1e-3
    assert np.nanmedian(np.abs(lev[~bad])) < 5e-8
    lev2, coef2 = robust_level(z + 0.5 * (xx * SP) ** 2, (SP, SP), order=2)
    assert abs(coef2[5] - 0.5) < 0.05
    # least squares would be pulled by the debris: the median fit is not
    assert abs(np.nanmedian(lev[~bad])) < 5e-8


def test_remove_outliers_spikes_and_islands():
    rng = np.random.default_rng(4)
    z = ndi.gaussian_filter(rng.normal(size=(200, 200)), 3) * 1e-6
    z[50, 50] += 1e-4                      # a spike
    z[120:125, 10:14] = np.nan             # a drop-out hole (stays a hole)
    z[90:110, 0:12] = np.nan               # a NaN pocket ...
    z[99:101, 4:6] = 1e-7                  # ... holding a 2 x 2 px island of debris
    out, counts = remove_outliers(z, SP, min_island_m2=(20e-6) ** 2)
    assert np.isnan(out[50, 50])
    assert 1 <= counts["spikes"] < 50      # the spike, not the texture
    assert counts["island_pixels"] == 4 and np.isnan(out[99:101, 4:6]).all()
    kept = np.isfinite(z) & np.isfinite(out)
    assert kept.sum() > 0.99 * np.isfinite(z).sum()
    np.testing.assert_array_equal(out[kept], z[kept])


def test_resample_integer_and_fractional():
    rng = np.random.default_rng(5)
    z = ndi.gaussian_filter(rng.normal(size=(200, 200)), 6)
    z[:, :30] = np.nan
    out, sp, info = resample(z, (3.125e-6, 3.125e-6), 6.25e-6)
    assert sp == (6.25e-6, 6.25e-6) and out.shape == (100, 100)
    assert info["antialias_cutoff_m"] == pytest.approx(12.5e-6)
    out2, sp2, info2 = resample(z, (2.53e-6, 2.53e-6), 6.25e-6)
    assert sp2[0] == pytest.approx(6.25e-6) and info2["method"].startswith("bilinear")
    assert out2.shape[0] == pytest.approx(200 * 2.53 / 6.25, abs=1.5)
    # a pattern at the output Nyquist wavelength is attenuated by the anti-aliasing
    # filter (50 % transmission at its cut-off, ISO 16610-21) instead of passing whole
    x = np.arange(400)
    nyq = np.tile(np.cos(np.pi * x / 2.0), (64, 1))  # period 4 px = 12.5 um at 3.125 um
    o, _, _ = resample(nyq, (3.125e-6, 3.125e-6), 6.25e-6)
    assert np.abs(o[5:-5, 5:-5]).max() == pytest.approx(0.5, abs=0.03)
    o_raw, _, inf = resample(nyq, (3.125e-6, 3.125e-6), 6.25e-6, prefiltered_cutoff_m=16e-6)
    assert inf["antialias_cutoff_m"] is None and np.abs(o_raw).max() == pytest.approx(1.0)
    # shorter than Nyquist (would alias): attenuated further
    short = np.tile(np.cos(2 * np.pi * x / 3.0), (64, 1))
    o3, _, _ = resample(short, (3.125e-6, 3.125e-6), 6.25e-6)
    assert np.abs(o3[5:-5, 5:-5]).max() < 0.35


def test_circle_ransac_rejects_outliers():
    rng = np.random.default_rng(6)
    t = rng.uniform(0, 2 * np.pi, 400)
    pts = np.column_stack([50 + 30 * np.sin(t), 60 + 30 * np.cos(t)]) + rng.normal(0, 0.3, (400, 2))
    pts = np.vstack([pts, rng.uniform(0, 120, (200, 2))])
    c = fit_circle_ransac(pts, 1.5, (10, 80))
    assert abs(c.cy - 50) < 0.3 and abs(c.cx - 60) < 0.3 and abs(c.r - 30) < 0.3
    assert 0.6 < c.inlier_fraction < 0.72 and c.coverage == 1.0
    far = fit_circle_ransac(pts, 1.5, (90, 100))
    assert far is None or far.inlier_fraction < 0.3


# ----------------------------------------------------------------------------- bundled raw sample
@pytest.fixture(scope="module")
def bundled_raw():
    return datasets.fadul("raw")


@pytest.fixture(scope="module")
def bundled_bf(bundled_raw):
    return [extract_breech_face(s) for s in bundled_raw]


def test_extract_breech_face_bundled_geometry_and_provenance(bundled_raw, bundled_bf):
    for raw, bf in zip(bundled_raw, bundled_bf):
        assert bf.spacing == (6.25e-6, 6.25e-6)
        g = bf.region
        assert g["type"] == "breech_face"
        # every valid pixel lies in the annulus described by the region dict
        iy, ix = np.nonzero(bf.mask)
        y, x = iy * bf.spacing[0], ix * bf.spacing[1]
        rp = np.hypot(y - g["centre_m"][0], x - g["centre_m"][1])
        rf = np.hypot(y - g["firing_pin_centre_m"][0], x - g["firing_pin_centre_m"][1])
        assert rp.max() <= g["outer_radius_m"] + 1e-9
        assert rf.min() >= g["inner_radius_m"] - 1e-9
        # cropped to the bounding box of the annulus
        assert bf.mask[0].any() and bf.mask[-1].any() and bf.mask[:, 0].any() and bf.mask[:, -1].any()
        # centre relative to output origin + origin = source centre
        assert np.allclose(np.add(g["centre_m"], g["output_origin_in_source_m"]), g["source_centre_m"])
        assert 1.6e-3 < g["primer_radius_m"] < 1.9e-3 and 1.0e-3 < g["firing_pin_radius_m"] < 1.4e-3
        step = bf.provenance.steps[-1]
        assert step["step"] == "extract_breech_face"
        assert step["input_checksum"] == raw.checksum
        assert step["bandpass_m"] == [16e-6, 500e-6] and step["target_spacing_m"] == 6.25e-6
        assert step["regions"]["params"]["primer_margin_m"] > 0
        assert step["library_version"] == ballistics.__version__
        # band-passed: zero-mean, micrometre-scale texture
        assert abs(np.nanmean(bf.data)) < 0.2e-6 and 0.5e-6 < np.nanstd(bf.data) < 5e-6


def test_bundled_breech_face_agrees_with_cmcR_processed(bundled_raw, bundled_bf):
    """Our breech face of the bundled raw scans vs the bundled cmcR-processed (2020) files."""
    processed = {s.name: s for s in datasets.fadul("processed")}
    for raw, bf in zip(bundled_raw, bundled_bf):
        a = surface_agreement(bf.data, processed[raw.name].data)
        print(f"{raw.name}: IoU {a['iou']:.3f}, corr {a['correlation']:.3f}, interior {a['correlation_interior']:.3f}")
        assert a["iou"] > 0.85
        assert a["correlation"] > 0.88
        assert 0.85 < a["std_ratio"] < 1.15


def test_same_firearm_breech_faces_are_more_alike(bundled_bf):
    """Fadul 1-1 and 1-2 (same slide) agree better than 1-1 and 2-1 (checks the marks survive)."""
    from skimage.transform import rotate

    def best(a, b):
        out = -1.0
        bz = np.nan_to_num(b)
        for ang in range(-30, 31, 3):
            r = rotate(np.nan_to_num(a), ang, order=1, preserve_range=True)
            m = rotate(np.isfinite(a).astype(float), ang, order=0) > 0.5
            agr = surface_agreement(np.where(m, r, np.nan), np.where(np.isfinite(b), bz, np.nan))
            out = max(out, agr["correlation"])
        return out

    same = best(bundled_bf[0].data[::2, ::2], bundled_bf[1].data[::2, ::2])
    diff = best(bundled_bf[0].data[::2, ::2], bundled_bf[2].data[::2, ::2])
    assert same > diff + 0.1


def test_extract_firing_pin_bundled(bundled_raw):
    fp = extract_firing_pin(bundled_raw[0])
    g = fp.region
    assert g["type"] == "firing_pin" and fp.spacing == bundled_raw[0].spacing
    iy, ix = np.nonzero(fp.mask)
    r = np.hypot(iy * fp.spacing[0] - g["centre_m"][0], ix * fp.spacing[1] - g["centre_m"][1])
    assert r.max() <= g["outer_radius_m"] + 1e-9
    assert 0.2 < fp.missing_fraction < 0.8  # the hole is unmeasured
    assert fp.provenance.steps[-1]["step"] == "extract_firing_pin"
    assert fp.provenance.steps[-1]["level_order"] == 2


def test_second_extraction_is_refused(bundled_bf):
    with pytest.raises(BallisticsError, match="already an extracted region"):
        extract_breech_face(bundled_bf[0])
    with pytest.raises(BallisticsError, match="already"):
        extract_firing_pin(bundled_bf[0])


def test_precomputed_regions_and_params_are_recorded(bundled_raw):
    reg = find_regions(bundled_raw[1], primer_margin_m=150e-6)
    bf = extract_breech_face(bundled_raw[1], regions=reg, bandpass_m=(20e-6, 300e-6), level_order=2)
    st = bf.provenance.steps[-1]
    assert st["bandpass_m"] == [20e-6, 300e-6] and st["level_order"] == 2
    assert st["regions"]["params"]["primer_margin_m"] == 150e-6
    assert bf.region["outer_radius_m"] <= reg.primer_radius_m - 150e-6 + 1e-12
    bf2 = extract_breech_face(bundled_raw[1], primer_margin_m=150e-6, bandpass_m=(20e-6, 300e-6), level_order=2)
    np.testing.assert_array_equal(bf.data, bf2.data)  # deterministic


# ----------------------------------------------------------------------------- CLI
def test_cli_extract_writes_x3p_and_plot(tmp_path, capsys):
    src = datasets.fadul_paths("raw")[0]
    out = tmp_path / "bf.x3p"
    rc = cli_main(["extract", str(src), "--region", "breech-face", "-o", str(out), "--plot"])
    assert rc == 0
    assert out.exists() and out.with_suffix(".png").stat().st_size > 10_000
    back = ballistics.read_scan(out)
    assert back.region["type"] == "breech_face"
    assert "extract_breech_face" in [s["step"] for s in back.provenance.steps]
    assert "primer:" in capsys.readouterr().out
    # extracting the extracted file again: clear error, exit status 2
    assert cli_main(["extract", str(out), "-o", str(tmp_path / "again.x3p")]) == 2
    assert "already an extracted region" in capsys.readouterr().err
    rc = cli_main(["extract", str(src), "--region", "firing-pin", "-o", str(tmp_path / "fp.x3p"),
                   "--plot", str(tmp_path / "fp.png"), "--json"])
    assert rc == 0 and (tmp_path / "fp.png").exists()


def test_already_filtered_surface_is_flagged(bundled_raw, caplog):
    """A processed (band-passed) breech face without extract provenance is not refused, but
    flagged: little long-wave form left (documented behaviour: warning + diagnostics)."""
    processed = datasets.fadul("processed")[0]
    with caplog.at_level("WARNING", logger="ballistics"):
        r = find_regions(processed)
    assert r.diagnostics["long_wave_fraction"] < 0.5
    assert "already band-pass filtered" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ballistics"):
        r_raw = find_regions(bundled_raw[0])
    assert r_raw.diagnostics["long_wave_fraction"] > 0.7
    assert "already" not in caplog.text
