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
    "<div class='summary'><p>The query was compared with every scan in the database by a fast signature search, "
    "and the closest candidates were re-scored by the Congruent Matching Cells comparison. The list is ordered by "
    "that score. It is a list of scans to examine, not a list of identifications: a high rank only means the "
    "surfaces are more similar than the others in this database; the true source may not be in the database at "
    "all, and every candidate must be examined and compared by an examiner.</p></div>")


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
        Where to write the HTML file (atomically).
    preprocess : bool
        Passed to ``db.search`` (extract the breech face of a raw query).
    title : str, optional
    dpi : int
        Resolution of the thumbnails, dots per inch.

    Returns
    -------
    str
        The HTML text.
    """
    t0 = time.perf_counter()
    if not (isinstance(k, int) and k >= 1):
        raise BallisticsError(f"k must be a positive number of candidates, got {k!r}.")
    if isinstance(db, (str, os.PathLike)):
        from ..index import CaseDatabase
        db = CaseDatabase(db)
    q = load_scan(query, "query scan")
    if hits is None:
        hits = db.search(q, k=k, preprocess=preprocess)
    q_proc = _query_processed(db, q, preprocess)
    ttl = title or f"Database search: {q.name}"
    body = [f"<h1>{esc(ttl)}</h1><p class='meta'>Date: {esc(utc_now())} &middot; ballistics (openbreech) version "
            f"{esc(__version__)} &middot; {len(hits)} candidates</p>", _NOT_IDENTIFICATIONS]
    fig = new_figure((10, 4.6))
    axs = fig.subplots(1, 2)
    lims = common_limits(q_proc)
    scan(q_proc, ax=axs[0], vmin=lims[0], vmax=lims[1])
    virtual_light(q_proc, ax=axs[1])
    body.append("<h2>Query</h2>" + figure_html(fig, "query", "The query surface: heights (um) and virtual light.",
                                               dpi))
    body.append("<h2>Candidate list</h2>" + _candidates(db, q_proc, hits, dpi))
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


def _candidates(db: Any, q_proc: Scan, hits: Sequence[Any], dpi: int) -> str:
    rows = ["<table><tr><th>rank</th><th>scan</th><th>case</th><th>firearm</th>"
            "<th>signature similarity (-1..1)</th><th>CMC count</th><th>comparison score</th>"
            "<th>rotation (deg)</th><th>query (left) and candidate aligned to it (right), "
            "congruent cells in green</th></tr>"]
    for h in hits:
        hd = _as_hit(h)
        cmpd = hd.get("comparison") or {}
        if cmpd and "error" not in cmpd:
            try:
                thumb = _thumb(q_proc, db.load_scan(hd["scan_id"], "breech_face"), cmpd, dpi)
            except BallisticsError as exc:  # a missing thumbnail must not lose the list
                log.warning("no thumbnail for %s: %s", hd.get("scan_id"), exc)
                thumb = f"(no thumbnail: {esc(exc)})"
        elif cmpd:
            thumb = f"(comparison failed: {esc(cmpd['error'])})"
        else:
            thumb = "(not re-ranked: signature retrieval only)"
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in (
            esc(hd.get("rank")), esc(hd.get("scan_id")), esc(hd.get("case_id")), esc(hd.get("firearm_id") or "n/a"),
            esc(fmt(hd.get("retrieval_score"))), esc(fmt(hd.get("cmc_count"))), esc(fmt(hd.get("score"))),
            esc(fmt(cmpd.get("rotation_deg"))), f"<span class='thumbs'>{thumb}</span>")) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


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
    return f'<img style="width:420px" alt="candidate" src="{png_data_uri(fig, dpi)}">'
