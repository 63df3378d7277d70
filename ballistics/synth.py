"""Synthetic cartridge cases with known ground truth, for scale tests and benchmarks.

A *firearm* is a random, band-limited breech-face texture (the tool marks of its breech
face, 16-500 um wavelengths, like the band-pass of the real processed scans) plus a few
firearm-specific parallel machining marks. A *shot* copies that texture onto a primer:
rotated and shifted at random, weakened or strengthened (shot-to-shot variation),
with independent noise of its own, an annular breech-face region with a firing-pin
hole, and drop-outs where the instrument measured nothing. The rotation and shift are
returned, so a comparison's registration can be checked.

Everything is seeded (``numpy.random.default_rng``), and a 560 x 560 surface takes a
few milliseconds.

How the statistics were matched to real scans (see :func:`surface_statistics` and
``tests/test_synth.py``): on the bundled processed Fadul breech faces the height
standard deviation is 1.6-1.9 um, the median slope 0.05, the missing fraction
0.69-0.74; the defaults below give 1.6-2.3 um, a median slope of 0.07-0.08 and 0.68
missing, and the test asserts that each synthetic statistic lies within the range
spanned by the real scans widened by a stated tolerance. Real scans are heavier-tailed
(kurtosis up to 29 from debris and pits); the generator adds sparse pits to mimic
that, but synthetic scans are never the only evidence of accuracy in this project.

Fully measured raw primers (:func:`make_primer`) imitate instruments that measure every
pixel (Cadre TopMatch / GelSight): the head of the case around, the primer recessed by a
step with a narrow pocket gap, a firing-pin crater (a paraboloid bowl), breech-face marks
on the primer, a slight tilt, and the exact geometry returned. :func:`fill_unmeasured`
turns a real confocal scan (NaN around the primer and in the firing-pin hole) into a
fully measured one, so the region finder's topography path can be checked on real
primer surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import ParameterError
from .reading import scan_from_array
from .scan import Provenance, Scan

__all__ = [
    "Firearm",
    "fill_unmeasured",
    "fire",
    "make_collection",
    "make_firearm",
    "make_primer",
    "surface_statistics",
]


@dataclass(frozen=True)
class Firearm:
    """A synthetic firearm: the breech-face texture it stamps (metres) and its identity."""

    firearm_id: str
    texture: np.ndarray  # heights, metres, on a canvas larger than one shot
    spacing: float  # metres per pixel
    seed: int


def _bandpass_noise(rng: np.random.Generator, shape: tuple[int, int], spacing: float,
                    short_m: float = 16e-6, long_m: float = 500e-6) -> np.ndarray:
    """White noise band-passed in the Fourier domain to wavelengths ``short_m..long_m``."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0], d=spacing)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=spacing)[None, :]
    f = np.hypot(fy, fx)
    # Gaussian low-pass at short_m minus Gaussian low-pass at long_m (ISO 16610-61 like)
    a = np.sqrt(np.log(2.0) / np.pi)
    low_short = np.exp(-np.pi * (a * short_m * f) ** 2)
    low_long = np.exp(-np.pi * (a * long_m * f) ** 2)
    # 1/f amplitude tilt gives the larger features real breech faces show
    tilt = 1.0 / np.maximum(f, 1.0 / long_m) ** 1.5
    spec = np.fft.rfft2(white) * (low_short - low_long) * tilt
    out = np.fft.irfft2(spec, s=shape)
    return out / out.std()


def make_firearm(seed: int, *, size_px: int = 800, spacing: float = 6.25e-6,
                 roughness_m: float = 1.6e-6, firearm_id: str | None = None) -> Firearm:
    """Create a synthetic firearm's breech-face texture.

    Parameters
    ----------
    seed : int
        Random seed; the same seed gives the same firearm.
    size_px : int
        Side of the square texture canvas, pixels (larger than a shot so that rotated
        and shifted shots stay inside it).
    spacing : float
        Pixel spacing in metres (default 6.25 um, the processed-scan resolution).
    roughness_m : float
        Standard deviation of the texture, metres.
    firearm_id : str, optional
        Name; defaults to ``"synthetic-<seed>"``.

    Returns
    -------
    Firearm
    """
    rng = np.random.default_rng(seed)
    tex = _bandpass_noise(rng, (size_px, size_px), spacing)
    # firearm-specific parallel machining marks (breech faces are often milled/filed)
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float64) * spacing
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    period = rng.uniform(60e-6, 200e-6)
    marks = np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
    marks *= _bandpass_noise(rng, (size_px, size_px), spacing, 200e-6, 2e-3) * 0.5 + 0.5
    tex = tex + 0.6 * marks
    tex = (tex - tex.mean()) / tex.std() * roughness_m
    return Firearm(firearm_id or f"synthetic-{seed}", tex, spacing, seed)


