"""Self-contained HTML reports an examiner can file with the case.

One HTML file, no network: the figures are embedded as base64 PNG, the style is
inline.  A comparison report holds the scans (height and virtual light), the cells on
both scans, the congruent cells across rotation, the agreement map, where the score
falls among known same-firearm and different-firearm scores
(:mod:`ballistics.review.reference`), the result and parameter tables, the library
version, the input file names with SHA-256 checksums, the date and a plain-language
summary of what the numbers mean and what they do not.  When the comparison carries a
likelihood ratio, the report gives it with its interval and ENFSI verbal equivalent, the
LR system (name, version, reference population, cross-validated Cllr), its applicability
warnings and calibration figures; the learned score is shown with each feature's
contribution; a mirrored match is flagged in a warning box at the top.  Files are written atomically
(complete or not at all).

>>> import ballistics
>>> from ballistics import datasets
>>> a, b = datasets.fadul("processed")[:2]
>>> html = ballistics.report(a, b, output="report.html")      # doctest: +SKIP

References
----------
Song (2013), NBIS / Congruent Matching Cells; Tong, Song & Chu (2015), High CMC;
Chen et al. (2017), convergence CMC; Zemmels, Hofmann & VanderPlas (2022), cmcR;
Fadul et al. (2011), NIJ report 237960.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from .._json import jsonable as _jsonable
from .._version import __version__
from ..comparison import CompareParams
from ..errors import BallisticsError, ComparisonError
from ..scan import Scan
from . import _lr_sections as lrs
from . import _sections as sec
from ._applicability import applicability_box, pair_family
from ._cells import comparison_dict, directions_of
from ._html import esc, inputs_table, page, table, utc_now, write_report
from ._search_report import load_scan, search_report
from .reference import SOURCE_FAMILY, Placement, ReferenceScores, reference_scores

__all__ = ["report", "search_report"]

log = logging.getLogger(__name__)

_PREPARED_DIFFERENTLY = (
    "These breech faces were extracted from raw scans by this engine, while the reference scores come from "
    "breech faces prepared by CSAFE/cmcR; the preparation differs (region edges, filtering), so the placement "
    "is indicative only.")
_OTHER_SCALE = (
    "The reference scores were computed with other comparison parameters or another method than this "
    "comparison; the placement below is on a different scale and must not be relied on.")


def report(a: Scan | str | os.PathLike[str], b: Scan | str | os.PathLike[str], *, comparison: Any = None,
           output: str | os.PathLike[str] | None = None, method: str | None = None,
           reference: str | ReferenceScores | Mapping[str, Any] | None = "bundled", extract: bool = False,
           title: str | None = None, notes: str | None = None, azimuth_deg: float = 315.0,
           params: CompareParams | None = None, dpi: int = 90) -> str:
    """Write a self-contained HTML report of a comparison of two scans.

    Parameters
    ----------
    a, b : Scan or path
        The two scans (``a`` is the first/reference scan of :func:`ballistics.compare`).
    comparison : Comparison, optional
        An existing result of ``compare(a, b)``; computed if omitted.
    output : path, optional
        Where to write the HTML file (atomically: the complete file or none).
    method : str, optional
        Comparison method when ``comparison`` is computed here (default: the default of
        :func:`ballistics.compare`, ``"convergence"``).
    reference : "bundled", "fadul40", ReferenceScores, dict or None
        Known same-firearm and different-firearm scores to place the score among: a
        source for :func:`~ballistics.review.reference.reference_scores`, its result, or
        a dict with ``same``, ``different`` and ``source`` (and optionally ``pairs``).
        ``None`` leaves the figure out.  The pair being reported is always left out of
        the reference (no circularity).
    extract : bool
        The inputs are raw whole-primer scans: extract the breech faces first
        (:func:`ballistics.extract_breech_face`) and show the regions found on the raw scans.
    title : str, optional
        Report title.
    notes : str, optional
        Examiner's notes, shown verbatim (escaped).
    azimuth_deg : float
        Direction of the virtual light, degrees clockwise from the top.
    params : CompareParams, optional
        Comparison parameters when ``comparison`` is computed here, and of the reference
        scores (default: the default preset).
    dpi : int
        Resolution of the embedded figures, dots per inch.

    Returns
    -------
    str
        The HTML text (also written to ``output`` when given).
    """
    t0 = time.perf_counter()
    if not (isinstance(dpi, int) and 10 <= dpi <= 600):
        raise BallisticsError(f"dpi must be an integer within 10..600, got {dpi!r}.")
    a = load_scan(a, "first scan")
    b = load_scan(b, "second scan")
    if params is not None and not isinstance(params, CompareParams):
        raise BallisticsError(f"params must be a CompareParams, got {type(params).__name__}.")
    raw_a = raw_b = None
    if extract:
        from ..features import extract_breech_face
        raw_a, raw_b = a, b
        a, b = extract_breech_face(raw_a), extract_breech_face(raw_b)
    for s, w in ((a, "first scan"), (b, "second scan")):
        s.require_valid(what=w)
        if s.kind != "height":
            raise BallisticsError(f"The {w} {s.name!r} is an intensity image; reports compare height scans.")
    if comparison is None:
        from ..comparison import compare
        comparison = compare(a, b, **({"method": method} if method is not None else {}),
                             preset=params if params is not None else "default")
    d = comparison_dict(comparison)
    if "cells" not in d:
        raise ComparisonError("The comparison holds no cells; pass the result of ballistics.compare(a, b).")

    ttl = title or f"Comparison report: {a.name} vs {b.name}"
    body = [f"<h1>{esc(ttl)}</h1><p class='meta'>Date: {esc(utc_now())} &middot; ballistics (openbreech) "
            f"version {esc(__version__)} &middot; method {esc(d.get('method', method))}</p>"]
    ref: ReferenceScores | None = None
    place: Placement | None = None
    warnings: list[str] = []
    family = pair_family(a, b)
    ref_note = "none requested"
    if isinstance(reference, str) and SOURCE_FAMILY.get(reference) not in (None, family):
        ref_note = (f"none: the {reference!r} reference pairs are {SOURCE_FAMILY[reference]} scans and this pair is "
                    f"{family}; no reference scores of {family} scans are available, so the score is not placed "
                    "among known pairs")
        reference = None
    if reference is not None:
        try:
            ref, place, warnings = _placement(reference, d, method, params, a, b)
            fam = SOURCE_FAMILY.get(ref.source.split()[0].lower(), "") if isinstance(reference, str) else ""
            ref_note = (f"{ref.source} ({len(ref.same)} same-firearm, {len(ref.different)} different-firearm "
                        f"pairs{', ' + fam + ' scans like this pair' if fam else ''})")
        except BallisticsError as exc:
            log.warning("no reference distribution: %s", exc)
            body.append(f"<p class='caveat'>No reference distribution: {esc(exc)}</p>")
            ref_note = f"none: {exc}"
    body.append(applicability_box(d, [s for s in (raw_a, raw_b) if s is not None] or [a, b], ref_note))
    if extract and place is not None:
        warnings.append(_PREPARED_DIFFERENTLY)

    cells_all = list(d.get("cells") or [])
    dirs = directions_of(cells_all) or ["a_to_b"]
    n_cells = sum(1 for c in cells_all if c.get("direction", "a_to_b") == dirs[0])
    mirror = lrs.mirror_warning(d)
    if mirror:
        label = "mirrored match" if d.get("mirrored") else "warnings"
        log.warning("%s: %s vs %s; %s", label, a.name, b.name, " ".join(d.get("warnings") or []))
        body.append(mirror)
    body.append(sec.summary(d, a, b, place, ref.source if ref else None, n_cells))
    if warnings:
        text = " ".join(warnings)
        log.warning(text)
        body.append(f"<p class='caveat'><b>Warning:</b> {esc(text)}</p>")
    if notes:
        body.append(f"<h2>Examiner's notes</h2><p>{esc(notes)}</p>")
    body.append(sec.result_tables(d))
    body.append(lrs.lr_section(d, dpi))
    body.append(lrs.learned_section(d))
    if raw_a is not None and raw_b is not None:
        body.append(sec.regions_section(raw_a, raw_b, a, b, dpi))
    body.append(sec.surfaces_section(a, b, azimuth_deg, dpi))
    body.append(sec.cells_section(a, b, comparison, dirs, dpi))
    body.append(sec.cells_table(cells_all))
    if d.get("rotation_curve"):
        body.append(sec.rotation_section(comparison, dpi))
    body.append(sec.agreement_section(a, b, comparison, dpi))
    if ref is not None and place is not None:
        body.append(sec.reference_section(place.score, ref.same, ref.different, ref.source, dpi))

    recorded = d.get("params") or {}
    body.append("<h2>Parameters</h2>" + (table([[k, v] for k, v in recorded.items()], ["parameter", "value"])
                                          if recorded else "<p>(none recorded)</p>"))
    body.append("<h2>Inputs</h2>" + inputs_table([s for s in (raw_a, raw_b) if s is not None] + [a, b],
                                                 d.get("inputs")))
    body.append(f"<p class='meta'>Library version {esc(d.get('library_version', __version__))}; report written in "
                f"{time.perf_counter() - t0:.1f} s.</p>")
    html = page(ttl, body)
    if output is not None:
        write_report(output, html)
    log.info("report %s vs %s in %.1f s", a.name, b.name, time.perf_counter() - t0)
    return html


def _placement(reference: str | ReferenceScores | Mapping[str, Any], d: Mapping[str, Any], method: str | None,
               params: CompareParams | None, a: Scan, b: Scan) -> tuple[ReferenceScores, Placement, list[str]]:
    """The reference without this pair, where the count falls in it, and scale warnings."""
    if isinstance(reference, str):
        ref = reference_scores(reference, method=d.get("method", method), params=params)
    elif isinstance(reference, ReferenceScores):
        ref = reference
    elif isinstance(reference, Mapping):
        ref = ReferenceScores.from_dict(reference)
    else:
        raise BallisticsError(f"reference must be a source name, ReferenceScores or a dict, "
                              f"got {type(reference).__name__}.")
    ref, _ = ref.leave_out(a, b)
    value = d.get("cmc_count") if d.get("cmc_count") is not None else d.get("score")
    if value is None:
        raise ComparisonError("The comparison holds neither a CMC count nor a score to place.")
    place = ref.place(float(value))
    warnings = []
    cp = _jsonable(d.get("params") or {})
    rp = ref.comparison_params
    if (rp and any(cp.get(k) != v for k, v in rp.items())) or (
            ref.comparison_method and ref.comparison_method != d.get("method")):
        warnings.append(_OTHER_SCALE)
    return ref, place, warnings
