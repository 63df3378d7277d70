"""The extraction's parameters: one frozen, validated object per pipeline.

:class:`ExtractParams` holds the conditioning settings of
:func:`~ballistics.features.extract_breech_face` and
:func:`~ballistics.features.extract_firing_pin` (every length in metres); the two
pipelines' defaults are :data:`BREECH_FACE` and :data:`FIRING_PIN`.  The functions'
keyword arguments still work: they are applied to the pipeline's defaults (or to a
given ``params``) with :meth:`ExtractParams.replace`, so both ways are validated the
same.  Region-finding settings stay keyword arguments of
:func:`~ballistics.features.find_regions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._params import Integer, Pair, Params, Real, param
from ..errors import ParameterError, UnitsError

__all__ = ["BREECH_FACE", "FIRING_PIN", "ExtractParams", "UNSET"]


class _Unset:
    """Marker of a keyword argument that was not given."""

    def __repr__(self) -> str:
        return "<default>"


#: Default of the extraction functions' keyword arguments: "not given, keep the pipeline's".
UNSET: Any = _Unset()

#: Plausible pixel sizes and cut-off wavelengths, metres (values outside are wrong units).
SPACING_RANGE_M = (1e-8, 1e-3)
CUTOFF_RANGE_M = (1e-8, 1e-2)


@dataclass(frozen=True)
class ExtractParams(Params):
    """Conditioning settings of a breech-face or firing-pin extraction; validated on construction.

    Raises
    ------
    ParameterError
        A value of the wrong type or out of range, or the short cut-off not below the long one.
    UnitsError
        A pixel size or cut-off wavelength that is implausible in metres (micrometres given
        as metres).
    """

    _kind: ClassVar[str] = "extraction parameter"

    target_spacing_m: float | None = param(
        6.25e-6, Real(0.0, lo_open=True, none=True),
        "Output pixel size (cmcR's 6.25 um for the breech face); None keeps the input's.", unit="m")
    bandpass_m: tuple[float | None, float | None] = param(
        (16e-6, 500e-6), Pair(Real(0.0, lo_open=True, none=True)),
        "Short and long cut-off wavelengths of the ISO 16610-21 Gaussian band-pass (cmcR: 16-500 um "
        "for the breech face); None drops that side of the filter.", unit="m")
    level_order: int = param(
        1, Integer(1, 2), "Order of the median-fitted trend surface removed from heights (1 plane, 2 quadric).")
    outlier_k: float = param(
        6.0, Real(0.0, lo_open=True), "Spike threshold in robust standard deviations.", unit="sigma")
    min_island_m: float = param(
        50e-6, Real(0.0, 1e-2),
        "Valid islands smaller than this squared are removed as debris.", unit="m")
    min_valid_fraction: float = param(
        0.05, Real(0.0, 1.0), "Minimum measured fraction of the output's bounding box.", unit="fraction")

    def _check(self) -> None:
        ts = self.target_spacing_m
        if ts is not None and not (SPACING_RANGE_M[0] <= ts <= SPACING_RANGE_M[1]):
            raise UnitsError(f"target_spacing_m={ts!r} is not a plausible pixel size in metres.")
        short_m, long_m = self.bandpass_m
        for v in (short_m, long_m):
            if v is not None and not (CUTOFF_RANGE_M[0] <= v <= CUTOFF_RANGE_M[1]):
                raise UnitsError(f"Cut-off wavelength {v!r} m is implausible; give bandpass_m in metres.")
        if short_m is not None and long_m is not None and short_m >= long_m:
            raise ParameterError(f"bandpass_m short cut-off {short_m} m must be below the long one {long_m} m.")

    def with_overrides(self, **given: Any) -> ExtractParams:
        """A copy with the keyword arguments that were given (not :data:`UNSET`) applied."""
        changes = {k: v for k, v in given.items() if v is not UNSET}
        return self.replace(**changes) if changes else self

    def record(self) -> dict[str, Any]:
        """The settings as recorded in an extraction's provenance (cut-offs as a list)."""
        d = self.to_dict()
        d["bandpass_m"] = list(self.bandpass_m)
        return d


#: Breech face: 6.25 um output, 16-500 um band-pass, plane levelling (as cmcR).
BREECH_FACE = ExtractParams()

#: Firing pin: input spacing kept, 8-250 um band-pass, second-order levelling (removes the bowl).
FIRING_PIN = ExtractParams(target_spacing_m=None, bandpass_m=(8e-6, 250e-6), level_order=2, min_island_m=30e-6)
