"""Sections of the comparison report about the evidence: mirror warning, LR, learned score.

* :func:`mirror_warning` -- a prominent box when ``b`` matched as a mirror image.
* :func:`lr_headline` -- the log10 LR, its interval, the LR and its ENFSI (2015) verbal
  equivalent, for the summary.
* :func:`lr_section` -- the LR system (name, version, reference population,
  cross-validated Cllr), its applicability warnings and its calibration figures (the
  PNGs shipped beside a shipped system, and its score-to-LR curve with this comparison
  marked).
* :func:`learned_section` -- the learned score with each feature's value and
  contribution, largest first.

References
----------
ENFSI (2015), Guideline for Evaluative Reporting in Forensic Science (verbal scale);
Vergeer et al. (2016), FSI 269 (ELUB bounds); Meuwly, Ramos & Haraksim (2017), FSI 276
(validation of LR methods: Tippett, ECE, Cllr).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BallisticsError
from ._figures import new_figure
from ._html import esc, figure_html, fmt

__all__ = ["mirror_warning", "lr_headline", "lr_section", "learned_section", "lr_warnings", "FIGURE_KINDS"]

log = logging.getLogger(__name__)

#: Shipped validation figures of an LR system (``<name>.<kind>.png``) and their captions.
FIGURE_KINDS: dict[str, str] = {
    "tippett": "Tippett plot: share of same-source (blue) and different-source (vermillion) validation pairs "
               "with a log10 LR above each value.",
    "ece": "Empirical cross-entropy: the system's LRs (solid) against perfectly calibrated ones (dashed) "
           "and no information (dotted), over prior log-odds.",
    "pav": "Pool-adjacent-violators: the system's log10 LR against the best monotone recalibration; "
           "on the diagonal means well calibrated.",
    "densities": "Score distributions of the reference population's same-source and different-source pairs.",
    "lr_curve": "The score-to-log10 LR function with its ELUB bounds and bootstrap band.",
}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _lr_words(lr: float) -> str:
    """An LR as words a reader can take in: 'about 35', 'about 1 in 20'."""
    if lr >= 1:
        return f"about {lr:,.3g}" if lr < 1000 else f"about {lr:,.0f}"
    return f"about 1/{1 / lr:,.3g}" if lr > 1e-3 else f"about 1/{1 / lr:,.0f}"


def _kv_table(rows: list[list[Any]], header: tuple[str, ...] = ("quantity", "value")) -> str:
    """A table of prose and numbers: text wraps as text (not code), numbers formatted, checksums in code."""
    out = ["<table class='kv'><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for r in rows:
        cells = []
        for v in r:
            txt = fmt(v)
            num = isinstance(v, (int, float)) and not isinstance(v, bool) and len(header) > 2
            if len(txt) == 64 and all(ch in "0123456789abcdef" for ch in txt):
                cells.append(f"<td><code>{esc(txt)}</code></td>")
            else:
                cls = " class='num'" if num else ""
                cells.append(f"<td{cls}>{esc(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def mirror_warning(d: Mapping[str, Any]) -> str:
    """A prominent warning box when ``b`` was reported mirrored (empty string otherwise)."""
    warnings = [str(w) for w in (d.get("warnings") or [])]
    if not d.get("mirrored") and not warnings:
        return ""
    head = ("Mirrored match: the second scan matched as a mirror image of itself (rows reversed)."
            if d.get("mirrored") else "Warning about this comparison.")
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    box = f"<div class='alert' role='alert'><p><b>{esc(head)}</b></p>" + (f"<ul>{items}</ul>" if items else "")
    if not d.get("mirrored"):
        return box + "</div>"
    return (box
            + "<p>Two scans of the same kind of surface should not need a mirror image to match. A mirrored match "
              "usually means that one file was exported or converted with its y axis flipped (another "
              "instrument, software or conversion route) &mdash; or that the files are not what their names say. "
              "<b>Check the provenance of both files</b> (instrument export, conversion steps, who made them, "
              "the checksums below) before relying on any number in this report; the registration, cells and "
              "figures below refer to the mirrored second scan.</p></div>")


def lr_headline(d: Mapping[str, Any]) -> str:
    """The LR in numbers and words, for the summary (empty when no LR was computed)."""
    lr = d.get("lr") or {}
    llr = _num(d.get("llr") if d.get("llr") is not None else lr.get("llr"))
    if llr is None:
        return ("<p class='caveat'>No likelihood ratio was computed for this comparison (no LR system was "
                "used).</p>")
    iv = d.get("llr_interval") or lr.get("interval")
    level = _num(lr.get("level")) or 0.95
    sysd = lr.get("system") or {}
    iv_txt = (f", {100 * level:.0f} % interval {float(iv[0]):+.2f} to {float(iv[1]):+.2f}"
              if iv and len(iv) == 2 and None not in iv else ", no interval available")
    verbal = lr.get("verbal") or ""
    return ("<div class='lrbox'><p><b>Likelihood ratio:</b> log10 LR = <b>" f"{llr:+.2f}</b>{esc(iv_txt)}; "
            f"LR {esc(_lr_words(10 ** llr))} (LR system <code>{esc(sysd.get('name', '?'))}</code>"
            f" version {esc(sysd.get('version', '?'))}).</p>"
            + (f"<p class='verbal'>Verbal equivalent (ENFSI 2015 scale): <b>{esc(verbal)}</b></p>" if verbal else "")
            + (f"<p><b>The LR system flagged {len(lr_warnings(d))} applicability warning(s)</b> (see 'Likelihood "
               "ratio and the system behind it' below).</p>" if lr_warnings(d) else "")
            + "<p class='meta'>Propositions (source level): H1, both cartridge cases were fired by the same "
              "firearm; H2, they were fired by two different firearms of the kind in the reference population. "
              "The LR says how much more probable the observed score is under H1 than under H2; it is not the "
              "probability that H1 is true.</p></div>")


def lr_warnings(d: Mapping[str, Any]) -> list[str]:
    """The LR system's applicability warnings."""
    return [str(w) for w in ((d.get("lr") or {}).get("warnings") or [])]


