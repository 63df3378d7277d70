"""Cells of a comparison as plain tables: which, where, numbered how (no plotting here).

A :class:`~ballistics.comparison.Comparison` (or its ``to_dict()``) holds one row per
cell and direction (``direction``, ``row``, ``col``, ``ref_box_px``,
``target_centre_px``, ``rotation_deg``, ``ncc``, ``congruent``, ...).  The figures and
the report select, number and place those rows with the helpers here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ComparisonError
from ..scan import Scan

__all__ = ["comparison_dict", "directions_of", "cell_numbers", "rotated_box_corners", "aligned_pair"]

_FIELDS = ("method", "cmc_count", "score", "rotation_deg", "translation_m", "correlation",
           "directions", "cells", "rotation_curve", "params", "library_version", "inputs",
           "elapsed_s", "a_name", "b_name", "method_counts", "frames", "mirrored", "warnings", "handedness",
           "score_kind", "cmc_score", "learned_score", "score_contributions", "llr", "llr_interval", "lr")


def comparison_dict(cmp: Any) -> dict[str, Any]:
    """A comparison object or its ``to_dict()`` as a plain dict of the result's fields."""
    if isinstance(cmp, Mapping):
        return dict(cmp)
    out = {k: getattr(cmp, k) for k in _FIELDS if hasattr(cmp, k)}
    if not out and callable(getattr(cmp, "to_dict", None)):
        out = dict(cmp.to_dict())
    if not out:
        raise ComparisonError(f"Expected a ballistics.comparison.Comparison (or its to_dict()), "
                              f"got {type(cmp).__name__}.")
    return out


def directions_of(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Directions present among the cells (``"a_to_b"``, ``"b_to_a"``), in first-seen order."""
    seen: list[str] = []
    for c in cells:
        d = c.get("direction", "a_to_b")
        if d not in seen:
            seen.append(d)
    return seen


def cell_numbers(sel: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Number the congruent cells 1..n in reading order (row, then column).

    Returns
    -------
    dict
        ``id(cell) -> number`` for the congruent cells of ``sel``.

    Examples
    --------
    >>> cells = [{"row": 1, "col": 0, "congruent": True}, {"row": 0, "col": 3, "congruent": True},
    ...          {"row": 0, "col": 1, "congruent": False}]
    >>> sorted(cell_numbers(cells).values()), cell_numbers(cells)[id(cells[1])]
    ([1, 2], 1)
    """
    cong = [c for c in sel if c.get("congruent")]
    cong.sort(key=lambda c: (c.get("row", 0), c.get("col", 0)))
    return {id(c): i + 1 for i, c in enumerate(cong)}


def rotated_box_corners(centre_rc: Sequence[float], h: float, w: float, angle_deg: float) -> np.ndarray:
    """Corners ``(x, y)`` in pixels of an ``h x w`` box centred at ``(r, c)``, rotated.

    The angle is the rotation of the cell's content between reference and target, in
    degrees, positive counter-clockwise as seen on screen (rows down).

    Examples
    --------
    >>> rotated_box_corners((10, 20), 2, 4, 0).tolist()
    [[18.0, 9.0], [22.0, 9.0], [22.0, 11.0], [18.0, 11.0]]
    """
    r, c = float(centre_rc[0]), float(centre_rc[1])
    t = np.deg2rad(angle_deg)
    # screen counter-clockwise with y down: x' = x cos + y sin, y' = -x sin + y cos
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    return pts @ rot.T + np.array([c, r])


def aligned_pair(a: Scan, b: Scan, cmp: Any) -> tuple[Scan, Scan]:
    """``(a, b resampled into a's frame)`` using the comparison's registration.

    Uses :func:`ballistics.comparison.align`, so the figure shows exactly the
    registration that produced the score.

    Parameters
    ----------
    a, b : Scan
        The compared scans (as given to :func:`ballistics.compare`, ``a`` first).
    cmp : Comparison or dict
        Result of :func:`ballistics.compare` (or its ``to_dict()``).

    Returns
    -------
    (Scan, Scan)
        ``a`` and ``b`` aligned to it, on ``a``'s pixel grid.
    """
    from ..comparison import Comparison, align

    if isinstance(cmp, Mapping):
        try:
            cmp = Comparison.from_dict(dict(cmp))
        except (KeyError, TypeError, ValueError) as exc:
            raise ComparisonError(f"The comparison dict cannot be read back as a Comparison: {exc}") from exc
    if not hasattr(cmp, "frames"):
        raise ComparisonError(f"aligned_pair needs a ballistics.comparison.Comparison, got {type(cmp).__name__}.")
    b_al = align(b, cmp)
    if b_al.shape != a.shape:
        raise ComparisonError(f"The aligned scan has shape {b_al.shape}, not the reference's {a.shape}; "
                              "pass the scans in the order they were compared.")
    return a, b_al
