"""Breech-face and firing-pin extraction: find the regions, mask, level, filter, resample."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from .._budget import check_extract_budget
from .._threads import with_compute_threads
from .._version import __version__
from ..errors import BallisticsError, EmptyScanError, ParameterError
from ..scan import Scan
from ._filter import gaussian_bandpass, remove_outliers
from ._level import normalise_illumination, robust_level
from ._params import BREECH_FACE, FIRING_PIN, UNSET, ExtractParams
from ._regions import DEFAULTS as REGION_DEFAULTS
from ._regions import Regions, find_regions
from ._resample import resample

logger = logging.getLogger(__name__)

__all__ = ["extract_breech_face", "extract_firing_pin", "EXTRACT_STEPS"]

#: Provenance step names written by this module.
EXTRACT_STEPS = ("extract_breech_face", "extract_firing_pin")

_REGION_KEYS = tuple(REGION_DEFAULTS)


def _already_extracted(scan: Scan) -> str | None:
    if scan.region is not None and scan.region.get("type") in ("breech_face", "firing_pin"):
        return str(scan.region.get("type"))
    for st in scan.provenance.steps:
        if st.get("step") in EXTRACT_STEPS:
            return str(st["step"])
    return None


def _check_region_params(region_params: dict[str, Any]) -> None:
    unknown = sorted(set(region_params) - set(_REGION_KEYS))
    if unknown:
        raise ParameterError(f"Unknown parameter(s) {unknown}; region parameters are {list(_REGION_KEYS)}.")


def _validate(scan: Scan, what: str) -> None:
    if not isinstance(scan, Scan):
        raise ParameterError(f"{what} needs a ballistics.Scan, got {type(scan).__name__}; "
                              "read files with ballistics.read_scan().")
    done = _already_extracted(scan)
    if done:
        raise BallisticsError(
            f"Scan {scan.name!r} is already an extracted region ({done}); extraction works on raw "
            "whole-primer scans. Use the scan as it is (it is already levelled and filtered).")
    scan.require_valid(0.0, "scan")


def _split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    reg = {k: params.pop(k) for k in list(params) if k in _REGION_KEYS}
    return reg, params


def _settings(params: ExtractParams | None, default: ExtractParams, region_params: dict[str, Any],
              **given: Any) -> ExtractParams:
    """The extraction's settings: ``params`` (or the pipeline's default) with the given keywords."""
    if params is not None and not isinstance(params, ExtractParams):
        raise ParameterError(f"params must be an ExtractParams, got {type(params).__name__}.")
    p = (params or default).with_overrides(**given)
    _check_region_params(region_params)
    return p


def _condition(scan: Scan, data: np.ndarray,
               p: ExtractParams) -> tuple[np.ndarray, tuple[float, float], dict[str, Any]]:
    """Outliers -> level (heights) / flat-field (images) -> band-pass -> resample."""
    level_order, target_spacing_m, outlier_k, min_island_m = (p.level_order, p.target_spacing_m, p.outlier_k,
                                                              p.min_island_m)
    sp = scan.spacing[1]
    info: dict[str, Any] = {}
    short_m, long_m = p.bandpass_m
    data, counts = remove_outliers(data, sp, scale_m=short_m or 4 * sp, k=outlier_k,
                                   min_island_m2=min_island_m ** 2)
    info["outliers_removed"] = counts
    if not np.isfinite(data).any():
        raise EmptyScanError(f"No valid data left in the region of {scan.name!r} after outlier removal.")
    if scan.kind == "height":
        data, coef = robust_level(data, scan.spacing, order=level_order)
        info["level"] = {"method": "median (L1, IRLS) polynomial", "order": level_order,
                         "coefficients": [float(c) for c in coef]}
    # short-wave filter at the input spacing (it is the anti-aliasing filter), then
    # decimate, then the long-wave filter on the (4x smaller) output grid
    lp = gaussian_bandpass(data, sp, short_m, None)
    if target_spacing_m is not None:
        lp, new_sp, rinfo = resample(lp, scan.spacing, target_spacing_m, prefiltered_cutoff_m=short_m or 0.0)
    else:
        new_sp, rinfo = scan.spacing, {"method": "none"}
    info["resample"] = rinfo
    if scan.kind == "intensity":
        sig = (long_m or 500e-6) / 2
        lp = normalise_illumination(lp, new_sp, sigma_m=sig)
        info["level"] = {"method": "flat-field: divide by the Gaussian-smoothed image, minus 1",
                         "sigma_m": sig}
    out = gaussian_bandpass(lp, new_sp[1], None, long_m)
    info["filter"] = {"type": "ISO 16610-21 Gaussian band-pass by normalised convolution "
                              "(= zeroth-order Gaussian regression filter)",
                      "short_cutoff_m": short_m, "long_cutoff_m": long_m}
    return out, new_sp, info


def _crop_mask(scan: Scan, centre: tuple[float, float], r_out: float,
               hole_centre: tuple[float, float] | None, r_in: float | None):
    dy, dx = scan.spacing
    h, w = scan.shape
    cy, cx = centre[0] / dy, centre[1] / dx
    ro = r_out / dx
    y0, y1 = max(0, int(math.floor(cy - ro))), min(h, int(math.ceil(cy + ro)) + 1)
    x0, x1 = max(0, int(math.floor(cx - ro))), min(w, int(math.ceil(cx + ro)) + 1)
    sub = scan.data[y0:y1, x0:x1].copy()
    yy = (np.arange(y0, y1) - cy)[:, None]
    xx = (np.arange(x0, x1) - cx)[None, :]
    keep = yy * yy + xx * xx <= ro * ro
    if hole_centre is not None and r_in is not None:
        hy, hx = hole_centre[0] / dy, hole_centre[1] / dx
        ri = r_in / dx
        keep &= ((np.arange(y0, y1) - hy)[:, None] ** 2 + (np.arange(x0, x1) - hx)[None, :] ** 2) > ri * ri
    sub[~keep] = np.nan
    return sub, (y0, x0)


def _finish(scan: Scan, out: np.ndarray, new_sp, origin, step: str, reg: Regions,
            region_type: str, params: dict[str, Any], info: dict[str, Any], t0: float,
            min_valid_fraction: float) -> Scan:
    # crop to the bounding box of the valid data (like cmcR's output)
    valid = np.isfinite(out)
    if not valid.any():
        raise EmptyScanError(f"The {region_type.replace('_', ' ')} of {scan.name!r} holds no measured data.")
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    r0, c0 = int(rows[0]), int(cols[0])
    out = np.ascontiguousarray(out[r0:rows[-1] + 1, c0:cols[-1] + 1])
    # output pixel (0, 0) sits at input metres:
    oy = origin[0] * scan.spacing[0] + r0 * new_sp[0]
    ox = origin[1] * scan.spacing[1] + c0 * new_sp[1]
    g = reg.shifted(oy, ox)
    region = {
        "type": region_type,
        "centre_m": g["centre_m"] if region_type == "breech_face" else g["firing_pin_centre_m"],
        "primer_radius_m": reg.primer_radius_m,
        "firing_pin_radius_m": reg.firing_pin_radius_m,
        "primer_centre_m": g["centre_m"],
        "firing_pin_centre_m": g["firing_pin_centre_m"],
        "outer_radius_m": (reg.breech_face_outer_radius_m if region_type == "breech_face"
                           else reg.breech_face_inner_radius_m),
        "inner_radius_m": reg.breech_face_inner_radius_m if region_type == "breech_face" else None,
        "hole_centre_m": g["hole_centre_m"],
        "hole_radius_m": reg.hole_radius_m,
        "source_centre_m": reg.centre_m if region_type == "breech_face" else reg.firing_pin_centre_m,
        "source_primer_centre_m": reg.centre_m,
        "source_firing_pin_centre_m": reg.firing_pin_centre_m,
        "output_origin_in_source_m": (oy, ox),
        "confidence": reg.confidence,
        "primer_rms_m": reg.primer_rms_m,
        "firing_pin_rms_m": reg.firing_pin_rms_m,
        "primer_inlier_fraction": reg.primer_inlier_fraction,
        "firing_pin_inlier_fraction": reg.firing_pin_inlier_fraction,
        "primer_coverage": reg.primer_coverage,
        "firing_pin_coverage": reg.firing_pin_coverage,
    }
    frac = float(np.isfinite(out).mean())
    if frac < min_valid_fraction:
        raise EmptyScanError(
            f"The {region_type.replace('_', ' ')} of {scan.name!r} is only {100 * frac:.1f} % measured "
            f"(< {100 * min_valid_fraction:.0f} %); the scan has too many drop-outs to compare.")
    record = dict(params)
    record.update({"regions": reg.to_dict(), "conditioning": info,
                   "seconds": round(time.perf_counter() - t0, 4), "ballistics_version": __version__})
    res = scan.derive(out, step, record, spacing=new_sp, region=region)
    return res


@with_compute_threads(opencv=True)
def extract_breech_face(
    scan: Scan,
    params: ExtractParams | None = None,
    *,
    target_spacing_m: float | None = UNSET,
    bandpass_m: tuple[float | None, float | None] = UNSET,
    level_order: int = UNSET,
    outlier_k: float = UNSET,
    min_island_m: float = UNSET,
    min_valid_fraction: float = UNSET,
    regions: Regions | None = None,
    **region_params: Any,
) -> Scan:
    """Extract the breech-face impression of a raw primer scan.

    Finds the primer edge and the firing-pin impression (:func:`find_regions`), keeps
    the annulus between them (cropped to its bounding box, NaN outside), removes
    spikes and drop-out debris, levels with a median plane (heights) or normalises
    illumination (images), applies a Gaussian band-pass by normalised convolution and
    resamples to ``target_spacing_m``.

    Parameters
    ----------
    scan : Scan
        Raw whole-primer scan: height map (metres) or 2-D image.
    params : ExtractParams, optional
        The conditioning settings (default :data:`BREECH_FACE`); the keyword arguments
        below override single fields of it.
    target_spacing_m : float or None
        Output pixel size, metres (default 6.25 um as cmcR); None keeps the input's.
    bandpass_m : (float or None, float or None)
        Short and long cut-off wavelengths, metres (default 16-500 um, as cmcR).
    level_order : {1, 2}
        Order of the median-fitted trend surface (heights).
    outlier_k : float
        Spike threshold in robust standard deviations.
    min_island_m : float
        Valid islands smaller than this squared (metres^2) are removed.
    min_valid_fraction : float
        Minimum measured fraction of the output bounding box.
    regions : Regions, optional
        Pre-computed regions (skips the search).
    **region_params
        Passed to :func:`find_regions` (radius ranges, margins, slope threshold; metres).

    Returns
    -------
    Scan
        The breech face; ``scan.region`` holds the geometry (``centre_m`` relative to the
        output origin, ``source_centre_m`` in the input), the provenance every parameter.

    Raises
    ------
    BallisticsError
        The scan is already an extracted region (no double extraction).
    ParameterError, UnitsError
        A setting out of range or implausible in metres.
    ResourceLimitError
        The scan exceeds the pixel limit or the memory budget (``ballistics.limits``).
    RegionNotFoundError, EmptyScanError
        No primer found, or too little data.

    References
    ----------
    Zemmels, Hofmann & VanderPlas (2022), cmcR (pipeline and defaults);
    ISO 16610-21 (Gaussian filter); Knutsson & Westin (1993) (normalised convolution).
    """
    t0 = time.perf_counter()
    _validate(scan, "extract_breech_face")
    p = _settings(params, BREECH_FACE, region_params, target_spacing_m=target_spacing_m, bandpass_m=bandpass_m,
                  level_order=level_order, outlier_k=outlier_k, min_island_m=min_island_m,
                  min_valid_fraction=min_valid_fraction)
    check_extract_budget(scan, "extract_breech_face")
    reg = regions if regions is not None else find_regions(scan, **region_params)
    sub, origin = _crop_mask(scan, reg.centre_m, reg.breech_face_outer_radius_m,
                             reg.firing_pin_centre_m, reg.breech_face_inner_radius_m)
    out, new_sp, info = _condition(scan, sub, p)
    record = dict(p.record(), region_params=region_params)
    return _finish(scan, out, new_sp, origin, "extract_breech_face", reg, "breech_face", record, info, t0,
                   p.min_valid_fraction)


@with_compute_threads(opencv=True)
def extract_firing_pin(
    scan: Scan,
    params: ExtractParams | None = None,
    *,
    target_spacing_m: float | None = UNSET,
    bandpass_m: tuple[float | None, float | None] = UNSET,
    level_order: int = UNSET,
    outlier_k: float = UNSET,
    min_island_m: float = UNSET,
    min_valid_fraction: float = UNSET,
    regions: Regions | None = None,
    **region_params: Any,
) -> Scan:
    """Extract the firing-pin impression (the crater and its rim) of a raw primer scan.

    The disc of radius ``breech_face_inner_radius_m`` around the rim's centre (see
    :func:`find_regions`) is cut out, cleaned, levelled with a second-order median
    surface (heights; removes the crater's bowl shape) or flat-fielded (images),
    band-passed and optionally resampled.  Parameters as in
    :func:`extract_breech_face`; the defaults (:data:`FIRING_PIN`) keep the input
    spacing and pass 8-250 um.

    Returns
    -------
    Scan
        ``scan.region["type"] == "firing_pin"``, ``centre_m`` the rim centre relative to
        the output origin.

    References
    ----------
    ISO 16610-21; Knutsson & Westin (1993); Koenker & Bassett (1978).
    """
    t0 = time.perf_counter()
    _validate(scan, "extract_firing_pin")
    p = _settings(params, FIRING_PIN, region_params, target_spacing_m=target_spacing_m, bandpass_m=bandpass_m,
                  level_order=level_order, outlier_k=outlier_k, min_island_m=min_island_m,
                  min_valid_fraction=min_valid_fraction)
    check_extract_budget(scan, "extract_firing_pin")
    reg = regions if regions is not None else find_regions(scan, **region_params)
    sub, origin = _crop_mask(scan, reg.firing_pin_centre_m, reg.breech_face_inner_radius_m, None, None)
    out, new_sp, info = _condition(scan, sub, p)
    record = dict(p.record(), region_params=region_params)
    return _finish(scan, out, new_sp, origin, "extract_firing_pin", reg, "firing_pin", record, info, t0,
                   p.min_valid_fraction)
