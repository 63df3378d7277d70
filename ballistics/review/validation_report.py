"""Self-contained HTML validation report of a likelihood-ratio system.

One HTML file: figures embedded as base64 PNG, no scripts, no network.  It holds the
validation matrix (performance characteristic, metric, criterion, result, decision --
Meuwly et al. 2017), the Tippett, ECE and PAV plots of the cross-validated LLRs, the
scores with their densities, the LR curve with its ELUB bounds, a per-firearm
breakdown, the rates of misleading evidence per instrument family against the bar
each system was held to, every misleading pair with its score, and the parameters, versions and
checksums needed to reproduce it.

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. FSI 276, 142-153.
ENFSI (2015). Guideline for Evaluative Reporting in Forensic Science (verbal scale).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ParameterError

__all__ = ["validation_report", "render_validation_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
  margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}
.pass{color:#006d4f;font-weight:bold}
.fail{color:#b34700;font-weight:bold}
.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}
.figs{display:flex;flex-wrap:wrap;gap:1em}
.figs figure{margin:0;flex:0 1 calc(50% - 0.5em);min-width:420px}
.figs img{width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
.verdict{padding:.6em 1em;border-radius:4px;margin:1em 0}
.ok{background:#e6f4ef;border:1px solid #009E73}
.bad{background:#fbeee6;border:1px solid #D55E00}
code{font-size:.9em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        fv = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not math.isfinite(fv):
        return "&infin;" if fv > 0 else ("&minus;&infin;" if fv < 0 else "NaN")
    return f"{fv:.{nd}f}"


def _img(fig: Any, alt: str, caption: str) -> str:
    from ._plot_calibration import figure_to_png

    data = base64.b64encode(figure_to_png(fig, dpi=90)).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _pairs_from_system(system: Any) -> list[dict[str, Any]]:
    tr = system.training or {}
    llr = system.cross_validation.get("llr") or []
    if not tr or len(llr) != len(tr.get("scores", [])):
        raise ParameterError(f"LR system {system.name!r} holds no training data with cross-validated LLRs; "
                             "pass pairs= to the report")
    out = []
    for k, (s, y, g, l) in enumerate(zip(tr["scores"], tr["same"], tr["groups"], llr)):
        out.append({"a": f"pair {k + 1}", "b": "", "a_firearm": g[0], "b_firearm": g[1], "same": bool(y),
                    "score": s, "llr": l, "error": None,
                    "stratum": (tr.get("strata") or [None] * len(llr))[k],
                    "family": system.domain.instrument_family if system.domain else "unknown"})
    return out


def _domain_html(system: Any) -> str:
    dom = system.domain
    text = (_e(dom.summary()) if dom else "none declared: nothing checks that a comparison is of the kind the "
            "system was validated on")
    return ("<h2>Domain of the fitted system</h2><p>" + text + ". Comparisons outside it get no LR from this "
            "system unless one is asked for explicitly, and then it is marked as outside the validation. Use it "
            f"with <code>compare(..., lr_system=\"{_e('<study>/lr_system.json')}\")</code>.</p>")


def render_validation_report(result: Any = None, *, system: Any = None, pairs: list[dict[str, Any]] | None = None,
                             criteria: Any = None, title: str | None = None,
                             parameters: dict[str, Any] | None = None) -> str:
    """The HTML text of a validation report.

    Parameters
    ----------
    result : ValidationResult, optional
        Output of :func:`ballistics.workflow.validate` (gives system, pairs,
        criteria and parameters).
    system : LRSystem, optional
        Instead of ``result``: a fitted system; its stored training data and
        cross-validated LLRs are the pairs.
    pairs : list of dict, optional
        Pairs (``a``, ``b``, ``a_firearm``, ``b_firearm``, ``same``, ``score``, ``llr``,
        ``error``).
    criteria : dict or list, optional
        See :func:`ballistics.calibration.evaluate_criteria`.
    title : str, optional
    parameters : dict, optional

    Returns
    -------
    str
        A complete HTML document.
    """
    from ..calibration import evaluate_criteria
    from ._validation_misleading import misleading_section

    if result is not None:
        system = result.system
        pairs = result.pairs if pairs is None else pairs
        crit = result.criteria if criteria is None else evaluate_criteria(system, criteria)
        parameters = result.parameters if parameters is None else parameters
    else:
        if system is None:
            raise ParameterError("give a ValidationResult or an LRSystem")
        crit = evaluate_criteria(system, criteria)
        pairs = _pairs_from_system(system) if pairs is None else pairs
    ok = [p for p in pairs if p.get("error") is None and p.get("llr") is not None]
    failed = [p for p in pairs if p.get("error") is not None]
    title = title or f"Validation of LR system {system.name}"
    h = _header(title, system)
    h += _verdict(crit, ok, failed)
    h += _explanation(system)
    h += _matrix(crit, system)
    h += _metrics_table(system)
    h.append(misleading_section(pairs, {c["metric"]: c["max"] for c in crit}, system.name))
    h.append(_domain_html(system))
    h += _figures(system, ok)
    h += _per_firearm(system)
    h += _misleading_pairs(ok)
    h += _failed_pairs(failed)
    h += _verbal(system)
    h += _provenance(system, parameters or {})
    return "\n".join(h)


def _labels(ok: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated LLRs and same-firearm labels of the pairs that have one."""
    return np.array([p["llr"] for p in ok], float), np.array([bool(p["same"]) for p in ok])