def fire(firearm: Firearm, seed: int, *, size_px: int = 560, rotation_deg: float | None = None,
         shift_px: tuple[float, float] | None = None, mark_strength: float | None = None,
         noise: float = 0.6, dropout: float = 0.03, firing_pin_radius_frac: float = 0.7,
         pits: float = 0.002, exhibit_id: str | None = None) -> tuple[Scan, dict[str, Any]]:
    """Fire one synthetic cartridge case and return its extracted breech face.

    Parameters
    ----------
    firearm : Firearm
        The firearm whose marks are stamped.
    seed : int
        Random seed of this shot.
    size_px : int
        Side of the output surface, pixels.
    rotation_deg : float, optional
        Rotation of the case in degrees (counter-clockwise in array display); random
        in [0, 360) by default.
    shift_px : (float, float), optional
        Translation (dy, dx) in pixels; random within +-20 px by default.
    mark_strength : float, optional
        How strongly the firearm's marks transferred (0..1); random in 0.7..1.0 by default.
    noise : float
        Standard deviation of the shot's own texture relative to the firearm's.
    dropout : float
        Fraction of the annulus lost to drop-outs (blobs of missing data).
    firing_pin_radius_frac : float
        Radius of the firing-pin hole relative to the primer radius.
    pits : float
        Fraction of pixels hit by deep pits/debris (heavy tails of real scans).
    exhibit_id : str, optional
        Name of the shot.

    Returns
    -------
    scan : Scan
        Heights in metres, NaN outside the breech-face annulus and in drop-outs.
    truth : dict
        ``firearm_id``, ``rotation_deg``, ``shift_px`` and ``mark_strength``.
    """
    rng = np.random.default_rng(seed)
    theta = float(rng.uniform(0, 360)) if rotation_deg is None else float(rotation_deg)
    shift = (tuple(float(v) for v in rng.uniform(-20, 20, 2)) if shift_px is None
             else (float(shift_px[0]), float(shift_px[1])))
    strength = float(rng.uniform(0.7, 1.0)) if mark_strength is None else float(mark_strength)
    big = firearm.texture.shape[0]
    if big < size_px + 2 * max(abs(shift[0]), abs(shift[1])) + 2:
        raise ParameterError("the firearm canvas is too small for this shot size; make the firearm larger")
    # rotate about the canvas centre, then cut a window centred at centre + shift
    rot = ndimage.rotate(firearm.texture, theta, reshape=False, order=1, mode="reflect")
    c = big / 2.0
    r0 = round(c - size_px / 2 + shift[0])
    c0 = round(c - size_px / 2 + shift[1])
    surf = strength * rot[r0:r0 + size_px, c0:c0 + size_px]
    surf = surf + noise * firearm.texture.std() * _bandpass_noise(rng, (size_px, size_px), firearm.spacing)
    # primer annulus with the firing-pin hole, slightly off-centre
    yy, xx = np.mgrid[0:size_px, 0:size_px]
    cy, cx = size_px / 2 + rng.normal(0, 3, 2)
    rad = np.hypot(yy - cy, xx - cx)
    outer = size_px / 2 * 0.9
    valid = (rad <= outer) & (rad >= firing_pin_radius_frac * outer)
    if dropout > 0:
        blobs = ndimage.gaussian_filter(rng.standard_normal((size_px, size_px)), 6)
        valid &= blobs < np.quantile(blobs, 1 - dropout)
    if pits > 0:
        hit = rng.random((size_px, size_px)) < pits
        hit = ndimage.binary_dilation(hit, iterations=2)
        surf = surf - hit * rng.uniform(3, 8) * firearm.texture.std()
    surf = np.where(valid, surf, np.nan)
    name = exhibit_id or f"{firearm.firearm_id}-shot{seed}"
    scan = scan_from_array(surf, firearm.spacing, name="synthetic", exhibit_id=name)
    truth = {"firearm_id": firearm.firearm_id, "rotation_deg": theta, "shift_px": shift,
             "mark_strength": strength, "seed": seed}
    scan.metadata.update({"firearm": firearm.firearm_id, "synthetic_truth": truth})
    scan.provenance = Provenance(source="synthetic", reader="ballistics.synth",
                                 steps=[{"step": "synth.fire", "firearm_seed": firearm.seed, **truth,
                                         "noise": noise, "dropout": dropout}])
    return scan, truth


