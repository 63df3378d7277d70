"""Validation report section: rates of misleading evidence per instrument family, and the bars.

For each instrument family of the study's pairs (and for every shipped LR system, from
its own cross-validation) the report gives the counts and rates of same-source pairs
with LR < 1, < 1/10 and < 1/100 and of different-source pairs with LR > 1, > 10 and
> 100, beside the maxima the system was held to.

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. FSI 276, 142-153.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..calibration import get_system, list_systems, misleading_rates

__all__ = ["misleading_by_family", "misleading_section"]

_COLS = [("same_below_1", "same: LR&lt;1"), ("same_below_1/10", "same: LR&lt;1/10"),
         ("same_below_1/100", "same: LR&lt;1/100"), ("different_above_1", "different: LR&gt;1"),
         ("different_above_10", "different: LR&gt;10"), ("different_above_100", "different: LR&gt;100")]
_BAR = {"same_below_1": "rmep", "different_above_1": "rmed", "same_below_1/100": "rmep_strong",
        "different_above_100": "rmed_strong"}


def misleading_by_family(pairs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`ballistics.calibration.misleading_rates` of the pairs with an LR, per family.

    Parameters
    ----------
    pairs : sequence of dict
        ``same``, ``llr`` (None: left out) and ``family`` (missing: ``"unknown"``).

    Returns
    -------
    dict
        Family -> rates; ``"all"`` when the pairs hold more than one family.
    """
    ok = [p for p in pairs if p.get("llr") is not None and p.get("error") is None]
    fams = sorted({str(p.get("family") or "unknown") for p in ok})
    out = {}
    for f in fams:
        sel = [p for p in ok if str(p.get("family") or "unknown") == f]
        out[f] = misleading_rates([p["llr"] for p in sel], [bool(p["same"]) for p in sel])
    if len(fams) > 1:
        out["all"] = misleading_rates([p["llr"] for p in ok], [bool(p["same"]) for p in ok])
    return out


def _cell(r: dict[str, Any], bar: float | None) -> str:
    if r["rate"] is None:
        return "<td class='num'>&ndash;</td>"
    bad = bar is not None and r["rate"] > bar
    return (f"<td class='num{' fail' if bad else ''}'>{r['count']} ({100 * r['rate']:.1f} %)"
            + (f"<br><span class='note'>bar {100 * bar:g} %</span>" if bar is not None else "") + "</td>")


def _row(label: str, rates: dict[str, Any], bar: dict[str, float]) -> str:
    cells = "".join(_cell(rates[k], bar.get(_BAR.get(k, ""))) for k, _ in _COLS)
    return (f"<tr><td>{label}</td><td class='num'>{rates['n_same']}</td>"
            f"<td class='num'>{rates['n_different']}</td>{cells}</tr>")


def _shipped_rows() -> list[str]:
    rows = []
    for n in list_systems():
        s = get_system(n)
        tr = s.training or {}
        llr = s.cross_validation.get("llr") or []
        if not tr or len(llr) != len(tr.get("same", [])):
            continue
        keep = [v is not None for v in llr]
        rates = misleading_rates(np.asarray(llr, float)[keep], np.asarray(tr["same"], bool)[keep])
        fam = s.domain.instrument_family if s.domain else "no domain"
        rows.append(_row(f"shipped <code>{html.escape(n)}</code> ({html.escape(fam)}, cross-validated)", rates,
                         (s.validation_bar or {}).get("criteria", {})))
    return rows


def misleading_section(pairs: Sequence[dict[str, Any]], bar: dict[str, float], system_name: str) -> str:
    """HTML of the misleading-evidence section.

    Parameters
    ----------
    pairs : sequence of dict
        The study's pairs with cross-validated ``llr`` and ``family``.
    bar : dict
        Maximum rates the study's system is held to (``rmep``, ``rmed``,
        ``rmep_strong``, ``rmed_strong``).
    system_name : str

    Returns
    -------
    str
    """
    head = ("<table><tr><th>instrument family</th><th>same pairs</th><th>different pairs</th>"
            + "".join(f"<th>{lab}</th>" for _, lab in _COLS) + "</tr>")
    rows = [_row(f"this study: {html.escape(f)}", r, bar) for f, r in misleading_by_family(pairs).items()]
    shipped = _shipped_rows()
    return ("<h2 id='misleading'>Misleading evidence per instrument family</h2>"
            "<p>How often the cross-validated LRs pointed the wrong way, and how far: counts and rates of "
            "same-firearm pairs with LR below 1, 1/10 and 1/100, and of different-firearm pairs with LR above "
            f"1, 10 and 100. The <b>bar</b> under a rate is the maximum the system ({html.escape(system_name)}) "
            "was held to; a rate above it is marked. Rates from a few dozen pairs are rough: one pair in 20 is "
            "5 %.</p>" + head + "".join(rows) + "</table>"
            + ("<p>The shipped systems, each on its own reference population (cross-validated, whole firearms "
               "left out), against the bar each was held to:</p>" + head + "".join(shipped) + "</table>"
               if shipped else ""))
