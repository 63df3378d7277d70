"""The :class:`Comparison` result: CMC count, score, registration, per-cell table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._json import jsonable as _clean

__all__ = ["Comparison"]


@dataclass
class Comparison:
    """Result of :func:`ballistics.comparison.compare`.

    Direction convention
    --------------------
    In direction ``"a_to_b"`` the cells are cut from ``a`` (the reference) and searched
    in ``b`` (the target) after rotating ``b`` by ``theta`` degrees about its centre,
    **clockwise as displayed** (rows down, columns right; cmcR's sign).  A cell whose
    centre is at pixel ``p`` of ``a`` matches at translation ``t = (dy, dx)`` pixels when
    it lands on::

        x_b = c_b + M(theta) @ (p - c_a + t),   M(theta) = [[cos, -sin], [sin, cos]]

    in ``b``'s own pixels (``c_a``, ``c_b`` the array centres ``((rows-1)/2, (cols-1)/2)``,
    vectors ``(row, col)``).  ``t`` is therefore a shift in ``a``'s frame (after undoing
    the rotation): positive ``dy`` = down, positive ``dx`` = right.  ``"b_to_a"`` is the
    same with the roles swapped.  :func:`ballistics.comparison.align` resamples ``b`` into
    ``a``'s frame with the consensus registration, so ``a`` and the aligned ``b`` overlay.

    Attributes
    ----------
    method : str
        ``"original"`` (Song 2013), ``"high"`` (Tong et al. 2015) or ``"convergence"``
        (Chen et al. 2017).
    cmc_count : int
        Number of congruent matching cells of the pair: ``"high"``: cmcR's combined count
        of both directions; ``"original"`` and ``"convergence"``: the smaller of the two
        directions' counts.  ``"high"``/``"convergence"`` count 0 when the two
        directions' registrations are not inverse of each other (``require_consistency``).
    score : float
        The score the candidate lists and the LR use; higher means more similar, never
        NaN.  ``learned_score`` for the native pipeline (``score_kind == "learned"``),
        else ``cmc_score`` (``cmc_count`` plus the mean correlation of the congruent
        cells, so pairs with equal counts are ordered by how well their CMCs correlate;
        the CMC count is the similarity score of Song 2013).
    rotation_deg : float
        Consensus rotation of ``b`` (direction ``a_to_b``), degrees, see above.
    translation_m : tuple of float
        Consensus translation ``(dy, dx)`` in metres (``a``'s frame, see above).
    correlation : float or None
        Areal (full-surface) Pearson correlation of ``a`` and the aligned ``b`` over the
        pixels valid in both (Song 2013's "ACCF max" after CMC registration); None only
        if they overlap too little.
    directions : dict
        ``"a_to_b"``/``"b_to_a"`` -> ``{"cmc_count", "rotation_deg", "translation_px",
        "passed", "original_count", "high_count", "convergence_count", "n_cells"}``.
    cells : list of dict
        One entry per usable cell per direction: ``direction``, ``row``, ``col``,
        ``ref_box_px`` ``(r0, c0, h, w)``, ``target_centre_px`` ``(r, c)``,
        ``rotation_deg``, ``dy_px``, ``dx_px``, ``ncc``, ``congruent``.
    rotation_curve : dict
        Direction -> list of ``(theta_deg, n_congruent)``: the CMC-theta distribution
        (Tong et al. 2015).  In a coarse-to-fine search the angles away from the refined
        peaks carry the coarse (downsampled) counts, the refined angles full-resolution
        counts.
    params : dict
        Every parameter used.
    library_version : str
    inputs : list of dict
        ``{"name", "sha256" (source file), "checksum" (array)}`` for ``a`` then ``b``.
    elapsed_s : float
    a_name, b_name : str
    method_counts : dict
        Pair-level CMC count of every method (``"original"``, ``"high"``,
        ``"convergence"``) from the same cell correlations.
    frames : dict
        Shapes of ``a`` and ``b`` (for :func:`~ballistics.comparison.align`), whether ``b``
        was mirrored, and the convention in words.
    mirrored : bool
        True if ``b`` was refined and is reported mirrored (its rows reversed, x3ptools'
        ``x3p_flip_y``), because its mirror image gave the stronger evidence (the coarse
        peaks, or the final counts when both handedness were refined): the
        registration, the cells' target positions and the areal correlation then refer
        to ``b.data[::-1]`` (:func:`~ballistics.comparison.align` applies the flip).
    warnings : list of str
        Plain-language warnings for the examiner: a mirrored *match* (``mirrored`` and
        ``cmc_count > 0``) means the two files have opposite handedness (different
        conversion routes); the examiner must check their provenance.
    handedness : dict
        ``"as_given"`` and/or ``"mirrored"`` (the handedness searched) -> the coarse
        stage's evidence: ``consistent_peak`` (cells; the count that direction a_to_b
        reaches at some rotation while b_to_a reaches it at the inverse rotation: the
        handedness decision, read on the mirror screen's rotations when both were
        searched), and of direction a_to_b ``coarse_max_cmc`` (peak of the coarse
        CMC-theta curve), ``coarse_ncc_sum`` (its cells' correlation sum, the tie-break)
        and ``rotation_deg`` (its rotation); ``screened`` (mirrored only) is True when
        the mirror was only screened (every other rotation), not refined; then
        ``screen_b_to_a_rotations`` counts the rotations its b_to_a screen searched
        (only those that could lift its consistent peak over the decision threshold),
        and ``consistent_peak_at_most``, present when some were skipped, bounds the
        consistent peak of the whole screen (``consistent_peak`` is then the peak over
        the rotations searched).  With ``handedness_decision="evidence"`` both coarse
        stages cover the whole grid, and when neither consistent peak led by more than
        ``mirror_margin`` both handedness were refined and each entry also holds
        ``final_cmc`` and ``final_learned_score``, the final evidence that decided.
        Empty for the full-grid cmcR pipeline.
    score_kind : str
        ``"learned"`` (``score`` is the learned score) or ``"cmc"`` (``score`` is
        ``cmc_score``: the cmcR pipeline, or a result made without the evidence step).
    cmc_score : float or None
        ``cmc_count`` plus the mean correlation of the congruent cells (0 without CMCs):
        the CMC family's own score (Song 2013).
    learned_score : float or None
        Logit of the learned model (:mod:`ballistics.comparison._learned`; model card in
        ``ballistics/comparison/data/learned_score_card.md``); > 0 leans to same firearm
        with equal priors.  Not a likelihood ratio.
    score_contributions : dict
        Feature -> its contribution to ``learned_score`` (they add up to it with the
        intercept, key ``"intercept"``).
    llr : float or None
        log10 likelihood ratio (same firearm vs different firearms), bounded by the LR
        system's empirical lower and upper bounds (ELUB, Vergeer et al. 2016).
    llr_interval : (float, float) or None
        Interval of ``llr`` (log10) from the LR system's firearm bootstrap.
    lr : dict
        The LR system's account: ``verbal`` (ENFSI 2015), ``system`` (name, version,
        reference population, cross-validated Cllr), ``warnings``.
    """

    method: str
    cmc_count: int
    score: float
    rotation_deg: float
    translation_m: tuple[float, float]
    correlation: float | None
    directions: dict[str, dict[str, Any]]
    cells: list[dict[str, Any]]
    rotation_curve: dict[str, list[tuple[float, int]]]
    params: dict[str, Any]
    library_version: str
    inputs: list[dict[str, str]]
    elapsed_s: float
    a_name: str
    b_name: str
    method_counts: dict[str, int] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    mirrored: bool = False
    warnings: list[str] = field(default_factory=list)
    handedness: dict[str, dict[str, float]] = field(default_factory=dict)
    score_kind: str = "cmc"
    cmc_score: float | None = None
    learned_score: float | None = None
    score_contributions: dict[str, float] = field(default_factory=dict)
    llr: float | None = None
    llr_interval: tuple[float, float] | None = None
    lr: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of every field (NaN as None)."""
        return _clean({
            "method": self.method, "cmc_count": self.cmc_count, "score": self.score,
            "rotation_deg": self.rotation_deg, "translation_m": list(self.translation_m),
            "correlation": self.correlation, "directions": self.directions, "cells": self.cells,
            "rotation_curve": {k: [list(x) for x in v] for k, v in self.rotation_curve.items()},
            "params": self.params, "library_version": self.library_version, "inputs": self.inputs,
            "elapsed_s": self.elapsed_s, "a_name": self.a_name, "b_name": self.b_name,
            "method_counts": self.method_counts, "frames": self.frames, "mirrored": self.mirrored,
            "warnings": list(self.warnings), "handedness": self.handedness,
            "score_kind": self.score_kind, "cmc_score": self.cmc_score, "learned_score": self.learned_score,
            "score_contributions": self.score_contributions, "llr": self.llr,
            "llr_interval": None if self.llr_interval is None else list(self.llr_interval), "lr": self.lr,
        })

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        """Rebuild a result from :meth:`to_dict` output (e.g. read back from JSON)."""
        d = dict(d)
        d["translation_m"] = tuple(d["translation_m"])
        d["rotation_curve"] = {k: [tuple(x) for x in v] for k, v in d.get("rotation_curve", {}).items()}
        if d.get("rotation_deg") is None:
            d["rotation_deg"] = float("nan")
        if d.get("llr_interval") is not None:
            d["llr_interval"] = tuple(d["llr_interval"])
        return cls(**d)

    def cells_table(self) -> list[dict[str, Any]]:
        """The per-cell table (list of dicts, one per cell per direction)."""
        return [dict(c) for c in self.cells]

    def summary(self) -> str:
        """One line: names, method, CMC count, score, registration, correlation."""
        corr = "n/a" if self.correlation is None else f"{self.correlation:.3f}"
        dirs = ", ".join(f"{k} {v['cmc_count']}" + ("" if v.get("passed") is None else
                                                   (" passed" if v["passed"] else " failed"))
                         for k, v in self.directions.items())
        mir = " (b mirrored: check provenance)" if (self.mirrored and self.cmc_count > 0) else ""
        lr = "" if self.llr is None else f", log10 LR {self.llr:+.2f}"
        return (f"{self.a_name} vs {self.b_name}{mir}: {self.method} CMC = {self.cmc_count} ({dirs}), "
                f"{self.score_kind} score {self.score:.3f}{lr}, rotation {self.rotation_deg:.1f} deg, translation "
                f"({self.translation_m[0] * 1e6:.1f}, {self.translation_m[1] * 1e6:.1f}) um, "
                f"areal correlation {corr}, {self.elapsed_s:.2f} s")

    def __repr__(self) -> str:
        return f"Comparison({self.summary()})"
