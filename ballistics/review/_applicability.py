"""Comparison report section at the top: what the files say and where the LR applies.

Every provenance hint of the two scans (e.g. a conversion route known to mirror
surfaces), their instrument families, the LR system's domain and whether this pair lies
inside it, the interval's bound flag, a mirrored match, and where the reference scores
come from -- stated before any number, with how a lab calibrates on its own data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..calibration import CALIBRATE_HINT, scan_domain
from ..scan import Scan
from ._html import esc

__all__ = ["applicability_box", "pair_family"]

_STARTING_POINT = ("A shipped LR system is a starting point, valid only for its declared domain (instrument family, "
                   "pixel size, processing, comparison parameters). To report LRs for your own instrument and "
                   "settings, ")


def pair_family(a: Scan, b: Scan) -> str:
    """The instrument family of a pair (``"mixed"`` when the scans differ)."""
    fa, fb = scan_domain(a)["family"], scan_domain(b)["family"]
    return fa if fa == fb else "mixed"


def _scan_rows(scans: Sequence[Scan]) -> list[str]:
    rows = []
    for s in scans:
        d = scan_domain(s)
        fixes = list(getattr(s.provenance, "fixes", None) or [])
        hints = d["hints"] + ([f"{len(fixes)} repair(s) when read: " + "; ".join(fixes)] if fixes else [])
        rows.append(f"<li><b>{esc(s.name)}</b>: {esc(d['family'])} ({esc(d['instrument'] or 'instrument not named')}"
                    f"), pixel size {d['pixel_size_m'] * 1e6:.3g} µm"
                    + ("".join(f"<br><span class='hint'>&#9888; {esc(h)}</span>" for h in hints)) + "</li>")
    return rows


def _lr_lines(d: Mapping[str, Any]) -> list[str]:
    lr = d.get("lr") or {}
    system = (lr.get("system") or {}).get("name")
    out = []
    if not lr:
        return ["No LR was computed for this comparison (no LR system)."]
    if d.get("llr") is None:
        out.append("<b>No likelihood ratio is given.</b> " + " ".join(esc(w) for w in lr.get("warnings") or []))
    else:
        state = ("<b>outside</b> its validated domain (given because it was asked for explicitly)"
                 if lr.get("outside_validation") else "inside its validated domain")
        out.append(f"LR system <code>{esc(system)}</code>; this comparison lies {state}.")
        iv = lr.get("interval")
        if iv:
            txt = f"log10 LR {float(d['llr']):+.2f}, interval {float(iv[0]):+.2f} to {float(iv[1]):+.2f}"
            if lr.get("interval_at_bound"):
                out.append(f"<b>{esc(txt)} &mdash; {esc(lr.get('interval_note', ''))}</b>")
            else:
                out.append(esc(txt) + f" ({esc(lr.get('interval_note', ''))}).")
        out += [f"Caution: {esc(w)}" for w in lr.get("warnings") or [] if not w.startswith("LR given outside")]
    if lr.get("domain_summary"):
        out.append(f"Domain of the system: {esc(lr['domain_summary'])}.")
    return out


def applicability_box(d: Mapping[str, Any], scans: Sequence[Scan], reference_note: str) -> str:
    """HTML box for the top of a comparison report.

    Parameters
    ----------
    d : mapping
        The comparison's ``to_dict()``.
    scans : sequence of Scan
        The scans as read (raw ones first when extracted), for their provenance.
    reference_note : str
        Where the reference scores come from, or why there are none.

    Returns
    -------
    str
    """
    items = ["<h2>What the files say and where the numbers apply</h2><ul>"] + _scan_rows(scans) + ["</ul><ul>"]
    if d.get("mirrored") and (d.get("cmc_count") or 0) > 0:
        items.append("<li><b>Mirrored match:</b> the second scan matched as a mirror image; the files have opposite "
                     "handedness (different conversion routes). Check their provenance before relying on it.</li>")
    items += [f"<li>{line}</li>" for line in _lr_lines(d)]
    items.append(f"<li>Reference scores: {esc(reference_note)}</li>")
    items.append(f"<li>{esc(_STARTING_POINT + CALIBRATE_HINT)}.</li></ul>")
    return "<div class='applicability'>" + "".join(items) + "</div>"