def make_collection(n_firearms: int, shots_per_firearm: int, seed: int = 0,
                    **fire_kwargs: Any) -> list[Scan]:
    """A seeded collection of synthetic shots from several firearms.

    Parameters
    ----------
    n_firearms, shots_per_firearm : int
        Size of the collection.
    seed : int
        Master seed.
    **fire_kwargs
        Passed to :func:`fire`.

    Returns
    -------
    list of Scan
        ``scan.metadata["firearm"]`` holds the ground truth.
    """
    out = []
    for f in range(n_firearms):
        fa = make_firearm(seed * 100_003 + f, firearm_id=f"synthetic-{seed}-{f}")
        for s in range(shots_per_firearm):
            out.append(fire(fa, seed * 7919 + f * 1000 + s, **fire_kwargs)[0])
    return out


def surface_statistics(scan: Scan) -> dict[str, float]:
    """Statistics used to check that synthetic scans resemble real ones.

    Returns
    -------
    dict
        ``sq_m`` (RMS height, metres), ``skew``, ``kurtosis`` (excess), ``median_slope``
        (dimensionless), ``missing_fraction``.
    """
    from scipy import stats

    v = scan.data[scan.mask]
    gy, gx = np.gradient(scan.data, scan.spacing[0], scan.spacing[1])
    g = np.hypot(gx, gy)
    g = g[np.isfinite(g)]
    return {"sq_m": float(v.std()), "skew": float(stats.skew(v)), "kurtosis": float(stats.kurtosis(v)),
            "median_slope": float(np.median(g)), "missing_fraction": scan.missing_fraction}


