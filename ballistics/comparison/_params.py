"""The comparison's parameters: one typed, validated, immutable object.

:class:`CompareParams` holds every setting of :func:`~ballistics.comparison.compare`;
bad values raise :class:`~ballistics.errors.ParameterError` when the object is built.
Named parameter sets are instances (:data:`PRESETS`): ``"default"`` (360-degree
coarse-to-fine search, masked NCC, both handedness) and ``"cmcr"`` (cmcR 0.1.11's
settings and cell pipeline).  Results record ``CompareParams.to_dict()``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError

__all__ = ["CompareParams", "PRESETS", "METHODS", "resolve"]

METHODS = ("original", "high", "convergence")


def _num(name: str, v: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ParameterError(f"{name} must be a finite number, got {v!r}")
    if integer and float(v) != int(v):
        raise ParameterError(f"{name} must be an integer, got {v!r}")
    x = float(v)
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise ParameterError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {v!r}")
    if hi is not None and x > hi:
        raise ParameterError(f"{name} must be <= {hi:g}, got {v!r}")
    return int(v) if integer else x


def _choice(name: str, v: Any, options: tuple[str, ...]) -> str:
    if v not in options:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, options))}; got {v!r}")
    return str(v)


def _pair(name: str, v: Any) -> tuple[Any, Any]:
    try:
        a, b = v
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a pair (two values), got {v!r}") from exc
    return a, b


@dataclass(frozen=True)
class CompareParams:
    """Every parameter of :func:`~ballistics.comparison.compare` (see its docstring for
    the meaning and sources of each); validated on construction.

    Build variants with :meth:`replace` (``PRESETS["default"].replace(corr_threshold=0.6)``).

    Raises
    ------
    ParameterError
        A value out of range or of the wrong type, or an inconsistent combination.
    """

    cell_grid: tuple[int, int] = (8, 8)
    min_valid: float = 0.15
    region_min_valid: float | None = None
    region_multiplier: float = 3.0
    corr_threshold: float = 0.5
    translation_threshold_px: float = 20.0
    rotation_threshold_deg: float = 6.0
    tau: int = 1
    rotation_range: tuple[float, float] = (-180.0, 180.0)
    rotation_step: float = 3.0
    coarse_step: float | None = 6.0
    coarse_factor: int = 6     # 4 until issue 13; with fine_factor 2 checked on 801 pairs (results_compare.md S)
    n_candidates: int = 2
    fine_margin_px: int | None = None
    fine_factor: int = 2       # 1 until issue 13 (see coarse_factor)
    refine_px: int = 2
    high_fallback: str = "none"
    require_consistency: bool = True
    min_overlap: float = 0.8
    spacing_tolerance: float = 0.01
    workers: int | None = None
    pipeline: str = "native"
    handedness: str = "both"
    mirror_margin: int = 6      # results_evidence.md (handedness); 1 with handedness_decision="coarse"
    handedness_decision: str = "evidence"

    def __post_init__(self) -> None:
        s = object.__setattr__
        g = _pair("cell_grid", self.cell_grid)
        s(self, "cell_grid", (int(_num("cell_grid rows", g[0], 1, 64, integer=True)),
                              int(_num("cell_grid columns", g[1], 1, 64, integer=True))))
        s(self, "min_valid", _num("min_valid", self.min_valid, 0.0, 1.0, lo_open=True))
        if self.region_min_valid is not None:
            s(self, "region_min_valid", _num("region_min_valid", self.region_min_valid, 0.0, 1.0, lo_open=True))
        s(self, "region_multiplier", _num("region_multiplier", self.region_multiplier, 1.0, 9.0))
        s(self, "corr_threshold", _num("corr_threshold", self.corr_threshold, -1.0, 1.0))
        s(self, "translation_threshold_px", _num("translation_threshold_px", self.translation_threshold_px,
                                                 0.0, lo_open=True))
        s(self, "rotation_threshold_deg", _num("rotation_threshold_deg", self.rotation_threshold_deg, 0.0, 180.0,
                                               lo_open=True))
        s(self, "tau", _num("tau", self.tau, 0, 64, integer=True))
        lo, hi = _pair("rotation_range", self.rotation_range)
        lo, hi = _num("rotation_range low", lo, -360.0, 360.0), _num("rotation_range high", hi, -360.0, 360.0)
        if hi < lo or hi - lo > 360.0:
            raise ParameterError(f"rotation_range must be (low, high) degrees with low <= high <= low + 360, "
                                 f"got {self.rotation_range!r}")
        s(self, "rotation_range", (lo, hi))
        s(self, "rotation_step", _num("rotation_step", self.rotation_step, 0.0, 90.0, lo_open=True))
        if self.coarse_step is not None:
            s(self, "coarse_step", _num("coarse_step", self.coarse_step, 0.0, 90.0, lo_open=True))
        s(self, "coarse_factor", _num("coarse_factor", self.coarse_factor, 1, 16, integer=True))
        s(self, "n_candidates", _num("n_candidates", self.n_candidates, 1, 32, integer=True))
        if self.fine_margin_px is not None:
            s(self, "fine_margin_px", _num("fine_margin_px", self.fine_margin_px, 1, 10000, integer=True))
        s(self, "fine_factor", _num("fine_factor", self.fine_factor, 1, 8, integer=True))
        s(self, "refine_px", _num("refine_px", self.refine_px, 0, 64, integer=True))
        s(self, "high_fallback", _choice("high_fallback", self.high_fallback, ("none", "original")))
        if not isinstance(self.require_consistency, bool):
            raise ParameterError(f"require_consistency must be True or False, got {self.require_consistency!r}")
        s(self, "min_overlap", _num("min_overlap", self.min_overlap, 0.0, 1.0, lo_open=True))
        s(self, "spacing_tolerance", _num("spacing_tolerance", self.spacing_tolerance, 0.0, 0.5))
        if self.workers is not None:
            s(self, "workers", _num("workers", self.workers, 1, 1024, integer=True))
        s(self, "pipeline", _choice("pipeline", self.pipeline, ("native", "cmcr")))
        s(self, "handedness", _choice("handedness", self.handedness, ("both", "as_given", "mirrored")))
        s(self, "mirror_margin", _num("mirror_margin", self.mirror_margin, 0, 64, integer=True))
        s(self, "handedness_decision", _choice("handedness_decision", self.handedness_decision,
                                               ("evidence", "coarse")))
        if self.pipeline == "cmcr" and self.coarse_step is not None:
            raise ParameterError("pipeline='cmcr' evaluates every rotation (as cmcR); set coarse_step=None "
                                 "or use preset='cmcr'.")
        if self.pipeline == "cmcr" and self.handedness != "as_given":
            raise ParameterError("pipeline='cmcr' compares the scans as given (as cmcR); set "
                                 "handedness='as_given' or use preset='cmcr'.")

    def replace(self, **changes: Any) -> CompareParams:
        """A copy with ``changes`` applied (validated); unknown names raise ParameterError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"Unknown comparison parameter(s) {sorted(unknown)}; known: "
                                 f"{sorted(f.name for f in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every parameter as a plain dict (recorded in ``Comparison.params``)."""
        return dataclasses.asdict(self)


#: Named parameter sets.  ``"cmcr"`` reproduces cmcR 0.1.11's settings and cell pipeline.
PRESETS: dict[str, CompareParams] = {
    "default": CompareParams(),
    "cmcr": CompareParams(rotation_range=(-30.0, 30.0), rotation_step=3.0, coarse_step=None,
                          region_multiplier=3.0, high_fallback="original", region_min_valid=0.15,
                          require_consistency=False, pipeline="cmcr", handedness="as_given"),
}


def resolve(method: str, preset: str | CompareParams, params: dict[str, Any]) -> CompareParams:
    """The parameters of one comparison: ``preset`` (a name or an instance) with ``params``
    applied; raises ParameterError for an unknown method, preset or parameter."""
    if method not in METHODS:
        raise ParameterError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if isinstance(preset, CompareParams):
        base = preset
    elif isinstance(preset, str) and preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ParameterError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)} "
                             "or pass a CompareParams.")
    return base.replace(**params) if params else base
