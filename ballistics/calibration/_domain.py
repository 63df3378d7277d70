"""The domain of a likelihood-ratio system: the data its validation covers.

An LR system is validated on comparisons of one kind: scans from one instrument family,
at one pixel size, processed one way, compared with one set of parameters.  Outside
that domain its LRs are extrapolations nobody has measured, so a comparison outside it
gets no LR unless one is asked for explicitly.

The instrument family of a scan is read from what its file says: the instrument,
manufacturer, model and probing system in the x3p record (``scan.metadata`` and
``scan.provenance.writer``), and the comment and creator (conversions from Cadre TMD
name the route).

References
----------
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. Forensic Science
International 276, 142-153 (validation covers the conditions of the casework).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._json import canonical_hash

__all__ = ["Domain", "instrument_family", "scan_domain", "FAMILIES", "IGNORED_PARAMS"]

#: Instrument families and the words in a file's metadata that name them (lower case).
FAMILIES: dict[str, tuple[str, ...]] = {
    "topmatch": ("topmatch", "cadre", "gelsight", "tmd format"),
    "confocal": ("nanofocus", "usurf", "confocal", "sensofar", "lext", "dcm 3d", "dcm8"),
    "focus-variation": ("alicona", "infinitefocus", "focus variation", "focus-variation"),
}

#: Comparison parameters that do not change what a score means (threads, derived values).
IGNORED_PARAMS = frozenset({"workers", "pixel_spacing_m", "translation_threshold_m", "preset"})

_META_KEYS = ("instrument", "instrument_manufacturer", "instrument_model", "probing_system", "creator",
              "comment", "converted_from")


def _texts(scan: Any) -> list[str]:
    out: list[str] = []
    prov = getattr(scan, "provenance", None)
    for src in (getattr(scan, "metadata", None) or {}, getattr(prov, "writer", None) or {}):
        for k in _META_KEYS:
            v = src.get(k)
            if isinstance(v, str) and v:
                out.append(v.lower())
    return out


def instrument_family(scan: Any) -> str:
    """The instrument family a scan was measured with, from its file's metadata.

    Parameters
    ----------
    scan : Scan
        Any scan (raw or extracted: extraction keeps the metadata).

    Returns
    -------
    str
        ``"topmatch"`` (Cadre TopMatch / GelSight photometric stereo), ``"confocal"``
        (NanoFocus µsurf and other confocal microscopes), ``"focus-variation"``
        (Alicona), ``"optical-2d"`` (intensity images) or ``"unknown"`` when the file
        names no known instrument.
    """
    if getattr(scan, "kind", "height") == "intensity":
        return "optical-2d"
    texts = _texts(scan)
    for fam, words in FAMILIES.items():
        if any(w in t for t in texts for w in words):
            return fam
    return "unknown"


def _bandpass(scan: Any) -> list[float] | None:
    for st in getattr(getattr(scan, "provenance", None), "steps", None) or []:
        if isinstance(st, dict) and st.get("step") == "extract_breech_face" and st.get("bandpass_m"):
            return [float(v) for v in st["bandpass_m"]]
    return None


def scan_domain(scan: Any) -> dict[str, Any]:
    """What a scan brings to a domain check: family, pixel size, band-pass, hints.

    Parameters
    ----------
    scan : Scan

    Returns
    -------
    dict
        ``name``, ``family`` (:func:`instrument_family`), ``instrument`` (as the file
        names it), ``pixel_size_m`` (mean of the two spacings, metres),
        ``bandpass_m`` (the extraction's Gaussian band-pass, metres, or None when the
        file was processed elsewhere) and ``hints`` (provenance warnings, e.g. a
        conversion route known to mirror surfaces).
    """
    meta = getattr(scan, "metadata", None) or {}
    prov = getattr(scan, "provenance", None)
    hints = [str(prov.handedness_hint)] if prov is not None and getattr(prov, "handedness_hint", None) else []
    spacing = getattr(scan, "spacing", (math.nan, math.nan))
    return {"name": getattr(scan, "name", ""), "family": instrument_family(scan),
            "instrument": meta.get("instrument") or (getattr(prov, "writer", None) or {}).get("instrument"),
            "pixel_size_m": float(sum(spacing) / 2.0), "bandpass_m": _bandpass(scan), "hints": hints}


@dataclass(frozen=True)
class Domain:
    """The comparisons an LR system's validation covers.

    Attributes
    ----------
    instrument_family : str
        One family of :func:`instrument_family` (``"confocal"``, ``"topmatch"``...).
    pixel_size_m : (float, float)
        Range of pixel sizes (metres) of the comparisons it was fitted on.
    processing : dict
        How the surfaces were processed: ``bandpass_m`` (Gaussian band-pass cut-offs,
        metres, or None for files processed elsewhere), ``resampled_m`` and a text
        ``description``.
    compare_params : dict
        The decisive comparison parameters (:class:`~ballistics.comparison.CompareParams`
        as a dict, plus ``method``); thread counts and derived values are left out.
    compare_params_sha256 : str
        :func:`ballistics._json.canonical_hash` of ``compare_params``.
    description : str
        One sentence for reports.
    """

    instrument_family: str
    pixel_size_m: tuple[float, float]
    processing: dict[str, Any] = field(default_factory=dict)
    compare_params: dict[str, Any] = field(default_factory=dict)
    compare_params_sha256: str = ""
    description: str = ""

    @classmethod
    def make(cls, instrument_family: str, pixel_size_m: Sequence[float], compare_params: dict[str, Any],
             processing: dict[str, Any] | None = None, description: str = "") -> Domain:
        """A domain with the comparison parameters' hash computed.

        Parameters
        ----------
        instrument_family : str
        pixel_size_m : (float, float)
            Smallest and largest pixel size, metres.
        compare_params : dict
            The comparison parameters (``Comparison.params`` or ``CompareParams.to_dict()``).
        processing : dict, optional
        description : str, optional

        Returns
        -------
        Domain
        """
        cp = {k: v for k, v in dict(compare_params).items() if k not in IGNORED_PARAMS}
        lo, hi = (float(v) for v in pixel_size_m)
        return cls(str(instrument_family), (lo, hi), dict(processing or {}), cp, canonical_hash(cp), description)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"instrument_family": self.instrument_family, "pixel_size_m": list(self.pixel_size_m),
                "processing": self.processing, "compare_params": self.compare_params,
                "compare_params_sha256": self.compare_params_sha256, "description": self.description}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["instrument_family"]), (float(d["pixel_size_m"][0]), float(d["pixel_size_m"][1])),
                   dict(d.get("processing") or {}), dict(d.get("compare_params") or {}),
                   str(d.get("compare_params_sha256", "")), str(d.get("description", "")))

    def summary(self) -> str:
        """One line for reports: family, pixel sizes, processing, parameters."""
        lo, hi = (v * 1e6 for v in self.pixel_size_m)
        px = f"{lo:.2f} µm" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f} µm"
        bp = self.processing.get("bandpass_m")
        proc = (f"band-pass {bp[0] * 1e6:g}–{bp[1] * 1e6:g} µm" if bp else
                self.processing.get("description", "processing as recorded"))
        return (f"{self.instrument_family} scans, pixel size {px}, {proc}, "
                f"comparison method {self.compare_params.get('method', '?')!r} with the default parameters "
                f"(hash {self.compare_params_sha256[:12]})")

    def check(self, scans: Sequence[dict[str, Any]] | None, params: dict[str, Any] | None) -> list[str]:
        """Reasons a comparison lies outside this domain (empty list: inside).

        Parameters
        ----------
        scans : sequence of dict or None
            :func:`scan_domain` of both scans; None when unknown (then the instrument
            family cannot be checked and that is itself a reason).
        params : dict or None
            The comparison's parameters (``Comparison.params``).

        Returns
        -------
        list of str
            Plain-language reasons.
        """
        out: list[str] = []
        if not scans:
            out.append("the instrument of the scans is unknown (the comparison was made without them), so the "
                       f"system's domain ({self.instrument_family} scans) cannot be checked")
        else:
            fams = sorted({s.get("family", "unknown") for s in scans})
            if fams != [self.instrument_family]:
                out.append(f"the scans come from {' and '.join(fams)} instruments; the system was validated on "
                           f"{self.instrument_family} scans only")
        out.extend(self._check_params(params or {}))
        return out

    def _check_params(self, params: dict[str, Any]) -> list[str]:
        out: list[str] = []
        px = params.get("pixel_spacing_m")
        if px:
            p = float(sum(px) / len(px)) if isinstance(px, (list, tuple)) else float(px)
            lo, hi = self.pixel_size_m
            if not (lo * 0.99 <= p <= hi * 1.01):
                out.append(f"pixel size {p * 1e6:.3g} µm is outside the system's {lo * 1e6:.3g}–{hi * 1e6:.3g} µm")
        diff = sorted(k for k, v in self.compare_params.items() if k in params and _norm(params[k]) != _norm(v))
        if diff:
            out.append("the comparison's parameters differ from those the system was validated with: "
                       + ", ".join(f"{k} = {params.get(k)!r} (validated: {self.compare_params.get(k)!r})"
                                   for k in diff[:6]) + ("" if len(diff) <= 6 else f" and {len(diff) - 6} more"))
        return out

    def check_processing(self, scans: Sequence[dict[str, Any]]) -> list[str]:
        """Reasons from the scans' processing (a band-pass other than the domain's)."""
        want = self.processing.get("bandpass_m")
        out = []
        for s in scans:
            got = s.get("bandpass_m")
            if want and got and any(abs(a - b) > 1e-3 * abs(b) for a, b in zip(got, want)):
                out.append(f"{s.get('name')}: band-pass {got[0] * 1e6:g}–{got[1] * 1e6:g} µm, the system's "
                           f"{want[0] * 1e6:g}–{want[1] * 1e6:g} µm")
        return out


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