def make_primer(seed: int, *, spacing: float = 6.25e-6, size_m: float = 5.0e-3,
                primer_radius_m: float = 2.2e-3, step_m: float = 60e-6, gap_m: float = 30e-6,
                gap_depth_m: float = 20e-6, firing_pin_radius_m: float = 0.75e-3,
                crater_depth_m: float = 150e-6, centre_offset_m: float = 0.25e-3,
                firing_pin_offset_m: float = 0.1e-3, tilt_deg: float = 0.3,
                roughness_m: float = 1.6e-6, noise_m: float = 0.3e-6,
                firearm: Firearm | None = None) -> tuple[Scan, dict[str, Any]]:
    """A fully measured raw primer scan with known geometry (TopMatch-like).

    Parameters
    ----------
    seed : int
        Random seed (centre offsets, directions, textures).
    spacing : float
        Pixel size, metres.
    size_m : float
        Side of the square scan, metres.
    primer_radius_m : float
        Radius of the primer (its cup's outer edge), metres.
    step_m : float
        Depth of the primer surface below the case head, metres.
    gap_m, gap_depth_m : float
        Width of the pocket gap just outside the primer and its extra depth, metres.
    firing_pin_radius_m : float
        Radius of the firing-pin crater's rim, metres.
    crater_depth_m : float
        Depth of the crater's bottom below the primer surface, metres (paraboloid bowl).
    centre_offset_m : float
        Largest offset of the primer centre from the scan centre, metres.
    firing_pin_offset_m : float
        Largest offset of the crater from the primer centre, metres.
    tilt_deg : float
        Tilt of the whole case, degrees (random direction).
    roughness_m : float
        RMS of the breech-face marks on the primer, metres.
    noise_m : float
        Instrument noise and the case head's own roughness, metres (RMS).
    firearm : Firearm, optional
        Firearm whose marks are stamped (default: a new one from ``seed``).

    Returns
    -------
    scan : Scan
        Heights in metres, measured everywhere.
    truth : dict
        ``centre_m``, ``primer_radius_m``, ``pocket_radius_m`` (primer plus gap),
        ``firing_pin_centre_m``, ``firing_pin_radius_m``, ``step_m``,
        ``crater_depth_m`` (centres ``(y, x)`` from the centre of pixel ``(0, 0)``).
    """
    if not (0 < spacing < 1e-4 and 2 * primer_radius_m < size_m < 0.05):
        raise ParameterError("spacing and sizes are in metres; the scan must hold the whole primer")
    if not 0 < firing_pin_radius_m < primer_radius_m - firing_pin_offset_m:
        raise ParameterError("the firing-pin crater must lie inside the primer")
    rng = np.random.default_rng(seed)
    n = round(size_m / spacing)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) * spacing
    c0 = (n - 1) / 2 * spacing
    a = rng.uniform(0, 2 * np.pi)
    off = rng.uniform(0, centre_offset_m)
    cy, cx = c0 + off * np.sin(a), c0 + off * np.cos(a)
    a = rng.uniform(0, 2 * np.pi)
    off = rng.uniform(0, firing_pin_offset_m)
    fy, fx = cy + off * np.sin(a), cx + off * np.cos(a)
    rp = np.hypot(yy - cy, xx - cx)
    rf = np.hypot(yy - fy, xx - fx)
    z = np.zeros((n, n))
    primer = rp <= primer_radius_m
    gap = (rp > primer_radius_m) & (rp <= primer_radius_m + gap_m)
    z[primer] = -step_m
    z[gap] = -step_m - gap_depth_m
    # rounded primer corner: the last 60 um of the cup drop by up to a quarter of the step
    edge = primer & (rp > primer_radius_m - 60e-6)
    z[edge] -= 0.25 * step_m * ((rp[edge] - (primer_radius_m - 60e-6)) / 60e-6) ** 2
    # breech-face marks on the primer (outside the crater)
    fa = firearm if firearm is not None else make_firearm(seed + 1, size_px=n, spacing=spacing)
    if fa.texture.shape[0] < n:
        raise ParameterError("the firearm's texture is smaller than the scan; make the firearm larger")
    tex = fa.texture[:n, :n] / max(fa.texture.std(), 1e-30) * roughness_m
    z = np.where(primer, z + tex, z)
    crater = rf < firing_pin_radius_m
    z[crater] -= crater_depth_m * (1 - (rf[crater] / firing_pin_radius_m) ** 2)
    z += noise_m * ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.0) * 2.0
    t = np.tan(np.radians(tilt_deg))
    b = rng.uniform(0, 2 * np.pi)
    z += t * (np.cos(b) * (xx - c0) + np.sin(b) * (yy - c0))
    name = f"synthetic-primer-{seed}"
    scan = scan_from_array(z, spacing, name="synthetic", exhibit_id=name)
    truth = {"centre_m": (float(cy), float(cx)), "primer_radius_m": primer_radius_m,
             "pocket_radius_m": primer_radius_m + gap_m,
             "firing_pin_centre_m": (float(fy), float(fx)), "firing_pin_radius_m": firing_pin_radius_m,
             "step_m": step_m, "crater_depth_m": crater_depth_m, "seed": seed}
    scan.metadata.update({"firearm": fa.firearm_id, "synthetic_truth": truth})
    scan.provenance = Provenance(source="synthetic", reader="ballistics.synth",
                                 steps=[{"step": "synth.make_primer", "firearm_seed": fa.seed, **truth,
                                         "gap_m": gap_m, "gap_depth_m": gap_depth_m, "tilt_deg": tilt_deg,
                                         "roughness_m": roughness_m, "noise_m": noise_m}])
    return scan, truth


