"""Sections of the comparison report: summary, result tables and the embedded figures.

Each function returns an HTML fragment; figures are made outside pyplot
(:func:`~ballistics.review._figures.new_figure`) and embedded as PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import BallisticsError
from ..scan import Scan
from ._cells import cell_numbers, directions_of
from ._colour_scale import common_limits
from ._figures import new_figure
from ._html import esc, figure_html, fmt, table
from ._lr_sections import lr_headline
from ._plot_agreement import draw_agreement
from ._plot_cells import draw_comparison
from ._plot_curves import rotation_curve, score_reference
from ._plot_surfaces import regions, scan, virtual_light
from .reference import Placement

__all__ = ["summary", "result_tables", "cells_table", "regions_section", "surfaces_section",
           "cells_section", "rotation_section", "agreement_section", "reference_section"]

_CAVEAT = (
    "<div class='caveat'><p><b>What these numbers do not say.</b></p><ul>"
    "<li>The count of congruent cells and the learned score measure how similar two surfaces are: "
    "not a probability that they were fired by the same firearm, and not an identification by itself.</li>"
    "<li>The likelihood ratio is <b>not the probability that the same firearm fired both cases</b>, nor the odds "
    "of it: it says how much more probable this score is if the same firearm fired both than if two different "
    "firearms did. Turning it into a probability needs prior odds, which are for the court, not for this "
    "software.</li>"
    "<li>The propositions are at <b>source level</b> (same firearm or different firearms); the LR says nothing "
    "about who fired, when, or how the cases came to be where they were found (activity level).</li>"
    "<li>The LR depends on the LR system and on its <b>reference population</b> (which firearms, ammunition, "
    "instruments and processing it was fitted on). For a firearm, ammunition, instrument or surface quality "
    "unlike that population the LR can mislead; heed the applicability warnings. Another reference population "
    "or another system can give another LR for the same pair.</li>"
    "<li>A small reference set cannot support large LRs: the LR is held within empirical lower and upper "
    "bounds (ELUB, Vergeer et al. 2016), so an LR at a bound means 'at least this strong as far as the data "
    "can show', not a measured value. Small reference sets also cannot show rare events.</li>"
    "<li>Scores from other software or other parameters are on a different scale and cannot be compared with "
    "these. Low counts can come from poor marks or poor scans rather than different firearms.</li>"
    "<li>The figures show where the agreement is, so that an examiner can judge whether it lies on marks from "
    "the firearm (breech-face marks) rather than on damage, debris or edges; the conclusion remains the "
    "examiner's.</li></ul></div>")


def summary(d: Mapping[str, Any], a: Scan, b: Scan, place: Placement | None, ref_desc: str | None,
            n_cells: int) -> str:
    """Plain-language summary: what was compared, the count, where it falls, what it does not say."""
    cmc = d.get("cmc_count")
    rot = d.get("rotation_deg")
    parts = [f"<p><b>{esc(a.name)}</b> and <b>{esc(b.name)}</b> were compared with the "
             f"<b>{esc(d.get('method', 'comparison'))}</b> Congruent Matching Cells method. The first surface was "
             f"cut into {n_cells} cells (those with enough measured area); each cell was searched for in the other "
             "surface over a range of rotations and shifts. A cell is <i>congruent</i> when its best match is "
             "similar enough (correlation above the threshold) and lies at the same rotation and shift as most "
             f"other cells. <b>{esc(cmc)}</b> cells were congruent"
             + (f", at a rotation of {rot:.1f} degrees" if isinstance(rot, (int, float)) and np.isfinite(rot) else "")
             + ".</p>"]
    if place is not None:
        parts.append(
            f"<p>Among {esc(ref_desc)}, {place.same_at_or_above} of {place.n_same} same-firearm pairs and "
            f"{place.different_at_or_above} of {place.n_different} different-firearm pairs scored "
            f"{esc(cmc)} or more (highest different-firearm score: {fmt(place.max_different)}; lowest "
            f"same-firearm score: {fmt(place.min_same)}).</p>")
    parts.append(lr_headline(d))
    parts.append(_CAVEAT)
    return "<h2>Summary</h2><div class='summary'>" + "".join(parts) + "</div>"


def result_tables(d: Mapping[str, Any]) -> str:
    """The result (count, score, registration, correlation, time) and the per-direction counts."""
    tr = d.get("translation_m") or (np.nan, np.nan)
    rows: list[list[Any]] = [["method", d.get("method")], ["congruent matching cells (CMC count)", d.get("cmc_count")],
            [f"score ({d.get('score_kind', 'n/a')})", d.get("score")], ["CMC score", d.get("cmc_score")],
            ["learned score (logit)", d.get("learned_score")], ["log10 likelihood ratio", d.get("llr")],
            ["second scan mirrored (rows reversed)", bool(d.get("mirrored"))],
            ["registration: rotation (degrees)", d.get("rotation_deg")],
            ["registration: shift dy, dx (um)", [float(tr[0]) * 1e6, float(tr[1]) * 1e6]],
            ["correlation of the aligned surfaces", d.get("correlation")],
            ["computation time (s)", d.get("elapsed_s")]]
    out = "<h2>Result</h2>" + table(rows, ["quantity", "value"])
    dir_rows = []
    for name, v in (d.get("directions") or {}).items():
        v = dict(v)
        dir_rows.append([name.replace("_", " "), v.get("cmc_count"), v.get("rotation_deg"),
                         v.get("translation_px"), v.get("passed")])
    if dir_rows:
        out += ("<p>Per direction (cells cut from the first scan and searched in the second, and the reverse):</p>"
                + table(dir_rows, ["direction", "CMC count", "rotation (deg)", "shift (px)",
                                   "passed the High-CMC check"]))
    return out


def cells_table(cells_all: Sequence[Mapping[str, Any]]) -> str:
    """The congruent cells of each direction, numbered as in the figures (collapsed table)."""
    rows = []
    for direction in directions_of(cells_all):
        sel = [c for c in cells_all if c.get("direction", "a_to_b") == direction]
        nums = cell_numbers(sel)
        for c in sorted((c for c in sel if c.get("congruent")), key=lambda c: (c.get("row", 0), c.get("col", 0))):
            rows.append([direction.replace("_", " "), nums[id(c)], c.get("row"), c.get("col"), c.get("ncc"),
                         c.get("rotation_deg"), c.get("dy_px"), c.get("dx_px")])
    if not rows:
        return "<p>No congruent cells.</p>"
    return ("<details><summary>Congruent cells (table)</summary>"
            + table(rows, ["direction", "number", "row", "column", "correlation (NCC)", "rotation (deg)",
                           "shift dy (px)", "shift dx (px)"]) + "</details>")


def regions_section(raw_a: Scan, raw_b: Scan, a: Scan, b: Scan, dpi: int) -> str:
    """The regions found on both raw scans."""
    fig = new_figure((11, 5))
    ax1, ax2 = fig.subplots(1, 2)
    regions(raw_a, a.region, ax=ax1)
    regions(raw_b, b.region, ax=ax2)
    return "<h2>Regions found on the raw scans</h2>" + figure_html(
        fig, "regions", "Circles found on each raw scan: primer edge (orange, dashed), firing-pin "
        "impression (sky blue, dashed), firing-pin hole (black, dotted, when found) and the breech-face annulus "
        "that is compared (between the vermillion and the purple solid circles). Check that they sit on the edges.",
        dpi)


def surfaces_section(a: Scan, b: Scan, azimuth_deg: float, dpi: int) -> str:
    """Both surfaces: heights on one colour scale, and under virtual light."""
    lims = common_limits(a, b)
    fig = new_figure((11, 9.6))
    axs = fig.subplots(2, 2)
    scan(a, ax=axs[0, 0], vmin=lims[0], vmax=lims[1])
    scan(b, ax=axs[0, 1], vmin=lims[0], vmax=lims[1])
    virtual_light(a, ax=axs[1, 0], azimuth_deg=azimuth_deg)
    virtual_light(b, ax=axs[1, 1], azimuth_deg=azimuth_deg)
    return "<h2>The surfaces</h2>" + figure_html(
        fig, "scans", "Top: heights in micrometres on one shared colour scale (cividis). Bottom: the same "
        f"surfaces lit by a virtual light from azimuth {azimuth_deg:g} degrees (hill-shading), as under a "
        "comparison microscope. White: not measured.", dpi)


def cells_section(a: Scan, b: Scan, comparison: Any, dirs: Sequence[str], dpi: int) -> str:
    """The cells on both scans (both directions when present) and the table of congruent cells."""
    fig = draw_comparison(a, b, comparison, new_figure, direction=dirs[0])
    out = "<h2>Congruent matching cells</h2>" + figure_html(
        fig, "cells", "Left: cells cut from the reference; every cell is outlined with its correlation (NCC) "
        "written in it; congruent cells are filled green and numbered. Middle: where each cell found its best "
        "match in the other scan (same numbers). Right (when shown): the other scan aligned to the reference by "
        "the registration, with the reference's cell grid, to compare the surfaces side by side.", dpi)
    if len(dirs) > 1:
        fig = draw_comparison(a, b, comparison, new_figure, direction=dirs[1], aligned=False)
        out += figure_html(fig, "cells reverse", "The same, with cells cut from the second scan "
                           "(the reverse direction).", dpi)
    return out


def rotation_section(comparison: Any, dpi: int) -> str:
    """The congruent-cell count across trial rotations."""
    fig = new_figure((8, 3.6))
    rotation_curve(comparison, ax=fig.add_subplot())
    return "<h2>Congruent cells across rotation</h2>" + figure_html(
        fig, "rotation", "Number of cells congruent at each trial rotation. A clear single peak means the "
        "cells agree on one rotation; a flat curve means no consistent alignment was found.", dpi)


def agreement_section(a: Scan, b: Scan, comparison: Any, dpi: int) -> str:
    """Where the aligned surfaces agree and differ (or why there is no such map)."""
    try:
        fig = draw_agreement(a, b, comparison, new_figure)
    except BallisticsError as exc:
        return f"<p class='caveat'>No agreement map: {esc(exc)}</p>"
    return "<h2>Where the aligned surfaces agree and differ</h2>" + figure_html(
        fig, "agreement", "Left: correlation of the two surfaces after alignment in a sliding window "
        "(purple: agree, orange: opposite, white: unrelated or not measured). Right: the height difference "
        "after alignment, in micrometres.", dpi)


def reference_section(score: float, same: Sequence[float], different: Sequence[float], ref_desc: str,
                      dpi: int) -> str:
    """The score among the reference scores."""
    fig = new_figure((8, 3.8))
    score_reference(score, same, different, ax=fig.add_subplot(),
                    source=f"{len(same) + len(different)} known pairs")
    return "<h2>This score among known pairs</h2>" + figure_html(
        fig, "reference", "Scores of known same-firearm (blue) and different-firearm (vermillion, hatched) "
        f"pairs: {esc(ref_desc)}, computed with this version and these parameters. The black line is this "
        "comparison.", dpi)
