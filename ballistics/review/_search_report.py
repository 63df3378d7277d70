"""HTML report of a database search: the candidate list, each candidate aligned to the query."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._version import __version__
from ..errors import BallisticsError
from ..scan import Scan
from ._cells import aligned_pair
from ._colour_scale import common_limits
from ._figures import new_figure
from ._html import esc, figure_html, fmt, inputs_table, page, png_data_uri, table, utc_now, write_report
from ._plot_cells import cells
from ._plot_surfaces import scan, virtual_light

__all__ = ["search_report", "load_scan"]

log = logging.getLogger(__name__)

_NOT_IDENTIFICATIONS = (
    "<div class='summary'><p>The query went through the search cascade: <b>stage 1</b> retrieved a short list from "
    "every scan in the database by a fast signature (FAISS; similarity -1..1); <b>stage 2</b> verified each "
    "short-listed candidate by matching SIFT key points under one rigid motion (the number of <i>inliers</i>; "
    "the mirror image too); <b>stage 3</b> compared the best verified candidates with the Congruent Matching Cells "
    "comparison (CMC count, score and log10 likelihood ratio). Compared candidates come first, by CMC count and "
    "score; the others follow by inliers, then signature similarity. A candidate with enough inliers is compared "
    "only about the rotation and handedness stage 2 found (seeded), others over the full circle in both handedness. "
    "The columns show the score of every stage "
    "each candidate reached.</p><p>It is a list of scans to examine, not a list of identifications: a high rank "
    "only means the surfaces are more similar than the others in this database; the true source may not be in the "
    "database at all, and every candidate must be examined and compared by an examiner. A log10 LR here is the "
    "LR system's value for that pair alone; it does not account for the search among many candidates.</p></div>")

_STAGES = {"query": "query features (signature, key points)",
           "stage1": "stage 1: retrieval (signatures, key-point votes)",
           "stage2": "stage 2: SIFT + RANSAC verification", "stage3": "stage 3: compare (CMC)"}


def load_scan(x: Any, what: str) -> Scan:
    """``x`` if it is a Scan, else read from the path (a :class:`BallisticsError` otherwise)."""
    if isinstance(x, Scan):
        return x
    if isinstance(x, (str, os.PathLike)):
        from ..reading import read_scan
        return read_scan(x)
    raise BallisticsError(f"The {what} must be a Scan or a path to a scan file, got {type(x).__name__}.")


def search_report(db: Any, query: Scan | str | os.PathLike[str], *, k: int = 10, hits: Sequence[Any] | None = None,
                  output: str | os.PathLike[str] | None = None, preprocess: bool = True,
                  title: str | None = None, dpi: int = 80,
                  timings: Mapping[str, Mapping[str, float]] | None = None,
                  search_params: Mapping[str, Any] | None = None) -> str:
    """Write a self-contained HTML report of a database search: the candidate list.

    Parameters
    ----------
    db : CaseDatabase or path
        The case database searched.
    query : Scan or path
        The questioned scan.
    k : int
        Number of candidates.
    hits : SearchResult or sequence of SearchHit, optional
        An existing result of ``db.search(query, k)``; searched here if omitted.  A
        :class:`~ballistics.retrieval.SearchResult` brings its own timings and parameters.
    output : path, optional
        Where to write the HTML file (atomically).
    preprocess : bool
        Passed to ``db.search`` (extract the breech face of a raw query).
    title : str, optional
    dpi : int
        Resolution of the thumbnails, dots per inch.
    timings, search_params : dict, optional
        Per-stage timings and the cascade's knobs of the search that gave ``hits``
        (default: those the ``SearchResult`` carries).

    Returns
    -------
    str
        The HTML text.
    """
    t0 = time.perf_counter()
    if not (isinstance(k, int) and k >= 1):
        raise BallisticsError(f"k must be a positive number of candidates, got {k!r}.")
    if isinstance(db, (str, os.PathLike)):
        from ..database import CaseDatabase
        db = CaseDatabase(db)
    q = load_scan(query, "query scan")
    if hits is None:
        hits = db.search(q, k=k, preprocess=preprocess)
    q_proc = _query_processed(db, q, preprocess)
    if timings is None and hasattr(hits, "timings") and hasattr(hits, "params"):
        timings = hits.timings              # a SearchResult carries its own search's record
        search_params = search_params or hits.params
    ttl = title or f"Database search: {q.name}"
    body = [f"<h1>{esc(ttl)}</h1><p class='meta'>Date: {esc(utc_now())} &middot; ballistics (openbreech) version "
            f"{esc(__version__)} &middot; {len(hits)} candidates</p>", _NOT_IDENTIFICATIONS]
    for w in getattr(hits, "warnings", ()):  # what the search said the examiner must know
        body.append(f"<p class='caveat'><b>Warning:</b> {esc(w)}</p>")
    fig = new_figure((10, 4.6))
    axs = fig.subplots(1, 2)
    lims = common_limits(q_proc)
    scan(q_proc, ax=axs[0], vmin=lims[0], vmax=lims[1])
    virtual_light(q_proc, ax=axs[1])
    body.append("<h2>Query</h2>" + figure_html(fig, "query", "The query surface: heights (um) and virtual light.",
                                               dpi))
    body.append("<h2>Candidate list</h2>" + _candidates(db, q_proc, hits, dpi))
    body.append(_timings_section(timings, search_params))
    stats: dict[str, Any] = {}
    try:
        stats = dict(db.stats())
    except BallisticsError as exc:  # the candidate list matters more than the statistics
        log.warning("no database statistics in the report: %s", exc)
    if stats:
        body.append("<h2>Database</h2>" + table([[k_, v] for k_, v in stats.items()], ["property", "value"]))
    body.append("<h2>Query input</h2>" + inputs_table([q] if q_proc is q else [q, q_proc]))
    body.append(f"<p class='meta'>Report written in {time.perf_counter() - t0:.1f} s.</p>")
    html = page(ttl, body)
    if output is not None:
        write_report(output, html)
    return html


def _num_td(x: Any) -> str:
    num = isinstance(x, (int, float)) and not isinstance(x, bool)
    return f"<td class='num'>{esc(fmt(x))}</td>" if num else f"<td>{esc(fmt(x))}</td>"


def _candidates(db: Any, q_proc: Scan, hits: Sequence[Any], dpi: int) -> str:
    rows = ["<table class='cands'><tr><th rowspan='2'>rank</th><th rowspan='2'>scan</th><th rowspan='2'>case</th>"
            "<th rowspan='2'>firearm</th><th rowspan='2'>last stage</th>"
            "<th colspan='2'>stage 1: retrieval</th><th colspan='2'>stage 2: verification</th>"
            "<th colspan='4'>stage 3: comparison</th></tr>"
            "<tr><th>rank</th><th>signature similarity (-1..1)</th><th>inliers</th><th>rotation (deg)</th>"
            "<th>CMC count</th><th>score</th><th>log10 LR [interval]</th><th>rotation (deg)</th></tr>"]
    for h in hits:
        hd = _as_hit(h)
        cmpd = hd.get("comparison") or {}
        ver = hd.get("verification") or {}
        rot2 = ver.get("rotation_deg")
        if ver.get("mirrored"):
            rot2 = f"{fmt(rot2)} (mirrored)"
        head = [hd.get("rank"), hd.get("scan_id"), hd.get("case_id"), hd.get("firearm_id") or "n/a",
                hd.get("stage"), hd.get("retrieval_rank"), hd.get("retrieval_score"),
                hd.get("inliers") if hd.get("inliers") is not None else "n/a", rot2]
        extra = ""
        if cmpd and "error" not in cmpd:
            stage3 = "".join(_num_td(x) for x in (hd.get("cmc_count"), hd.get("score"), _llr_text(cmpd),
                                                   cmpd.get("rotation_deg")))
            try:
                thumb = _thumb(q_proc, db.load_scan(hd["scan_id"], "breech_face"), cmpd, dpi)
            except BallisticsError as exc:  # a missing thumbnail must not lose the list
                log.warning("no thumbnail for %s: %s", hd.get("scan_id"), exc)
                thumb = f"(no thumbnail: {esc(exc)})"
            if cmpd.get("mirrored") and cmpd.get("warnings"):
                thumb = ("<p class='alert'><b>Mirrored match:</b> the candidate matched as a mirror image of "
                         "itself (rows reversed); check both files' provenance before relying on it.</p>" + thumb)
            extra = (f"<tr><td></td><td colspan='12'><span class='thumbs'>{thumb}</span><br><span class='meta'>"
                     f"{esc(hd.get('scan_id'))}: query (left) and candidate aligned to it (right), congruent cells "
                     f"in green. {esc(_stage3_note(hd.get('stage3')))}</span></td></tr>")
        elif cmpd:
            stage3 = f"<td colspan='4'>comparison failed: {esc(cmpd['error'])}</td>"
        elif (hd.get("stage") or 1) >= 2:
            stage3 = "<td colspan='4' class='meta'>not compared (stage 2 only)</td>"
        else:
            stage3 = "<td colspan='4' class='meta'>not compared (stage 1 only)</td>"
        rows.append("<tr>" + "".join(_num_td(x) for x in head) + stage3 + "</tr>" + extra)
    rows.append("</table><p class='meta'>Stage 2's rotation is that of the matched key points; the comparison's "
                "rotation (stage 3) is measured the other way round, so for a true match it is about minus stage "
                "2's. 'n/a': the candidate did not reach that stage.</p>")
    return "".join(rows)


def _stage3_note(s3: Mapping[str, Any] | None) -> str:
    """How the candidate's comparison was run: seeded by stage 2's pose, or over the full circle."""
    if not s3:
        return ""
    if s3.get("seeded"):
        lo, hi = s3.get("rotation_range") or (float("nan"), float("nan"))
        hand = "mirrored" if s3.get("handedness") == "mirrored" else "as given"
        text = (f"Stage 3 was seeded by stage 2's pose ({s3.get('stage2_inliers')} inliers): rotations "
                f"{lo:.0f} to {hi:.0f} deg only, candidate {hand} only.")
        if s3.get("lr"):
            text += f" The log10 LR is {s3['lr']}."
        if s3.get("fallback"):
            text += f" {s3['fallback']}."
        return text
    return f"Stage 3 searched the full circle in both handedness ({s3.get('reason')})."


def _llr_text(cmpd: Mapping[str, Any]) -> str:
    """log10 LR of a compared candidate with its interval, or n/a."""
    llr = cmpd.get("llr")
    if not isinstance(llr, (int, float)):
        return "n/a"
    iv = cmpd.get("llr_interval")
    return f"{llr:+.2f}" + (f" [{float(iv[0]):+.2f}, {float(iv[1]):+.2f}]" if iv and None not in iv else "")


def _timings_section(timings: Mapping[str, Mapping[str, float]] | None, params: Mapping[str, Any] | None) -> str:
    """Per-stage times of the search (wall and CPU seconds) and the cascade's knobs."""
    if not timings:
        return ("<h2>Search timings</h2><p class='meta'>Not available: the hits were passed in without the "
                "search's timings.</p>")
    rows = [[_STAGES.get(k, k), int(v.get("n", 0)), v.get("wall_s"), v.get("cpu_s")]
            for k, v in timings.items()]
    out = "<h2>Search timings</h2>" + table(rows, ["stage", "items", "wall time (s)", "CPU time (s)"])
    if params:
        out += "<p>Cascade settings:</p>" + table([[k, v] for k, v in params.items()], ["setting", "value"])
    return out