def fill_unmeasured(scan: Scan, *, step_m: float = 80e-6, crater_depth_m: float = 200e-6,
                    noise_m: float = 0.5e-6, seed: int = 0) -> Scan:
    """A fully measured version of a confocal primer scan (for testing, not for casework).

    The unmeasured area connected to the image border (around the primer) becomes a
    case head: the primer's own plane (trimmed least squares) raised by ``step_m``
    plus smooth noise. The largest unmeasured area inside, near the middle (the
    firing-pin hole), becomes a bowl ``crater_depth_m`` deep below the heights along its
    edge. Small drop-outs are filled by normalised-convolution smoothing.

    Parameters
    ----------
    scan : Scan
        Raw height map, metres, NaN where not measured.
    step_m : float
        Height of the case head above the primer plane, metres.
    crater_depth_m : float
        Depth of the filled crater's bottom below its edge, metres.
    noise_m : float
        RMS of the case head's roughness, metres.
    seed : int
        Random seed of the noise.

    Returns
    -------
    Scan
        Measured everywhere; ``scan.provenance`` records the step with its parameters
        and the filled areas' shares.
    """
    if not isinstance(scan, Scan) or scan.kind != "height":
        raise ParameterError("fill_unmeasured needs a height-map Scan")
    if not (0 < step_m < 1e-2 and 0 <= crater_depth_m < 1e-2 and 0 <= noise_m < 1e-3):
        raise ParameterError("step_m, crater_depth_m and noise_m are lengths in metres")
    rng = np.random.default_rng(seed)
    d = scan.data.astype(np.float64)
    valid = np.isfinite(d)
    if valid.mean() < 0.05:
        raise ParameterError(f"{scan.name!r} holds too little measured data to fill")
    lab, _ = ndimage.label(~valid)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    border = border[border > 0]
    outside = np.isin(lab, border)
    h, w = d.shape
    inner = (~valid) & ~outside
    lab_i, ni = ndimage.label(inner)
    hole = np.zeros_like(valid)
    if ni:
        sizes = np.bincount(lab_i.ravel())
        sizes[0] = 0
        hole = lab_i == int(np.argmax(sizes))
        cy, cx = ndimage.center_of_mass(hole)
        if hole.sum() < 0.005 * d.size or np.hypot(cy - h / 2, cx - w / 2) > 0.25 * max(h, w):
            hole[:] = False
    # primer plane by trimmed least squares on a subsample
    ys, xs = np.nonzero(valid)
    idx = rng.choice(ys.size, min(ys.size, 50_000), replace=False)
    ys, xs = ys[idx], xs[idx]
    vals = d[ys, xs]
    a = np.column_stack([ys, xs, np.ones_like(ys)]).astype(np.float64)
    keep = np.ones(ys.size, bool)
    for _ in range(6):
        coef, *_ = np.linalg.lstsq(a[keep], vals[keep], rcond=None)
        res = vals - a @ coef
        s = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep])))
        keep = np.abs(res - np.median(res[keep])) < 3 * s
    yy, xx = np.indices(d.shape)
    plane = coef[0] * yy + coef[1] * xx + coef[2]
    rough = ndimage.gaussian_filter(rng.standard_normal(d.shape), 2.0)
    rough *= noise_m / max(rough.std(), 1e-30)
    out = d.copy()
    out[outside] = plane[outside] + step_m + rough[outside]
    # small drop-outs: smooth fill from the measured surroundings
    small = inner & ~hole
    if small.any():
        for sig in (2.0, 8.0, 32.0):
            v = np.isfinite(out)
            num = ndimage.gaussian_filter(np.where(v, out, 0.0), sig)
            den = ndimage.gaussian_filter(v.astype(float), sig)
            fill = small & ~np.isfinite(out) & (den > 1e-3)
            out[fill] = num[fill] / den[fill]
    if hole.any():
        v = ~hole
        edge_level = np.where(v, out, 0.0)
        num = ndimage.gaussian_filter(np.nan_to_num(edge_level), 10.0)
        den = ndimage.gaussian_filter((v & np.isfinite(out)).astype(float), 10.0)
        base = num / np.maximum(den, 1e-9)
        t = ndimage.distance_transform_edt(hole)
        t = t / max(t.max(), 1.0)
        out[hole] = base[hole] - crater_depth_m * (1 - (1 - t[hole]) ** 2)
    out = np.where(np.isfinite(out), out, np.nanmedian(out))
    step = {"step_m": step_m, "crater_depth_m": crater_depth_m,
            "noise_m": noise_m, "seed": seed, "outside_fraction": float(outside.mean()),
            "hole_fraction": float(hole.mean()), "dropout_fraction": float(small.mean())}
    return scan.derive(out, "synth.fill_unmeasured", step)
