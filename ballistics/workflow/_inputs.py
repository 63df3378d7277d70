"""The inputs of a validation study: the labelled table, its design, the scans to compare."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..calibration import scan_domain
from ..errors import CalibrationError, ParameterError, ScanReadError

__all__ = ["read_table", "check_design", "prepare_inputs"]

log = logging.getLogger(__name__)


def read_table(table: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Read a CSV of ``file,firearm`` rows (extra columns ignored) into absolute paths.

    Parameters
    ----------
    table : path
        CSV with a header holding ``file`` and ``firearm`` columns.
    folder : path, optional
        Where relative file names are (default: the CSV's folder).

    Returns
    -------
    list of dict
        ``{"file": absolute path, "firearm": str}`` in table order.
    """
    p = Path(table)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ParameterError(f"table {p} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read table {p}: {exc}") from exc
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise ParameterError(f"table {p} holds no rows (expected a header 'file,firearm' and one row per scan)")
    cols = {c.strip().lower(): c for c in rows[0].keys() if c}
    if "file" not in cols or "firearm" not in cols:
        raise ParameterError(f"table {p} needs columns 'file' and 'firearm', got {list(rows[0].keys())}")
    base = Path(folder) if folder is not None else p.parent
    out = []
    seen = set()
    for k, r in enumerate(rows, start=2):
        f = (r[cols["file"]] or "").strip()
        fa = (r[cols["firearm"]] or "").strip()
        if not f or not fa:
            raise ParameterError(f"{p}, line {k}: empty file or firearm")
        path = Path(f) if Path(f).is_absolute() else base / f
        if not path.exists():
            raise ScanReadError(f"{p}, line {k}: scan file {path} does not exist (relative names are read "
                                f"from {base}; pass folder= / --folder to change that)")
        if str(path.resolve()) in seen:
            raise ParameterError(f"{p}, line {k}: {path} is listed twice")
        seen.add(str(path.resolve()))
        out.append({"file": str(path), "firearm": fa})
    return out


def check_design(items: Sequence[dict[str, str]]) -> None:
    """Refuse a design in which no firearm can be left out with both kinds of pairs remaining."""
    per = Counter(it["firearm"] for it in items)
    repeated = [f for f, n in per.items() if n >= 2]
    if len(per) < 3 or len(repeated) < 2:
        raise CalibrationError(
            f"a validation needs scans of at least 3 firearms, at least 2 of them with 2 or more scans "
            f"(got {len(per)} firearms, {len(repeated)} with repeats: {dict(per)}); otherwise no firearm can be "
            "left out with both kinds of pairs remaining to fit on")


def prepare_inputs(items: Sequence[dict[str, str]], extract: bool | None) -> tuple[list[Any], list[dict[str, Any]]]:
    """What to compare and each scan's domain facts.

    Parameters
    ----------
    items : sequence of dict
        :func:`read_table` rows.
    extract : bool or None
        Extract breech faces first (None: only scans that look raw).

    Returns
    -------
    (list, list of dict)
        Paths of extracted surfaces as they are, or the extracted Scans of raw ones; and
        :func:`ballistics.calibration.scan_domain` of every scan compared.
    """
    from ..features import extract_breech_face, looks_raw
    from ..reading import read_scan

    out: list[Any] = []
    domains: list[dict[str, Any]] = []
    for it in items:
        scan = read_scan(it["file"])
        if looks_raw(scan) if extract is None else extract:
            log.info("extracting the breech face of %s", it["file"])
            scan = extract_breech_face(scan)
            out.append(scan)
        else:
            out.append(it["file"])
        domains.append(scan_domain(scan))
    return out, domains
