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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import ParameterError
from .reading import scan_from_array
from .scan import Provenance, Scan

__all__ = ["Firearm", "make_firearm", "fire", "make_collection", "surface_statistics"]


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
    r0 = int(round(c - size_px / 2 + shift[0]))
    c0 = int(round(c - size_px / 2 + shift[1]))
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
