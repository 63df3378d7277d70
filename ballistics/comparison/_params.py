"""The comparison's parameters: one typed, validated, immutable object.

:class:`CompareParams` holds every setting of :func:`~ballistics.comparison.compare`,
declared with :mod:`ballistics._params`: each field states its rule, its unit and what
it means; bad values raise :class:`~ballistics.errors.ParameterError` when the object
is built.  Named parameter sets are instances (:data:`PRESETS`): ``"default"``
(360-degree coarse-to-fine search, masked NCC, both handedness) and ``"cmcr"`` (cmcR
0.1.11's settings and cell pipeline).  Results record ``CompareParams.to_dict()``;
:meth:`CompareParams.from_dict` rebuilds the object from it.

The evidence behind the defaults is in ``benchmarks/results_compare.md`` (section S for
``coarse_factor`` / ``fine_factor``) and ``benchmarks/results_evidence.md`` (the handedness
decision, measured on TopMatch and confocal scans leaving whole firearms out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .._params import Boolean, Choice, Integer, Pair, Params, Real, param
from ..errors import ParameterError

__all__ = ["CompareParams", "PRESETS", "METHODS", "MIN_ROTATION_STEP_DEG", "MAX_ROTATIONS", "resolve"]

METHODS = ("original", "high", "convergence")

#: Smallest angular step, degrees (``rotation_step`` and ``coarse_step``): finer steps
#: cannot be resolved by cells of a few hundred micrometres and only multiply the work.
MIN_ROTATION_STEP_DEG = 0.1

#: Most rotations one direction of a comparison may evaluate at full resolution: the
#: whole ``rotation_range`` at ``rotation_step`` when ``coarse_step`` is None, else the
#: refinement windows of the ``n_candidates`` coarse peaks.  (The full circle at 0.25
#: degrees; the default evaluates 6, the cmcR preset 21.)
MAX_ROTATIONS = 1441


@dataclass(frozen=True)
class CompareParams(Params):
    """Every parameter of :func:`~ballistics.comparison.compare`; validated on construction.

    Build variants with :meth:`replace` (``PRESETS["default"].replace(corr_threshold=0.6)``);
    :meth:`describe` lists each field's rule, unit and meaning.

    Raises
    ------
    ParameterError
        A value out of range or of the wrong type, or an inconsistent combination.
    """

    _kind: ClassVar[str] = "comparison parameter"

    cell_grid: tuple[int, int] = param(
        (8, 8), Pair(Integer(1, 64)),
        "Cells (rows, columns) over the reference's bounding box (Song 2013).", unit="cells")
    min_valid: float = param(
        0.15, Real(0.0, 1.0, lo_open=True),
        "Minimum valid fraction of a cell (cmcR minObservedProp).", unit="fraction")
    region_min_valid: float | None = param(
        None, Real(0.0, 1.0, lo_open=True, none=True),
        "Minimum valid fraction of a target region's area (cmcR: 0.15, preset 'cmcr'); None: the region "
        "must hold min_valid x the cell's area, so a border cell whose region sticks out of the target "
        "is still matched.", unit="fraction")
    region_multiplier: float = param(
        3.0, Real(1.0, 9.0),
        "Region side / cell side: the translation search is +-(m - 1) / 2 cell sides (cmcR "
        "regionSizeMult = 9 in area).", unit="ratio")
    corr_threshold: float = param(
        0.5, Real(-1.0, 1.0), "Minimum cell correlation of a CMC (Song 2013; cmcR).", unit="NCC")
    translation_threshold_px: float = param(
        20.0, Real(0.0, lo_open=True),
        "Maximum distance of a CMC's translation from the consensus (cmcR; 20 px = 125 um at 6.25 um).",
        unit="px")
    rotation_threshold_deg: float = param(
        6.0, Real(0.0, 180.0, lo_open=True),
        "Maximum rotation difference (original rule) / width of the High-CMC peak (Song 2013; Tong "
        "et al. 2015).", unit="deg")
    tau: int = param(
        1, Integer(0, 64), "High CMC: rotations with count >= max - tau are 'high' (Tong et al. 2015).",
        unit="cells")
    rotation_range: tuple[float, float] = param(
        (-180.0, 180.0), Pair(Real(-360.0, 360.0), ordered=True),
        "Rotations of the target searched, (low, high) with high - low <= 360 (360 = the full circle).",
        unit="deg")
    rotation_step: float = param(
        3.0, Real(MIN_ROTATION_STEP_DEG, 90.0), "Final angular step of the rotation search.", unit="deg")
    coarse_step: float | None = param(
        6.0, Real(MIN_ROTATION_STEP_DEG, 90.0, none=True),
        "Coarse-to-fine search: the range is first scanned at this step on surfaces downsampled by "
        "coarse_factor, then the n_candidates best rotations are refined within +-coarse_step / 2 at "
        "rotation_step; None evaluates every rotation of the range at full resolution (as cmcR).",
        unit="deg")
    coarse_factor: int = param(
        6, Integer(1, 16),
        "Downsampling of the coarse stage (lowered for small surfaces, see _search.fit_factors; chosen "
        "for speed and checked on 801 labelled pairs, results_compare.md section S).", unit="x")
    n_candidates: int = param(
        2, Integer(1, 32), "Coarse rotation peaks refined at rotation_step.", unit="rotations")
    fine_margin_px: int | None = param(
        None, Integer(1, 10000, none=True),
        "Translation window of the fine stage around the coarse estimate; None: the region's own "
        "margin (+-1 cell side).", unit="px")
    fine_factor: int = param(
        2, Integer(1, 8),
        "Downsampling of the fine stage, refined at full resolution within +-(refine_px + "
        "fine_factor // 2) px (1: directly at full resolution; results_compare.md section S).", unit="x")
    refine_px: int = param(
        2, Integer(0, 64), "Half-width of the full-resolution refinement window.", unit="px")
    high_fallback: str = param(
        "none", Choice("none", "original"),
        "High CMC count of a pair when a direction fails: 'original' = the smaller original-rule count "
        "(cmcR; preset 'cmcr'), 'none' = 0.")
    require_consistency: bool = param(
        True, Boolean(),
        "'high'/'convergence': a direction keeps its CMCs only if the two directions' consensus "
        "registrations are inverse of each other within the thresholds (False as cmcR 0.1.11).")
    min_overlap: float = param(
        0.8, Real(0.0, 1.0, lo_open=True),
        "Masked NCC: minimum overlap, fraction of the cell's valid pixels (0.5 let different-firearm "
        "Fadul pairs reach 24 CMCs, 0.8 none).", unit="fraction")
    spacing_tolerance: float = param(
        0.01, Real(0.0, 0.5), "Largest relative difference of the two surfaces' pixel sizes.",
        unit="fraction")
    workers: int | None = param(
        None, Integer(1, 1024, none=True),
        "Threads for the FFTs; None: the engine's compute threads (ballistics.set_threads, default 1).",
        unit="threads")
    pipeline: str = param(
        "native", Choice("native", "cmcr"),
        "'cmcr': cmcR 0.1.11's cell comparison step for step (only with coarse_step=None and "
        "handedness='as_given').")
    handedness: str = param(
        "both", Choice("both", "as_given", "mirrored"),
        "'both': b is also searched mirrored (rows reversed, x3ptools' x3p_flip_y) and the handedness "
        "is chosen by handedness_decision; 'as_given'; 'mirrored': only b mirrored.")
    mirror_margin: int = param(
        6, Integer(0, 64),
        "Cells by which one handedness' consistent coarse peak must lead the other's to decide the "
        "handedness from the coarse stage alone; below it both are refined "
        "(handedness_decision='evidence') or the mirror loses (handedness_decision='coarse').",
        unit="cells")
    handedness_decision: str = param(
        "evidence", Choice("evidence", "coarse"),
        "'evidence': unless a coarse peak clearly leads, both handedness are refined and the one with "
        "more final, consistency-checked CMCs wins (the learned score breaks ties between non-zero "
        "counts; with no CMC either way the files as given are kept); 'coarse': the mirror is refined "
        "only if its consistent coarse peak leads by more than mirror_margin (use mirror_margin=1).")

    def _check(self) -> None:
        lo, hi = self.rotation_range
        if hi - lo > 360.0:
            raise ParameterError(f"rotation_range must be (low, high) degrees with low <= high <= low + 360, "
                                 f"got {self.rotation_range!r}")
        if self.pipeline == "cmcr" and self.coarse_step is not None:
            raise ParameterError("pipeline='cmcr' evaluates every rotation (as cmcR); set coarse_step=None "
                                 "or use preset='cmcr'.")
        if self.pipeline == "cmcr" and self.handedness != "as_given":
            raise ParameterError("pipeline='cmcr' compares the scans as given (as cmcR); set "
                                 "handedness='as_given' or use preset='cmcr'.")
        lo, hi = self.rotation_range
        n_coarse = 0 if self.coarse_step is None else int((hi - lo) / self.coarse_step) + 1
        n = max(self.n_rotations(), n_coarse)
        if n > MAX_ROTATIONS:
            raise ParameterError(
                f"rotation_range {self.rotation_range!r} at rotation_step {self.rotation_step:g} deg "
                f"(coarse_step {self.coarse_step}) would evaluate {n} rotations in one stage, above the "
                f"limit of {MAX_ROTATIONS}; use a larger rotation_step, a narrower rotation_range or a "
                "coarse_step.")

    def n_rotations(self) -> int:
        """Rotations one direction evaluates at full resolution (at most :data:`MAX_ROTATIONS`)."""
        lo, hi = self.rotation_range
        if self.coarse_step is None:
            return int((hi - lo) / self.rotation_step) + 1
        per_peak = int(self.coarse_step / self.rotation_step) + 1
        return min(self.n_candidates * per_peak, int((hi - lo) / self.rotation_step) + 1)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> CompareParams:
        """Rebuild from :meth:`to_dict` output (lists become tuples); unknown names raise ParameterError."""
        d = dict(values or {})
        for k in ("cell_grid", "rotation_range"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return super().from_dict(d)


#: Named parameter sets.  ``"cmcr"`` reproduces cmcR 0.1.11's settings and cell pipeline.
PRESETS: dict[str, CompareParams] = {
    "default": CompareParams(),
    "cmcr": CompareParams(rotation_range=(-30.0, 30.0), rotation_step=3.0, coarse_step=None,
                          region_multiplier=3.0, high_fallback="original", region_min_valid=0.15,
                          require_consistency=False, pipeline="cmcr", handedness="as_given"),
}


def resolve(method: str, preset: str | CompareParams, params: Mapping[str, Any] | None = None) -> CompareParams:
    """The parameters of one comparison: ``preset`` (a name or an instance) with ``params`` applied.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    preset : str or CompareParams
        A name of :data:`PRESETS` or an instance used as the base.
    params : mapping, optional
        Field overrides (validated).

    Returns
    -------
    CompareParams

    Raises
    ------
    ParameterError
        An unknown method, preset or parameter, or a value out of range.
    """
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