def _as_hit(h: Any) -> dict[str, Any]:
    if isinstance(h, Mapping):
        return dict(h)
    if callable(getattr(h, "to_dict", None)):
        return dict(h.to_dict())
    raise BallisticsError(f"A search hit must be a SearchHit or a dict, got {type(h).__name__}.")


def _query_processed(db: Any, q: Scan, preprocess: bool) -> Scan:
    """The query surface as the search compared it (breech face extracted when ``preprocess``)."""
    if not preprocess:
        return q
    from ..features import extract_breech_face

    ex = (getattr(db, "_extractors", None) or {}).get("breech_face") or extract_breech_face
    return ex(q)


def _thumb(q: Scan, cand: Scan, cmpd: Mapping[str, Any], dpi: int) -> str:
    """Query and candidate aligned to it, congruent cells outlined, as one small PNG."""
    fig = new_figure((6.0, 3.0))
    axs = fig.subplots(1, 2)
    lims = common_limits(q, cand)
    _, cand_al = aligned_pair(q, cand, cmpd)
    cells(q, cmpd, ax=axs[0], role="reference", vmin=lims[0], vmax=lims[1], colorbar=False,
          show_ncc=False, title=f"{q.name} (query)")
    cells(cand_al, cmpd, ax=axs[1], role="reference", vmin=lims[0], vmax=lims[1], colorbar=False,
          show_ncc=False, title=f"{cand.name} aligned")
    for ax in axs:
        ax.tick_params(labelsize=6)
        ax.xaxis.label.set_size(7)
        ax.yaxis.label.set_size(7)
        ax.title.set_size(8)
    return f'<img style="width:600px" alt="candidate" src="{png_data_uri(fig, dpi)}">'
