"""Repairs of the deviations real x3p files carry, each reported as a sentence.

* revision written ``ISO5436-2000`` (no spaces; DFSC / Cadre TopMatch exports);
* a root element other than ``ISO5436_2`` (some writers use their own name);
* lateral increments or heights stored in micrometres where metres are mandated
  (DFSC SR9-J files) -- detected from physically impossible values.

The byte edits of ``main.xml`` are applied before x3pio parses it; the unit repairs
after, on the decoded values.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import ScanFormatError, UnitsError

_REVISION_RE = re.compile(rb"(<(?:\w+:)?Revision>)\s*([^<]*?)\s*(</(?:\w+:)?Revision>)")
_ROOT_RE = re.compile(rb"<(?!\?|!)([\w.-]+:)?([\w.-]+)([\s>/])")


def refuse_dtd(main: bytes, path: str) -> None:
    """Refuse a ``main.xml`` with a DOCTYPE or entities (x3p never needs them)."""
    if b"<!DOCTYPE" in main or b"<!ENTITY" in main:
        raise ScanFormatError(f"{path}: main.xml declares a DOCTYPE or entities, which x3p never needs; "
                              "refusing to parse it (possible XML entity attack).")


def repair_main(main: bytes, fixes: list[str], path: str = "main.xml") -> bytes:
    """Correct known deviations of ``main.xml``; append a sentence per fix."""
    refuse_dtd(main, path)
    m = _REVISION_RE.search(main)
    if m:
        text = m.group(2).decode("utf-8", "replace")
        norm = re.sub(r"\s*[-\u2010-\u2015]\s*", "-", text.strip())
        if norm == "ISO5436-2000" and text.strip() != "ISO5436 - 2000":
            main = main[: m.start(2)] + b"ISO5436 - 2000" + main[m.end(2):]
            fixes.append(f"revision {text.strip()!r} read as 'ISO5436 - 2000' (ISO 25178-72:2017)")
    root = _ROOT_RE.search(main)
    if root and root.group(2) != b"ISO5436_2":
        old = (root.group(1) or b"") + root.group(2)
        name = old.decode("utf-8", "replace")
        if b"Record1" not in main or b"Record3" not in main:
            raise ScanFormatError(f"{path}: main.xml has root element <{name}> and no Record1/Record3: "
                                  "this is not an x3p description.")
        new = (root.group(1) or b"") + b"ISO5436_2"
        main = main[: root.start()] + b"<" + new + main[root.end() - 1:]
        closing = b"</" + old + b">"
        idx = main.rfind(closing)
        if idx >= 0:
            main = main[:idx] + b"</" + new + b">" + main[idx + len(closing):]
        fixes.append(f"root element <{name}> read as <ISO5436_2>")
    return main


def fix_spacing(spacing: tuple[float, float], fixes: list[str], path: str) -> tuple[float, float]:
    """Detect lateral increments stored in micrometres where x3p mandates metres."""
    dy, dx = spacing
    if not (np.isfinite(dy) and np.isfinite(dx)):
        raise UnitsError(f"{path}: lateral increments ({dy:g}, {dx:g}) are not finite numbers; "
                         "fix the file's Record1/Axes increments.")
    if dx > 1e-3 or dy > 1e-3:
        if 1e-3 <= dx <= 1e3 and 1e-3 <= dy <= 1e3:
            fixes.append(f"lateral increments ({dy:g}, {dx:g}) are not plausible in metres; "
                         "read as micrometres and converted to metres")
            dy, dx = dy * 1e-6, dx * 1e-6
        else:
            raise UnitsError(f"{path}: lateral increments ({dy:g}, {dx:g}) are neither metres nor "
                             "micrometres; fix the file's Record1/Axes increments.")
    return dy, dx


def fix_heights(z: np.ndarray, fixes: list[str], path: str) -> np.ndarray:
    """Detect heights stored in micrometres where x3p mandates metres."""
    finite = z[np.isfinite(z)]
    if finite.size:
        with np.errstate(over="ignore", invalid="ignore"):  # damaged files: span may be inf
            lo, hi = np.percentile(finite, [0.5, 99.5])
            span = float(hi - lo) if np.isfinite(lo) and np.isfinite(hi) and hi >= lo else np.inf
        # A cartridge-case primer is a few hundred micrometres deep at most: a central
        # height range above 5 mm cannot be metres, and values between 1e-3 and 1e4 are
        # what micrometres look like.
        if not span <= 5e-3:  # NaN and inf spans are not metres either
            if span < 1e4:
                fixes.append(f"height range {span:g} is not plausible in metres; read as micrometres "
                             "and converted to metres")
                z = z * 1e-6
            else:
                raise UnitsError(f"{path}: height range {span:g} cannot be metres or micrometres; "
                                 "check the z axis of the file.")
    return z