def _validation(name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The shipped validation summary and figures of a system (empty when it is not shipped)."""
    from ..calibration import DATA_DIR

    base = Path(DATA_DIR)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return {}, {}
    val: dict[str, Any] = {}
    vp = base / f"{name}.validation.json"
    if vp.is_file():
        try:
            val = json.loads(vp.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", vp, exc)
    pngs = {k: (base / f"{name}.{k}.png").read_bytes() for k in FIGURE_KINDS if (base / f"{name}.{k}.png").is_file()}
    return val, pngs


def _curve_with_this(d: Mapping[str, Any], name: str, dpi: int) -> str:
    """The system's score-to-LR curve with this comparison marked (empty if the system is not shipped)."""
    from ..calibration import get_system, list_systems
    from ._plot_calibration import lr_curve

    lr = d.get("lr") or {}
    score, llr = _num(lr.get("score")), _num(lr.get("llr"))
    if name not in list_systems() or score is None or llr is None:
        return ""
    try:
        system = get_system(name)
        fig = new_figure((5.6, 3.4))
        ax = fig.add_subplot()
        lr_curve(system, ax=ax, title=f"{name}: this comparison")
        ax.axvline(score, color="#CC79A7", lw=1.5)
        ax.plot([score], [llr], "o", color="#CC79A7", ms=8, label="this comparison")
        ax.legend(fontsize=7, loc="upper left")
    except (BallisticsError, ValueError) as exc:
        log.warning("no LR curve in the report: %s", exc)
        return ""
    return figure_html(fig, "LR curve with this comparison",
                       f"The system's log10 LR against its score ({esc(lr.get('system', {}).get('score_column'))}); "
                       f"the pink point is this comparison (score {fmt(score)}, log10 LR {llr:+.2f}). Dotted lines: "
                       "ELUB bounds; ticks at the bottom: the reference population's scores.", dpi)


def lr_section(d: Mapping[str, Any], dpi: int) -> str:
    """The LR, the system that gave it, its warnings and its calibration figures."""
    lr = d.get("lr") or {}
    if not lr:
        return ""
    sysd = dict(lr.get("system") or {})
    name = str(sysd.get("name") or "")
    val, pngs = _validation(name)
    iv = lr.get("interval")
    rows: list[list[Any]] = [
        ["score used (" + str(sysd.get("score_column", "score")) + ")", lr.get("score")],
        ["log10 likelihood ratio (bounded)", lr.get("llr")],
        [f"{100 * (_num(lr.get('level')) or 0.95):.0f} % interval of log10 LR (firearm bootstrap)",
         "n/a" if not iv else f"{float(iv[0]):+.3f} to {float(iv[1]):+.3f}"],
        ["likelihood ratio", lr.get("lr")],
        ["verbal equivalent (ENFSI 2015)", lr.get("verbal")],
        ["ELUB bounds of log10 LR", lr.get("elub")],
        ["LR system", name], ["system version", sysd.get("version")],
        ["calibration method", sysd.get("method")],
        ["cross-validated Cllr (" + str(sysd.get("cv_scheme") or "") + ")", sysd.get("cv_cllr")]]
    for set_name, m in (val.get("cross_validated_per_set") or {}).items():
        rows.append([f"cross-validated Cllr, {set_name} pairs ({m.get('n_same')} same / {m.get('n_different')} "
                     "different)", m.get("cllr")])
    rows += [["reference population", sysd.get("reference")],
             ["training data checksum (SHA-256)", sysd.get("training_checksum")],
             ["system fitted with library version", sysd.get("library_version")]]
    out = ["<h2>Likelihood ratio and the system behind it</h2>", _kv_table(rows)]
    warns = lr_warnings(d)
    if warns:
        out.append("<div class='caveat'><p><b>Applicability warnings of the LR system.</b> The LR is only as good "
                   "as the match between this comparison and the system's reference population:</p><ul>"
                   + "".join(f"<li>{esc(w)}</li>" for w in warns) + "</ul></div>")
    out.append("<p>Cllr (log-likelihood-ratio cost) measures the system's LRs on pairs it was not fitted on: "
               "0 is perfect, 1 is no better than always reporting LR = 1. The figures show the system's "
               "validation on its reference population; they describe the system, not this comparison.</p>")
    out.append(_curve_with_this(d, name, dpi))
    if pngs:
        out.append("<div class='calib'>" + "".join(
            f"<figure><img alt='{esc(k)}' src='data:image/png;base64,{base64.b64encode(b).decode('ascii')}'>"
            f"<figcaption>{esc(FIGURE_KINDS[k])}</figcaption></figure>" for k, b in pngs.items()) + "</div>")
    else:
        out.append(f"<p class='meta'>No validation figures are shipped for the system {esc(name)}; see its "
                   "validation report (<code>ballistics validate</code>).</p>")
    return "".join(out)


def learned_section(d: Mapping[str, Any]) -> str:
    """The learned score and each feature's value and contribution, largest |contribution| first."""
    contrib = {k: _num(v) for k, v in (d.get("score_contributions") or {}).items()}
    learned = _num(d.get("learned_score"))
    if learned is None and not contrib:
        return ""
    from ..comparison._learned import FEATURES, score_features

    try:
        values: dict[str, float] = score_features(d)
    except (BallisticsError, KeyError, TypeError, ValueError) as exc:
        log.warning("no feature values in the report: %s", exc)
        values = {}
    intercept = contrib.pop("intercept", None)
    rows = [[k, FEATURES.get(k, ""), values.get(k), c]
            for k, c in sorted(contrib.items(), key=lambda kv: -abs(kv[1] or 0.0))]
    if intercept is not None:
        rows.append(["intercept", "constant of the model (the logit with every feature at its training mean)",
                     None, intercept])
    lead = ("<p>The learned score is a logistic regression on twelve features of the comparison (model card: "
            "<code>ballistics/comparison/data/learned_score_card.md</code>). It is a logit: above 0 the model "
            "leans to the same firearm, below 0 to different firearms, with equal prior odds. It is a second "
            "opinion next to the CMC count, <b>not</b> a likelihood ratio; "
            f"score used for the LR: <b>{esc(d.get('score_kind', 'n/a'))}</b>.</p>")
    summary = _kv_table([["learned score (logit)", learned], ["CMC count", d.get("cmc_count")],
                     ["CMC score (count + mean correlation of the congruent cells)", d.get("cmc_score")]],
                        )
    body = (_kv_table(rows, ("feature", "what it measures", "value", "contribution to the logit"))
            if rows else "<p>(no contributions recorded)</p>")
    return ("<h2>Learned score</h2>" + lead + summary
            + "<p>Each feature's contribution (standardised value &times; coefficient), largest effect first; "
              "the contributions and the intercept add up to the learned score.</p>" + body)
