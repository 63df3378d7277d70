"""HTML building blocks of the reports: page, tables, embedded figures, atomic writing.

Reports are one self-contained file: inline style, figures embedded as base64 PNG,
nothing loaded from the network, every value escaped.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._json import jsonable as _jsonable
from .._version import __version__
from ..errors import BallisticsError
from ..scan import Scan
from ._figures import figure_to_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["esc", "fmt", "table", "figure_html", "png_data_uri", "page", "utc_now", "inputs_table",
           "write_report"]

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
.applicability{background:#eef4fb;border:1px solid #0072B2;border-left:6px solid #0072B2;padding:.2em 1em;margin:1em 0}
.hint{color:#8a3c00}
.alert{background:#fde8e4;border:3px solid #D55E00;border-left-width:10px;padding:.6em 1em;margin:1em 0;
font-size:1.05em}.alert b{color:#8a2a00}
.lrbox{background:#eef7f1;border-left:5px solid #009E73;padding:.4em 1em;margin:.6em 0}
.lrbox .verbal{font-size:1.08em}
.calib{display:flex;flex-wrap:wrap;gap:.8em}.calib figure{width:360px;margin:.3em 0}
.calib figcaption{font-size:.82em}
table.kv td:first-child{min-width:14em}table.kv{max-width:100%}
.meta{color:#444;font-size:.9em}.thumbs img{width:210px;border:1px solid #ccc}
footer{margin-top:2em;color:#555;font-size:.85em}
"""

_HEX = re.compile(r"[0-9a-f]{32,}")


def esc(x: Any) -> str:
    """HTML-escaped text of ``x``."""
    return html.escape(str(x))


def fmt(v: Any) -> str:
    """Display text of a value: 4 significant digits, ``n/a`` for None/NaN, yes/no for booleans.

    Examples
    --------
    >>> fmt(3.14159), fmt(None), fmt(float("nan")), fmt(True), fmt([1, 2.5])
    ('3.142', 'n/a', 'n/a', 'yes', '1, 2.5')
    """
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}" if np.isfinite(v) else "n/a"
    if v is None:
        return "n/a"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(_jsonable(v), default=str)
    return str(v)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """An HTML table; numbers right-aligned, checksums and long values in code style."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        cells = []
        for v in r:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            txt = fmt(v)
            if _HEX.fullmatch(txt) or len(txt) > 60:
                cells.append(f"<td><code>{esc(txt)}</code></td>")  # checksums, long values: wrap anywhere
            else:
                cls = ' class="num"' if num else ""
                cells.append(f"<td{cls}>{esc(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def png_data_uri(fig: Figure, dpi: int) -> str:
    """``data:image/png;base64,...`` of a figure (rendered, then closed if pyplot has it)."""
    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi=dpi)).decode("ascii")


def figure_html(fig: Figure, alt: str, caption: str, dpi: int = 100) -> str:
    """A ``<figure>`` with the figure embedded; ``caption`` is HTML (escape it first)."""
    return (f'<figure><img alt="{esc(alt)}" src="{png_data_uri(fig, dpi)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def utc_now() -> str:
    """The current time, ``YYYY-MM-DD HH:MM:SS UTC``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def page(title: str, body: Sequence[str]) -> str:
    """The whole HTML document: head with inline style, ``body``, footer with versions."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"ballistics {__version__}\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + f"<footer>Generated by ballistics (openbreech) {__version__} on {utc_now()}; Python "
              f"{platform.python_version()}, NumPy {np.__version__}. This file is self-contained: "
              "images are embedded, nothing is loaded from the network.</footer></body></html>")


def inputs_table(scans: Sequence[Scan], cmp_inputs: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Provenance of the input scans: files, SHA-256, surface checksums, steps, repairs."""
    rows = []
    for s in scans:
        rows.append([s.name, s.provenance.source or "(in memory)", s.provenance.sha256 or "n/a",
                     s.checksum, f"{s.shape[0]} x {s.shape[1]}",
                     f"{s.spacing[1] * 1e6:.3g} um", f"{100 * s.missing_fraction:.1f} %",
                     "; ".join(st.get("step", "?") for st in s.provenance.steps) or "none",
                     "; ".join(s.provenance.fixes) or "none"])
    out = table(rows, ["scan", "file", "file SHA-256", "surface checksum (SHA-256 of heights)",
                       "pixels", "pixel size", "not measured", "processing steps", "reader repairs"])
    if cmp_inputs:
        out += "<p>Checksums recorded by the comparison:</p>" + table(
            [[i.get("name"), i.get("sha256"), i.get("checksum")] for i in cmp_inputs],
            ["input", "file SHA-256", "surface checksum"])
    return out


def write_report(output: str | os.PathLike[str], text: str) -> Path:
    """Write the report atomically and durably (fsync'd; the old file stays on failure)."""
    from .._io import atomic_write_bytes

    try:
        return atomic_write_bytes(output, text.encode("utf-8"))
    except OSError as exc:
        raise BallisticsError(f"Cannot write the report to {output}: {exc}") from exc
