"""Self-contained HTML reports an examiner can file with the case.

One HTML file, no network: the figures are embedded as base64 PNG, the style is
inline.  A comparison report holds the scans (height and virtual light), the cells on
both scans, the congruent cells across rotation, the agreement map, where the score
falls among known same-firearm and different-firearm scores, the result and parameter
tables, the library version, the input file names with SHA-256 checksums, the date and
a plain-language summary of what the numbers mean and what they do not.

>>> import ballistics
>>> from ballistics import datasets
>>> a, b = datasets.fadul("processed")[:2]
>>> html = ballistics.report(a, b, output="report.html")      # doctest: +SKIP

References
----------
Song (2013), NBIS / Congruent Matching Cells; Tong, Song & Chu (2015), High CMC;
Zemmels, Hofmann & VanderPlas (2022), cmcR; Fadul et al. (2011), NIJ report 237960.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import itertools
import json
import logging
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .._version import __version__
from ..errors import BallisticsError, ComparisonError
from ..scan import Scan
from . import plot

__all__ = ["report", "search_report", "reference_scores", "pair_scores", "placement"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- inputs
def _load(x: Any, what: str) -> Scan:
    if isinstance(x, Scan):
        return x
    if isinstance(x, (str, os.PathLike)):
        from ..reading import read_scan
        return read_scan(x)
    raise BallisticsError(f"The {what} must be a Scan or a path to a scan file, got {type(x).__name__}.")


def _file_sha256(s: Scan) -> str:
    return s.provenance.sha256 or ""


# ---------------------------------------------------------------------------- reference scores
def _cache_dir() -> Path:
    d = os.environ.get("BALLISTICS_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "openbreech"


def _score_of(cmp: Any) -> tuple[float, int]:
    d = plot._cmp_dict(cmp)
    cmc = d.get("cmc_count")
    score = d.get("score", cmc)
    return float(score if score is not None else np.nan), int(cmc) if cmc is not None else -1


def pair_scores(scans: Sequence[Scan], *, method: str | None = None, truth_key: str = "firearm",
                progress: bool = False, **compare_kwargs: Any) -> list[dict[str, Any]]:
    """Compare every pair of scans and label it same-firearm or different-firearm.

    Parameters
    ----------
    scans : sequence of Scan
        Processed breech faces with the ground truth in ``metadata[truth_key]``.
    method : str, optional
        Comparison method given to :func:`ballistics.compare` (default: its default).
    truth_key : str
        Metadata key naming the firearm.
    progress : bool
        Show a tqdm progress bar.
    **compare_kwargs
        Further parameters of :func:`ballistics.compare`.

    Returns
    -------
    list of dict
        One dict per pair: ``a``, ``b`` (names), ``a_checksum``, ``b_checksum``,
        ``same`` (bool), ``score``, ``cmc_count``, ``rotation_deg``.
    """
    from ..comparison import compare

    for s in scans:
        if truth_key not in s.metadata:
            raise BallisticsError(f"Scan {s.name!r} has no ground truth metadata[{truth_key!r}]; "
                                  "reference scores need known same/different-firearm pairs.")
    pairs = list(itertools.combinations(range(len(scans)), 2))
    it: Iterable = pairs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(pairs, desc="reference pairs", unit="pair")
    out = []
    for i, j in it:
        a, b = scans[i], scans[j]
        cmp = _compare(a, b, method, compare_kwargs)
        score, cmc = _score_of(cmp)
        d = plot._cmp_dict(cmp)
        out.append({"a": a.name, "b": b.name, "a_checksum": a.checksum, "b_checksum": b.checksum,
                    "same": a.metadata[truth_key] == b.metadata[truth_key],
                    "score": score, "cmc_count": cmc,
                    "rotation_deg": d.get("rotation_deg"), "method": d.get("method"),
                    "params": _jsonable(d.get("params") or {})})
    return out


def _compare(a: Scan, b: Scan, method: str | None, kw: Mapping[str, Any]) -> Any:
    from ..comparison import compare
    if method is not None:
        return compare(a, b, method=method, **kw)
    return compare(a, b, **kw)


def _engine_fingerprint() -> str:
    """SHA-256 of the comparison code (package and kernels), so a cache never outlives a change
    of the engine even when the version number stays the same."""
    from .. import comparison, kernels
    h = hashlib.sha256()
    for pkg in (comparison, kernels):
        for f in sorted(Path(pkg.__file__).parent.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _default_method(method: str | None) -> str | None:
    """``None`` and the explicit default method name are the same computation."""
    import inspect

    from ..comparison import compare
    default = inspect.signature(compare).parameters["method"].default
    return None if method == default else method


def reference_scores(source: str | Sequence[Scan] = "bundled", *, method: str | None = None,
                     cache: bool = True, progress: bool = False,
                     **compare_kwargs: Any) -> dict[str, Any]:
    """Scores of known same-firearm and different-firearm pairs, to place a case score.

    Parameters
    ----------
    source : "bundled", "fadul40", or sequence of Scan
        ``"bundled"``: all 15 pairs of the 6 bundled Fadul breech faces (3 same-firearm,
        12 different-firearm); ``"fadul40"``: all 780 pairs of the 40 Fadul scans in
        ``../shared/data`` (slow; cached); or your own scans with
        ``metadata["firearm"]`` set.
    method : str, optional
        Comparison method (default: the default of :func:`ballistics.compare`); must be
        the one used for the case comparison.
    cache : bool
        Keep the scores in ``$BALLISTICS_CACHE`` (default ``~/.cache/openbreech``), keyed
        by library version, method, parameters and the scans' checksums.
    progress : bool
        Show a progress bar.
    **compare_kwargs
        Further parameters of :func:`ballistics.compare` (must match the case's).

    Returns
    -------
    dict
        ``same`` and ``different`` (lists of scores), ``pairs`` (per-pair details),
        ``source`` (description), ``method``, ``params``, ``library_version``.
    """
    if isinstance(source, str):
        from .. import datasets
        if source == "bundled":
            scans = datasets.fadul("processed")
            desc = "the 15 pairs of the 6 bundled Fadul breech faces (Ruger P95 slides 1-3)"
        elif source == "fadul40":
            scans = _fadul40()
            desc = f"all {len(scans) * (len(scans) - 1) // 2} pairs of the {len(scans)} Fadul breech faces (10 Ruger P95 slides)"
        else:
            raise BallisticsError(f"Unknown reference source {source!r}; use 'bundled', 'fadul40' "
                                  "or a list of scans with metadata['firearm'].")
    else:
        scans = list(source)
        desc = f"the {len(scans) * (len(scans) - 1) // 2} pairs of {len(scans)} given scans"
    key_src = json.dumps({"v": __version__, "engine": _engine_fingerprint(),
                          "method": _default_method(method), "kw": compare_kwargs,
                          "scans": sorted(s.checksum for s in scans)}, sort_keys=True, default=str)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    path = _cache_dir() / f"reference_{key}.json"
    if cache and path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("ignoring unreadable reference cache %s", path)
    t0 = time.perf_counter()
    pairs = pair_scores(scans, method=method, progress=progress, **compare_kwargs)
    out = {
        "source": desc, "method": method, "params": _jsonable(compare_kwargs),
        "library_version": __version__,
        "comparison_method": pairs[0]["method"] if pairs else None,
        # parameters shared by every reference comparison (per-pair values are left out)
        "comparison_params": ({k: v for k, v in pairs[0]["params"].items()
                               if all(p["params"].get(k) == v for p in pairs)} if pairs else {}),
        "same": [p["cmc_count"] for p in pairs if p["same"]],
        "different": [p["cmc_count"] for p in pairs if not p["same"]],
        "pairs": pairs, "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, default=str))
            tmp.replace(path)
        except OSError as exc:
            log.warning("could not cache reference scores in %s: %s", path, exc)
    return out


def _fadul40() -> list[Scan]:
    import csv

    from ..reading import read_scan
    root = Path(os.environ.get("BALLISTICS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    gt = root / "fadul" / "ground_truth.csv"
    if not gt.exists():
        raise BallisticsError(f"The 40-scan Fadul set is not at {root} (set BALLISTICS_SHARED_DATA).")
    scans = []
    with gt.open() as fh:
        for row in csv.DictReader(fh):
            s = read_scan(root / "fadul" / row["file"], exhibit_id=Path(row["file"]).stem)
            s.metadata["firearm"] = row["firearm"]
            scans.append(s)
    return scans


def placement(score: float, same: Iterable[float], different: Iterable[float]) -> dict[str, Any]:
    """Where a score falls among reference scores, in counts (no model, no extrapolation).

    Returns
    -------
    dict
        ``n_same``, ``n_different``, ``same_at_or_above``, ``different_at_or_above``,
        ``max_different``, ``min_same``.
    """
    s = np.asarray(list(same), float)
    d = np.asarray(list(different), float)
    return {
        "n_same": int(s.size), "n_different": int(d.size),
        "same_at_or_above": int((s >= score).sum()),
        "different_at_or_above": int((d >= score).sum()),
        "max_different": float(d.max()) if d.size else None,
        "min_same": float(s.min()) if s.size else None,
    }


def _leave_out(ref: Mapping[str, Any], a: Scan, b: Scan) -> tuple[list[float], list[float], int]:
    """Reference scores without the pair being reported (no circular comparison)."""
    pairs = ref.get("pairs")
    if not pairs:
        return list(ref.get("same", [])), list(ref.get("different", [])), 0
    ids = {a.checksum, b.checksum}
    keep = [p for p in pairs if {p.get("a_checksum"), p.get("b_checksum")} != ids]
    key = "cmc_count" if all("cmc_count" in p for p in keep) else "score"
    return ([p[key] for p in keep if p["same"]], [p[key] for p in keep if not p["same"]],
            len(pairs) - len(keep))


# ---------------------------------------------------------------------------- HTML pieces
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;max-width:1250px;margin:1.5em auto;
padding:0 1em;color:#111;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eef4fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;word-break:break-all}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#333;margin-top:.3em}
.summary{background:#f4f8fb;border-left:5px solid #0072B2;padding:.6em 1em}
.caveat{background:#fff8ec;border-left:5px solid #E69F00;padding:.6em 1em}
.meta{color:#444;font-size:.9em}.thumbs img{width:210px;border:1px solid #ccc}
footer{margin-top:2em;color:#555;font-size:.85em}
"""


_HEX = re.compile(r"[0-9a-f]{32,}")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(fig, alt: str, caption: str, dpi: int = 100) -> str:
    png = plot.figure_to_png(fig, dpi=dpi)
    b64 = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        cells = []
        for v in r:
            cls = ' class="num"' if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else ""
            txt = _fmt(v)
            if _HEX.fullmatch(txt) or len(txt) > 60:
                cells.append(f"<td><code>{_e(txt)}</code></td>")  # checksums, long values: wrap anywhere
            else:
                cells.append(f"<td{cls}>{_e(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.4g}"
    if v is None:
        return "n/a"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(_jsonable(v), default=str)
    return str(v)


def _jsonable(o: Any) -> Any:
    from ..scan import _jsonable as j
    return j(o)


def _page(title: str, body: list[str]) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"ballistics {__version__}\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + f"<footer>Generated by ballistics (openbreech) {__version__} on {now}; Python "
              f"{platform.python_version()}, NumPy {np.__version__}. This file is self-contained: "
              "images are embedded, nothing is loaded from the network.</footer></body></html>")


def _inputs_table(scans: Sequence[Scan], cmp_inputs: Sequence[Mapping[str, Any]] | None) -> str:
    rows = []
    for s in scans:
        rows.append([s.name, s.provenance.source or "(in memory)", _file_sha256(s) or "n/a",
                     s.checksum, f"{s.shape[0]} x {s.shape[1]}",
                     f"{s.spacing[1] * 1e6:.3g} um", f"{100 * s.missing_fraction:.1f} %",
                     "; ".join(st.get("step", "?") for st in s.provenance.steps) or "none",
                     "; ".join(s.provenance.fixes) or "none"])
    return _table(rows, ["scan", "file", "file SHA-256", "surface checksum (SHA-256 of heights)",
                         "pixels", "pixel size", "not measured", "processing steps",
                         "reader repairs"])


def _summary_text(d: Mapping[str, Any], a: Scan, b: Scan, place: dict[str, Any] | None,
                  ref_desc: str | None, n_cells: int) -> str:
    cmc = d.get("cmc_count")
    method = d.get("method", "comparison")
    rot = d.get("rotation_deg")
    parts = [f"<p><b>{_e(a.name)}</b> and <b>{_e(b.name)}</b> were compared with the "
             f"<b>{_e(method)}</b> Congruent Matching Cells method. The first surface was cut into "
             f"{n_cells} cells (those with enough measured area); each cell was searched for in the other surface "
             "over a range of rotations and shifts. A cell is <i>congruent</i> when its best match is similar "
             "enough (correlation above the threshold) and lies at the same rotation and shift as most "
             f"other cells. <b>{_e(cmc)}</b> cells were congruent"
             + (f", at a rotation of {rot:.1f} degrees" if isinstance(rot, (int, float)) and np.isfinite(rot) else "")
             + ".</p>"]
    if place is not None:
        parts.append(
            f"<p>Among {_e(ref_desc)}, {place['same_at_or_above']} of {place['n_same']} same-firearm pairs and "
            f"{place['different_at_or_above']} of {place['n_different']} different-firearm pairs scored "
            f"{_e(cmc)} or more (highest different-firearm score: {_fmt(place['max_different'])}; lowest "
            f"same-firearm score: {_fmt(place['min_same'])}).</p>")
    parts.append(
        "<div class='caveat'><p><b>What these numbers do not say.</b> The count of congruent cells is a measure of "
        "similarity between two surfaces, not a probability that they were fired from the same firearm, and not "
        "an identification by itself. The reference scores come from a small number of known pairs of one firearm "
        "model (Ruger P95, Fadul et al. 2011) measured on one instrument; other firearms, ammunition, instruments or "
        "surface quality can give different score ranges, and small reference sets cannot show rare events. "
        "Scores from other software or other parameters are on a different scale and cannot be compared with this one. "
        "Low counts can come from poor marks or poor scans rather than different firearms. The figures show where the "
        "agreement is, so that an examiner can judge whether it lies on marks from the firearm (breech-face marks) "
        "rather than on damage, debris or edges; the conclusion remains the examiner's.</p></div>")
    return "".join(parts)


# ---------------------------------------------------------------------------- comparison report
def report(a: Scan | str | os.PathLike, b: Scan | str | os.PathLike, *, comparison: Any = None,
           output: str | os.PathLike | None = None, method: str | None = None,
           reference: str | Mapping[str, Any] | None = "bundled", extract: bool = False,
           title: str | None = None, notes: str | None = None, azimuth_deg: float = 315.0,
           compare_kwargs: Mapping[str, Any] | None = None, dpi: int = 90) -> str:
    """Write a self-contained HTML report of a comparison of two scans.

    Parameters
    ----------
    a, b : Scan or path
        The two scans (``a`` is the first/reference scan of :func:`ballistics.compare`).
    comparison : Comparison, optional
        An existing result of ``compare(a, b)``; computed if omitted.
    output : path, optional
        Where to write the HTML file.
    method : str, optional
        Comparison method when ``comparison`` is computed here (default: the default of
        :func:`ballistics.compare`).
    reference : "bundled", "fadul40", dict or None
        Known same-firearm and different-firearm scores to place the score among: a
        source for :func:`reference_scores`, or a dict with ``same``, ``different`` and
        ``source`` (and optionally ``pairs``).  ``None`` leaves the figure out.  The pair
        being reported is always left out of the reference (no circularity).
    extract : bool
        The inputs are raw whole-primer scans: extract the breech faces first
        (:func:`ballistics.extract_breech_face`) and show the regions found on the raw scans.
    title : str, optional
        Report title.
    notes : str, optional
        Examiner's notes, shown verbatim (escaped).
    azimuth_deg : float
        Direction of the virtual light, degrees clockwise from the top.
    compare_kwargs : dict, optional
        Further parameters of :func:`ballistics.compare`.
    dpi : int
        Resolution of the embedded figures.

    Returns
    -------
    str
        The HTML text (also written to ``output`` when given).
    """
    t0 = time.perf_counter()
    a = _load(a, "first scan")
    b = _load(b, "second scan")
    compare_kwargs = dict(compare_kwargs or {})
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
        comparison = _compare(a, b, method, compare_kwargs)
    d = plot._cmp_dict(comparison)
    if "cells" not in d:
        raise ComparisonError("The comparison holds no cells; pass the result of ballistics.compare(a, b).")

    body: list[str] = []
    ttl = title or f"Comparison report: {a.name} vs {b.name}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body.append(f"<h1>{_e(ttl)}</h1><p class='meta'>Date: {_e(now)} &middot; ballistics (openbreech) "
                f"version {_e(__version__)} &middot; method {_e(d.get('method', method))}</p>")

    # -- reference placement
    place = ref_desc = ref_warning = None
    same = diff = None
    n_left_out = 0
    if reference is not None:
        try:
            ref = (reference_scores(reference, method=d.get("method", method), **compare_kwargs)
                   if isinstance(reference, str) else dict(reference))
            same, diff, n_left_out = _leave_out(ref, a, b)
            ref_desc = ref.get("source", "reference pairs")
            if n_left_out:
                ref_desc += " (leaving out this pair)"
            score_val = float(d.get("cmc_count") if d.get("cmc_count") is not None else d.get("score"))
            place = placement(score_val, same, diff)
            rp = ref.get("comparison_params")
            cp = _jsonable(d.get("params") or {})
            if rp and any(cp.get(k) != v for k, v in rp.items()) or (
                    ref.get("comparison_method") and ref.get("comparison_method") != d.get("method")):
                ref_warning = ("The reference scores were computed with other comparison parameters or "
                               "another method than this comparison; the placement below is on a different "
                               "scale and must not be relied on.")
        except BallisticsError as exc:
            log.warning("no reference distribution: %s", exc)
            body.append(f"<p class='caveat'>No reference distribution: {_e(exc)}</p>")

    cells_all = list(d.get("cells") or [])
    dirs = plot._directions_of(cells_all) or ["a_to_b"]
    n_cells = sum(1 for c in cells_all if c.get("direction", "a_to_b") == dirs[0])
    body.append("<h2>Summary</h2><div class='summary'>"
                + _summary_text(d, a, b, place, ref_desc, n_cells) + "</div>")
    if extract and place is not None:
        ref_warning = ((ref_warning + " ") if ref_warning else "") + (
            "These breech faces were extracted from raw scans by this engine, while the reference scores "
            "come from breech faces prepared by CSAFE/cmcR; the preparation differs (region edges, filtering), "
            "so the placement is indicative only.")
    if ref_warning:
        log.warning(ref_warning)
        body.append(f"<p class='caveat'><b>Warning:</b> {_e(ref_warning)}</p>")
    if notes:
        body.append(f"<h2>Examiner's notes</h2><p>{_e(notes)}</p>")

    # -- result table
    tr = d.get("translation_m") or (np.nan, np.nan)
    rows = [["method", d.get("method")], ["congruent matching cells (CMC count)", d.get("cmc_count")],
            ["score", d.get("score")], ["registration: rotation (degrees)", d.get("rotation_deg")],
            ["registration: shift dy, dx (um)", [float(tr[0]) * 1e6, float(tr[1]) * 1e6]],
            ["correlation of the aligned surfaces", d.get("correlation")],
            ["computation time (s)", d.get("elapsed_s")]]
    body.append("<h2>Result</h2>" + _table(rows, ["quantity", "value"]))
    dir_rows = []
    for name, v in (d.get("directions") or {}).items():
        v = dict(v)
        dir_rows.append([name.replace("_", " "), v.get("cmc_count"), v.get("rotation_deg"),
                         v.get("translation_px"), v.get("passed")])
    if dir_rows:
        body.append("<p>Per direction (cells cut from the first scan and searched in the second, and the reverse):</p>"
                    + _table(dir_rows, ["direction", "CMC count", "rotation (deg)", "shift (px)",
                                        "passed the High-CMC check"]))

    # -- figures
    lims = plot.common_limits(a, b)
    plt = plot._plt()
    if raw_a is not None:
        fig = plt.figure(figsize=(11, 5), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        plot.regions(raw_a, a.region, ax=ax1)
        plot.regions(raw_b, b.region, ax=ax2)
        body.append("<h2>Regions found on the raw scans</h2>" + _img(
            fig, "regions", "Circles found on each raw scan: primer edge (orange, dashed), firing-pin "
            "impression (sky blue, dashed) and the breech-face annulus that is compared (between the vermillion "
            "and the purple solid circles). Check that they sit on the edges.", dpi))
    fig = plt.figure(figsize=(11, 9.6), layout="constrained")
    axs = fig.subplots(2, 2)
    plot.scan(a, ax=axs[0, 0], vmin=lims[0], vmax=lims[1])
    plot.scan(b, ax=axs[0, 1], vmin=lims[0], vmax=lims[1])
    plot.virtual_light(a, ax=axs[1, 0], azimuth_deg=azimuth_deg)
    plot.virtual_light(b, ax=axs[1, 1], azimuth_deg=azimuth_deg)
    body.append("<h2>The surfaces</h2>" + _img(
        fig, "scans", "Top: heights in micrometres on one shared colour scale (cividis). Bottom: the same "
        f"surfaces lit by a virtual light from azimuth {azimuth_deg:g} degrees (hill-shading), as under a "
        "comparison microscope. White: not measured.", dpi))

    fig = plot.comparison(a, b, comparison, direction=dirs[0])
    body.append("<h2>Congruent matching cells</h2>" + _img(
        fig, "cells", "Left: cells cut from the reference; every cell is outlined with its correlation (NCC) "
        "written in it; congruent cells are filled green and numbered. Middle: where each cell found its best "
        "match in the other scan (same numbers). Right (when shown): the other scan aligned to the reference by "
        "the registration, with the reference's cell grid, to compare the surfaces side by side.", dpi))
    if len(dirs) > 1:
        fig = plot.comparison(a, b, comparison, direction=dirs[1], aligned=False)
        body.append(_img(fig, "cells reverse", "The same, with cells cut from the second scan "
                         "(the reverse direction).", dpi))
    body.append(_cells_table(cells_all))

    if d.get("rotation_curve"):
        fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
        plot.rotation_curve(comparison, ax=ax)
        body.append("<h2>Congruent cells across rotation</h2>" + _img(
            fig, "rotation", "Number of cells congruent at each trial rotation. A clear single peak means the "
            "cells agree on one rotation; a flat curve means no consistent alignment was found.", dpi))
    try:
        fig = plot.agreement(a, b, comparison)
        body.append("<h2>Where the aligned surfaces agree and differ</h2>" + _img(
            fig, "agreement", "Left: correlation of the two surfaces after alignment in a sliding window "
            "(purple: agree, orange: opposite, white: unrelated or not measured). Right: the height difference "
            "after alignment, in micrometres.", dpi))
    except BallisticsError as exc:
        body.append(f"<p class='caveat'>No agreement map: {_e(exc)}</p>")

    if place is not None:
        fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
        plot.score_reference(float(d.get("cmc_count")), same, diff, ax=ax,
                             source=f"{len(same) + len(diff)} known pairs")
        body.append("<h2>This score among known pairs</h2>" + _img(
            fig, "reference", f"Scores of known same-firearm (blue) and different-firearm (vermillion, hatched) "
            f"pairs: {_e(ref_desc)}, computed with this version and these parameters. The black line is this "
            "comparison.", dpi))

    # -- parameters and inputs
    params = d.get("params") or {}
    body.append("<h2>Parameters</h2>" + (_table([[k, v] for k, v in params.items()], ["parameter", "value"])
                                          if params else "<p>(none recorded)</p>"))
    body.append("<h2>Inputs</h2>" + _inputs_table([s for s in (raw_a, raw_b) if s is not None] + [a, b],
                                                  d.get("inputs")))
    if d.get("inputs"):
        body.append("<p>Checksums recorded by the comparison:</p>" + _table(
            [[i.get("name"), i.get("sha256"), i.get("checksum")] for i in d["inputs"]],
            ["input", "file SHA-256", "surface checksum"]))
    body.append(f"<p class='meta'>Library version {_e(d.get('library_version', __version__))}; report written in "
                f"{time.perf_counter() - t0:.1f} s.</p>")
    page = _page(ttl, body)
    if output is not None:
        _write(output, page)
    log.info("report %s vs %s in %.1f s", a.name, b.name, time.perf_counter() - t0)
    return page


def _cells_table(cells_all: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for direction in plot._directions_of(cells_all):
        sel = [c for c in cells_all if c.get("direction", "a_to_b") == direction]
        nums = plot._cell_numbers(sel)
        for c in sorted(sel, key=lambda c: (not c.get("congruent"), c.get("row", 0), c.get("col", 0))):
            if not c.get("congruent"):
                continue
            rows.append([direction.replace("_", " "), nums[id(c)], c.get("row"), c.get("col"), c.get("ncc"),
                         c.get("rotation_deg"), c.get("dy_px"), c.get("dx_px")])
    if not rows:
        return "<p>No congruent cells.</p>"
    return ("<details><summary>Congruent cells (table)</summary>"
            + _table(rows, ["direction", "number", "row", "column", "correlation (NCC)", "rotation (deg)",
                            "shift dy (px)", "shift dx (px)"]) + "</details>")


def _write(output: str | os.PathLike, page: str) -> None:
    p = Path(output)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BallisticsError(f"Cannot write the report to {p}: {exc}") from exc


# ---------------------------------------------------------------------------- search report
def search_report(db: Any, query: Scan | str | os.PathLike, *, k: int = 10, hits: Sequence[Any] | None = None,
                  output: str | os.PathLike | None = None, preprocess: bool = True,
                  title: str | None = None, dpi: int = 80) -> str:
    """Write a self-contained HTML report of a database search: the candidate list.

    Parameters
    ----------
    db : CaseDatabase or path
        The case database searched.
    query : Scan or path
        The questioned scan.
    k : int
        Number of candidates.
    hits : sequence of SearchHit, optional
        An existing result of ``db.search(query, k)``; searched here if omitted.
    output : path, optional
        Where to write the HTML file.
    preprocess : bool
        Passed to ``db.search`` (extract the breech face of a raw query).
    title : str, optional
    dpi : int
        Resolution of the thumbnails.

    Returns
    -------
    str
        The HTML text.
    """
    t0 = time.perf_counter()
    if isinstance(db, (str, os.PathLike)):
        from ..index import CaseDatabase
        db = CaseDatabase(db)
    q = _load(query, "query scan")
    if hits is None:
        hits = db.search(q, k=k, preprocess=preprocess)
    q_proc = _query_processed(db, q, preprocess)
    body = []
    ttl = title or f"Database search: {q.name}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body.append(f"<h1>{_e(ttl)}</h1><p class='meta'>Date: {_e(now)} &middot; ballistics (openbreech) version "
                f"{_e(__version__)} &middot; {len(hits)} candidates</p>")
    stats = {}
    try:
        stats = dict(db.stats())
    except Exception as exc:  # noqa: BLE001
        log.info("db.stats() failed: %s", exc)
    body.append("<div class='summary'><p>The query was compared with every scan in the database by a fast "
                "signature search, and the closest candidates were re-scored by the Congruent Matching Cells "
                "comparison. The list is ordered by that score. It is a list of scans to examine, not a list of "
                "identifications: a high rank only means the surfaces are more similar than the others in this "
                "database; the true source may not be in the database at all, and every candidate must be "
                "examined and compared by an examiner.</p></div>")
    fig, ax = plot._plt().subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    lims = plot.common_limits(q_proc)
    plot.scan(q_proc, ax=ax[0], vmin=lims[0], vmax=lims[1])
    plot.virtual_light(q_proc, ax=ax[1])
    body.append("<h2>Query</h2>" + _img(fig, "query", "The query surface: heights (um) and virtual light.", dpi))
    rows_html = ["<table><tr><th>rank</th><th>scan</th><th>case</th><th>firearm</th>"
                 "<th>signature similarity (-1..1)</th><th>CMC count</th><th>comparison score</th>"
                 "<th>rotation (deg)</th><th>query (left) and candidate aligned to it (right), "
                 "congruent cells in green</th></tr>"]
    for h in hits:
        hd = _as_hit(h)
        thumb = ""
        try:
            cmpd = hd.get("comparison")
            if cmpd and "error" not in cmpd:
                cand = db.load_scan(hd["scan_id"], "breech_face")
                thumb = _thumb(q_proc, cand, cmpd, dpi)
            elif cmpd:
                thumb = f"(comparison failed: {_e(cmpd['error'])})"
            else:
                thumb = "(not re-ranked: signature retrieval only)"
        except Exception as exc:  # noqa: BLE001 - a missing thumbnail must not lose the list
            log.warning("no thumbnail for %s: %s", hd.get("scan_id"), exc)
            thumb = f"(no thumbnail: {_e(exc)})"
        cmpd = hd.get("comparison") or {}
        rows_html.append("<tr>" + "".join(f"<td>{x}</td>" for x in (
            _e(hd.get("rank")), _e(hd.get("scan_id")), _e(hd.get("case_id")), _e(hd.get("firearm_id") or "n/a"),
            _e(_fmt(hd.get("retrieval_score"))), _e(_fmt(hd.get("cmc_count"))), _e(_fmt(hd.get("score"))),
            _e(_fmt(cmpd.get("rotation_deg"))),
            f"<span class='thumbs'>{thumb}</span>")) + "</tr>")
    rows_html.append("</table>")
    body.append("<h2>Candidate list</h2>" + "".join(rows_html))
    if stats:
        body.append("<h2>Database</h2>" + _table([[k_, v] for k_, v in stats.items()], ["property", "value"]))
    body.append("<h2>Query input</h2>" + _inputs_table([q] if q_proc is q else [q, q_proc], None))
    body.append(f"<p class='meta'>Report written in {time.perf_counter() - t0:.1f} s.</p>")
    page = _page(ttl, body)
    if output is not None:
        _write(output, page)
    return page


def _as_hit(h: Any) -> dict[str, Any]:
    if isinstance(h, Mapping):
        return dict(h)
    if hasattr(h, "to_dict"):
        return dict(h.to_dict())
    return plot._as_dict(h)


def _query_processed(db: Any, q: Scan, preprocess: bool) -> Scan:
    """The query surface as the search compared it (breech face extracted when ``preprocess``)."""
    if not preprocess:
        return q
    ex = (getattr(db, "_extractors", None) or {}).get("breech_face")
    if ex is None:
        from ..features import extract_breech_face as ex
    return ex(q)


def _thumb(q: Scan, cand: Scan, cmpd: Mapping[str, Any], dpi: int) -> str:
    """Query and candidate aligned to it, congruent cells outlined, as one small PNG."""
    plt = plot._plt()
    fig, axs = plt.subplots(1, 2, figsize=(6.0, 3.0), layout="constrained")
    lims = plot.common_limits(q, cand)
    try:
        _, cand_al = plot.aligned_pair(q, cand, _comparison_from_dict(cmpd))
    except Exception as exc:  # noqa: BLE001
        log.info("thumbnail without alignment: %s", exc)
        cand_al = cand
    plot.cells(q, cmpd, ax=axs[0], role="reference", vmin=lims[0], vmax=lims[1], colorbar=False,
               show_ncc=False, title=f"{q.name} (query)")
    plot.cells(cand_al, cmpd, ax=axs[1], role="reference", vmin=lims[0], vmax=lims[1], colorbar=False,
               show_ncc=False, title=f"{cand.name} aligned")
    for ax in axs:
        ax.tick_params(labelsize=6)
        ax.xaxis.label.set_size(7)
        ax.yaxis.label.set_size(7)
        ax.title.set_size(8)
    b64 = base64.b64encode(plot.figure_to_png(fig, dpi=dpi)).decode("ascii")
    return f'<img style="width:420px" alt="candidate" src="data:image/png;base64,{b64}">'


def _comparison_from_dict(d: Mapping[str, Any]) -> Any:
    """A :class:`ballistics.comparison.Comparison` back from its ``to_dict()``."""
    try:
        from ..comparison import Comparison
        return Comparison.from_dict(dict(d))
    except Exception:  # noqa: BLE001 - older/partial dicts: attribute access is enough
        return _DictComparison(d)


class _DictComparison:
    """Wraps a comparison dict so :func:`plot.aligned_pair` can find the alignment helper."""

    def __init__(self, d: Mapping[str, Any]):
        self._d = dict(d)
        for k, v in self._d.items():
            setattr(self, k, v)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._d)