def _header(title: str, system: Any) -> list[str]:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1><p class='note'>Written {now} by openbreech (ballistics {__version__}). "
            f"Cross-validation: {_e(system.cross_validation.get('scheme', ''))} &mdash; every LLR below comes from "
            "a calibrator fitted without the firearm(s) of its pair.</p>"]


def _verdict(crit: list[dict[str, Any]], ok: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[str]:
    _, y = _labels(ok)
    passed = all(c["passed"] for c in crit)
    n_fail = sum(not c["passed"] for c in crit)
    return [f"<div class='verdict {'ok' if passed else 'bad'}'><b>"
            + ("All validation criteria are met." if passed else f"{n_fail} of {len(crit)} validation criteria are "
               "not met.") + f"</b> {len(ok)} pairs evaluated ({int(y.sum())} same-firearm, {int((~y).sum())} "
            f"different-firearm) from {len({p['a_firearm'] for p in ok} | {p['b_firearm'] for p in ok})} firearms"
            + (f"; {len(failed)} pairs could not be compared (listed below)" if failed else "") + ".</div>"]


def _explanation(system: Any) -> list[str]:
    return ["<h2>What this report says, and what it does not</h2><p>A likelihood ratio (LR) states how much "
            "more probable the comparison score is if the two cartridge cases were fired by the same firearm than "
            "if they were fired by different firearms. The numbers here measure how well this system's LRs did on "
            "the lab's own reference scans, with each firearm left out of the fit that judged it. They hold for "
            "cases like these (same instrument, ammunition and firearm types, same comparison parameters); they "
            "say nothing about other populations. Cllr is 0 for a perfect system and 1 for one that always says "
            "LR&nbsp;=&nbsp;1; Cllr_min is what the best possible calibration of the same scores would give "
            "(discrimination), Cllr_cal the rest (calibration). LRs are bounded to the ELUB range "
            f"[{_f(system.elub[0], 2)}, {_f(system.elub[1], 2)}] in log10 (LR {10 ** system.elub[0]:.3g} to "
            f"{10 ** system.elub[1]:.3g}), which the size of the reference set can support.</p>"]


def _matrix(crit: list[dict[str, Any]], system: Any) -> list[str]:
    """The validation matrix (Meuwly et al. 2017): characteristic, metric, criterion, result, decision."""
    h = ["<h2>Validation matrix</h2><table><tr><th>performance characteristic</th><th>metric</th>"
         "<th>validation criterion</th><th>result</th><th>decision</th></tr>"]
    for c in crit:
        h.append(f"<tr><td>{_e(c['characteristic'])}</td><td>{_e(c['label'])}</td><td>{_e(c['criterion'])}</td>"
                 f"<td class='num'>{_f(c['result'])}</td><td class='{'pass' if c['passed'] else 'fail'}'>"
                 f"{'pass' if c['passed'] else 'fail'}</td></tr>")
    h.append("</table><p class='note'>Criteria are the library defaults unless the lab set its own "
             "(<code>criteria=</code> / <code>--criterion</code>); they must be fixed before the results are seen. "
             f"Training-data Cllr (not a validation): {_f(system.training_metrics.get('cllr'))}.</p>")
    return h


def _metrics_table(system: Any) -> list[str]:
    """Cross-validated metrics of all pairs and of each stratum."""
    cv = system.cross_validation
    h = ["<h2>Performance characteristics (cross-validated)</h2><table><tr><th>set</th><th>same</th>"
         "<th>different</th><th>Cllr</th><th>Cllr_min</th><th>Cllr_cal</th><th>EER</th><th>RMEP</th>"
         "<th>RMED</th><th>LR&lt;1/100 | H1</th><th>LR&gt;100 | H2</th></tr>"]
    rows = [("all pairs", system.cv_metrics)] + list((cv.get("per_stratum") or {}).items())
    for nm, mm in rows:
        h.append(f"<tr><td>{_e(nm)}</td><td class='num'>{_f(mm.get('n_same'))}</td>"
                 f"<td class='num'>{_f(mm.get('n_different'))}</td>"
                 + "".join(f"<td class='num'>{_f(mm.get(k))}</td>" for k in
                           ("cllr", "cllr_min", "cllr_cal", "eer", "rmep", "rmed", "rmep_strong", "rmed_strong"))
                 + "</tr>")
    h.append("</table>")
    return h


def _figures(system: Any, ok: list[dict[str, Any]]) -> list[str]:
    """Tippett, ECE and PAV plots; for a one-score system also the score densities and the LR curve."""
    from . import _plot_calibration as P

    llr, y = _labels(ok)
    figs = []
    if y.any() and (~y).any():
        figs.append(_img(P.tippett(llr, y, elub=system.elub), "Tippett plot",
                         "Tippett plot of the cross-validated log10 LRs: the blue curve should stay high and the "
                         "vermillion low to the right of 0; where they cross 0 are the rates of misleading evidence."))
        figs.append(_img(P.ece(llr, y), "ECE plot",
                         "Empirical cross-entropy across prior odds: the solid curve should stay below the neutral "
                         "(dotted) one everywhere; its gap to the dashed curve is the calibration loss."))
        figs.append(_img(P.pav(llr, y), "PAV plot",
                         "PAV plot: a well-calibrated system follows the diagonal."))
        if system.n_scores == 1:
            sc = np.array([p["score"] for p in ok], float)
            figs.append(_img(P.score_densities(sc, y, system, score_label=str(system.score_column)), "score densities",
                             "Scores of same- and different-firearm pairs with kernel densities."))
            figs.append(_img(P.lr_curve(system, scores=sc, same_source=y), "LR curve",
                             "The fitted system: log10 LR against score, ELUB bounds (dotted) and a 95 % firearm "
                             "bootstrap band."))
    return ["<h2>Figures</h2><div class='figs'>" + "".join(figs) + "</div>"]


def _per_firearm(system: Any) -> list[str]:
    h = ["<h2>Per firearm</h2><table><tr><th>firearm</th><th>same pairs</th><th>different pairs</th>"
         "<th>misleading same (LR&lt;1)</th><th>misleading different (LR&gt;1)</th><th>lowest same log10 LR</th>"
         "<th>highest different log10 LR</th><th>Cllr</th></tr>"]
    for r in system.cross_validation.get("per_firearm", []):
        h.append(f"<tr><td>{_e(r['firearm'])}</td><td class='num'>{r['n_same']}</td>"
                 f"<td class='num'>{r['n_different']}</td>"
                 f"<td class='num{' fail' if r['misleading_same'] else ''}'>{r['misleading_same']}</td>"
                 f"<td class='num{' fail' if r['misleading_different'] else ''}'>{r['misleading_different']}</td>"
                 f"<td class='num'>{_f(r.get('min_llr_same'))}</td>"
                 f"<td class='num'>{_f(r.get('max_llr_different'))}</td>"
                 f"<td class='num'>{_f(r.get('cllr'))}</td></tr>")
    h.append("</table>")
    return h


def _misleading_pairs(ok: list[dict[str, Any]]) -> list[str]:
    """Every pair whose cross-validated LR points the wrong way, strongest first."""
    from ..calibration import verbal_scale

    mis = [p for p in ok if (p["same"] and p["llr"] < 0) or (not p["same"] and p["llr"] > 0)]
    mis.sort(key=lambda p: -abs(p["llr"]))
    h = [f"<h2>Misleading pairs ({len(mis)})</h2>"]
    if not mis:
        h.append("<p>No pair gave misleading evidence (no same-firearm pair below LR 1, no different-firearm pair "
                 "above LR 1).</p>")
        return h
    h.append("<table><tr><th>scan A</th><th>scan B</th><th>firearms</th><th>truth</th><th>score</th>"
             "<th>log10 LR (cross-validated)</th><th>verbal equivalent (ENFSI 2015)</th></tr>")
    for p in mis:
        h.append(f"<tr><td>{_e(Path(str(p['a'])).name)}</td><td>{_e(Path(str(p['b'])).name)}</td>"
                 f"<td>{_e(p['a_firearm'])} / {_e(p['b_firearm'])}</td>"
                 f"<td>{'same' if p['same'] else 'different'}</td><td class='num'>{_f(p['score'])}</td>"
                 f"<td class='num fail'>{_f(p['llr'], 2)}</td><td>{_e(verbal_scale(p['llr']))}</td></tr>")
    h.append("</table>")
    return h


def _failed_pairs(failed: list[dict[str, Any]]) -> list[str]:
    if not failed:
        return []
    h = [f"<h2>Pairs that could not be compared ({len(failed)})</h2><table><tr><th>scan A</th><th>scan B</th>"
         "<th>reason</th></tr>"]
    for p in failed:
        h.append(f"<tr><td>{_e(Path(str(p['a'])).name)}</td><td>{_e(Path(str(p['b'])).name)}</td>"
                 f"<td>{_e(p['error'])}</td></tr>")
    h.append("</table>")
    return h


def _verbal(system: Any) -> list[str]:
    from ..calibration import verbal_scale

    return ["<h2>Verbal equivalents (ENFSI 2015)</h2><table><tr><th>LR</th><th>wording</th></tr>"
            "<tr><td>1 to 2</td><td>no support for either proposition</td></tr>"
            "<tr><td>2 to 10</td><td>weak support</td></tr><tr><td>10 to 100</td><td>moderate support</td></tr>"
            "<tr><td>100 to 1,000</td><td>moderately strong support</td></tr>"
            "<tr><td>1,000 to 10,000</td><td>strong support</td></tr>"
            "<tr><td>10,000 to 1,000,000</td><td>very strong support</td></tr>"
            "<tr><td>above 1,000,000</td><td>extremely strong support</td></tr></table>"
            "<p class='note'>The same bands apply to 1/LR in support of different firearms. With the ELUB bounds "
            f"of this system the strongest possible statement is: {_e(verbal_scale(system.elub[1]))}</p>"]


def _provenance(system: Any, parameters: dict[str, Any]) -> list[str]:
    """The system, its reference population and the study's parameters; the scans; references; the end."""
    ref = system.reference
    h = ["<h2>System and provenance</h2><table>"]
    prov = [("system", f"{system.name} v{system.system_version}"), ("calibrator", system.method),
            ("calibrator parameters", system.params), ("score", system.score_column),
            ("ELUB bounds (log10)", f"[{system.elub[0]}, {system.elub[1]}]"),
            ("reference population", ref.get("description", "")),
            ("training-data SHA-256", system.training_checksum), ("fitted", system.created),
            ("fitted with ballistics", system.library_version),
            ("bootstrap replicates", system.bootstrap.get("n", 0))]
    prov += [(k, v) for k, v in parameters.items() if k not in ("criteria",)]
    for k, v in prov:
        h.append(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>")
    h.append("</table>")
    scans = ref.get("scans") or []
    if scans:
        h.append("<details><summary>Scans</summary><table><tr><th>file</th><th>firearm</th></tr>"
                 + "".join(f"<tr><td>{_e(s['file'])}</td><td>{_e(s['firearm'])}</td></tr>" for s in scans)
                 + "</table></details>")
    h.append("<p class='note'>References: Meuwly, Ramos &amp; Haraksim (2017) FSI 276:142-153 (validation "
             "guideline); Brümmer &amp; du Preez (2006) CSL 20:230-275 (Cllr, PAV); Ramos &amp; Gonzalez-Rodriguez "
             "(2013) FSI 230:156-169 (ECE); Vergeer et al. (2016) Sci. Justice 56:482-491 (ELUB); ENFSI (2015) "
             "Guideline for Evaluative Reporting.</p></body></html>")
    return h


def validation_report(result: Any = None, output: str | os.PathLike = "validation_report.html", **kwargs: Any) -> Path:
    """Write the validation report as one self-contained HTML file.

    Parameters
    ----------
    result : ValidationResult, optional
        See :func:`render_validation_report` (or pass ``system=``).
    output : path
        The HTML file (written atomically).
    **kwargs
        Passed to :func:`render_validation_report`.

    Returns
    -------
    Path

    References
    ----------
    Meuwly, Ramos & Haraksim (2017).
    """
    from .._io import atomic_write_bytes

    return atomic_write_bytes(Path(output), render_validation_report(result, **kwargs).encode("utf-8"))
