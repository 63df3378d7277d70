"""Who wrote a scan file: the writer / converter record and the handedness hint.

Every reader fills ``Provenance.writer`` (a :class:`WriterInfo` dict) from what the file
itself says about its origin:

* x3p: ``Record2`` of ``main.xml`` (Date, Creator, Instrument manufacturer / model /
  serial / version, CalibrationDate, ProbingSystem, Comment), the revision string as
  written, x3ptools' ``Record3/Mask`` background colour, and the zip directory's host
  system and member time stamp (fingerprints of the software that packed the archive);
* al3d: the header's ``Version`` tag and any tag that is not part of the image layout;
* PNG: ``tEXt`` / ``iTXt`` keys (``Software``, ``Author``, ``Creation Time``, ...) and
  the ``tIME`` chunk; TIFF: ``Software``, ``DateTime``, ``Artist``, ``Make``, ``Model``,
  ``ImageDescription``.

:func:`handedness_hint` recognises conversion routes known to produce mirrored
surfaces. There is one today, documented in ``ballistics/reading/README.md``: x3p files whose
``Creator`` reads "Converted from Cadre TMD Format" and whose ``Date`` is 2020-12-27
(the DFSC ``K004*`` conversions). The files do not say they are mirrored; the hint
repeats what is known about the route, it is not a measurement.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

__all__ = ["MARKER", "WriterInfo", "clean_text", "clean_writer", "empty_writer", "handedness_hint",
           "join_instrument", "x3p_writer"]

#: Text in ``Record2/Comment`` after which ``write_x3p`` stores its JSON record.
MARKER = "ballistics-provenance:"

#: Longest text kept from any one field (a Comment may be long; the record stays small).
MAX_FIELD_CHARS = 2000

_CONVERTED_RE = re.compile(r"converted\s+from\s+([^,;.]+?)(?:\s+format)?\s*(?:[,;.]|$)", re.IGNORECASE)


class WriterInfo(TypedDict, total=False):
    """What a file says about the person, instrument and software that produced it.

    The five keys ``format``, ``creator``, ``date``, ``software`` and ``instrument``
    are always present (None when the file does not say); the others only when the
    file holds them. Every value is a string exactly as written in the file (dates are
    not reinterpreted), at most :data:`MAX_FIELD_CHARS` characters.
    """

    format: str
    creator: str | None
    date: str | None
    software: str | None
    instrument: str | None
    instrument_manufacturer: str
    instrument_model: str
    instrument_serial: str
    instrument_version: str
    calibration_date: str
    probing_system: str
    comment: str
    converted_from: str
    revision: str
    mask_background: str
    archive_host: str
    archive_time: str
    format_version: str
    header_tags: str
    modified: str
    title: str
    copyright: str


def empty_writer(fmt: str) -> WriterInfo:
    """A writer record with the always-present keys set to None."""
    return {"format": fmt, "creator": None, "date": None, "software": None, "instrument": None}


def clean_text(v: Any) -> str | None:
    if v is None:
        return None
    s = " ".join(str(v).split())  # one line: newlines and runs of blanks to one space
    if not s:
        return None
    return s if len(s) <= MAX_FIELD_CHARS else s[: MAX_FIELD_CHARS - 1] + "\u2026"


def join_instrument(manufacturer: str | None, model: str | None) -> str | None:
    """``"Manufacturer Model"``; one of them alone if the other is missing or repeats it.

    ``write_x3p`` of ballistics 0.1.0 wrote the joined text into both fields; reading
    such a file must not double it.
    """
    man, mod = clean_text(manufacturer), clean_text(model)
    if man and mod and (mod == man or man.endswith(" " + mod) or mod.startswith(man + " ")):
        return mod if len(mod) >= len(man) else man
    return " ".join(filter(None, [man, mod])) or None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _child(el: Any, *names: str) -> Any:
    for name in names:
        if el is None:
            return None
        el = next((c for c in el if _local(str(c.tag)) == name), None)
    return el


def _child_text(el: Any, *names: str) -> str | None:
    c = _child(el, *names)
    return clean_text(c.text) if c is not None else None


_ZIP_HOSTS = {0: "MS-DOS/Windows", 3: "Unix", 7: "Macintosh", 10: "Windows NTFS", 19: "OS X"}


def x3p_writer(root: Any, infos: list[Any] | None = None, marker: str | None = None) -> WriterInfo:
    """Writer record of an x3p file from its parsed ``main.xml`` and zip directory.

    Parameters
    ----------
    root : xml.etree.ElementTree.Element
        Root element of ``main.xml`` (parsed safely by the caller).
    infos : list of zipfile.ZipInfo, optional
        The archive's directory; its host system and the time stamp of ``main.xml``
        are recorded (``archive_host``, ``archive_time``).
    marker : str, optional
        Text after which a Comment holds a machine record (``write_x3p``'s JSON); only
        the human part before it is kept.

    Returns
    -------
    WriterInfo
    """
    w = empty_writer("x3p")
    r2 = next((el for el in root.iter() if _local(str(el.tag)) == "Record2"), None)
    rev = next((el for el in root.iter() if _local(str(el.tag)) == "Revision"), None)
    if rev is not None and clean_text(rev.text):
        w["revision"] = clean_text(rev.text)  # type: ignore[typeddict-item]
    mask_bg = next((el for el in root.iter() if _local(str(el.tag)) == "Background"), None)
    if mask_bg is not None and clean_text(mask_bg.text):
        w["mask_background"] = clean_text(mask_bg.text)  # type: ignore[typeddict-item]
    if r2 is not None:
        w["date"] = _child_text(r2, "Date")
        w["creator"] = _child_text(r2, "Creator")
        man = _child_text(r2, "Instrument", "Manufacturer")
        mod = _child_text(r2, "Instrument", "Model")
        for key, val in (("instrument_manufacturer", man), ("instrument_model", mod),
                         ("instrument_serial", _child_text(r2, "Instrument", "Serial")),
                         ("instrument_version", _child_text(r2, "Instrument", "Version")),
                         ("calibration_date", _child_text(r2, "CalibrationDate"))):
            if val:
                w[key] = val  # type: ignore[literal-required]
        w["instrument"] = join_instrument(man, mod)
        ptype = _child_text(r2, "ProbingSystem", "Type")
        pid = _child_text(r2, "ProbingSystem", "Identification")
        if ptype or pid:
            w["probing_system"] = ": ".join(filter(None, [ptype, pid]))
        if ptype and ptype.lower() == "software" and pid:
            w["software"] = pid  # ISO 25178-72: a software-generated surface names its software here
        comment = _child_text(r2, "Comment")
        if comment and marker and marker in comment:
            comment = clean_text(comment.split(marker, 1)[0])
        if comment:
            w["comment"] = comment
        for text in (w.get("creator"), w.get("comment")):
            m = _CONVERTED_RE.search(text or "")
            if m:
                w["converted_from"] = m.group(1).strip()
                break
    if infos:
        hosts = {_ZIP_HOSTS.get(i.create_system, f"host {i.create_system}") for i in infos}
        w["archive_host"] = ", ".join(sorted(hosts))
        main = next((i for i in infos if i.filename.rsplit("/", 1)[-1] == "main.xml"), infos[0])
        y, mo, d, h, mi, s = main.date_time
        # 1980-01-01 00:00 (the DOS epoch) and impossible dates mean "no time recorded"
        if 1 <= mo <= 12 and 1 <= d <= 31 and (y, mo, d, h, mi, s) != (1980, 1, 1, 0, 0, 0):
            w["archive_time"] = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    return w


def clean_writer(d: Any) -> WriterInfo | None:
    """A writer record restored from JSON, or None if it is not one.

    Keys must be strings and values strings or None; unknown keys are kept (a newer
    version may add some), oversize values are shortened.
    """
    if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
        return None
    if not all(v is None or isinstance(v, str) for v in d.values()):
        return None
    out: dict[str, Any] = {k: clean_text(v) for k, v in d.items()}
    for key in ("creator", "date", "software", "instrument"):
        out.setdefault(key, None)
    if not out.get("format"):
        return None
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- handedness
#: Conversion routes known to write surfaces mirrored relative to other routes. Each
#: entry: the x3p ``Creator`` (case-insensitive, exact after trimming), the day of the
#: ``Date`` field (``YYYY-MM-DD``), the instrument manufacturer, and the note.
#: Evidence and its limits: ``ballistics/reading/README.md``.
KNOWN_MIRRORED_ROUTES: tuple[dict[str, str], ...] = (
    {
        "creator": "converted from cadre tmd format",
        "day": "2020-12-27",
        "manufacturer": "cadre",
        "route": "Cadre TopMatch TMD -> x3p conversion (Creator 'Converted from Cadre TMD Format')",
        "known": "DFSC K004* files of this conversion are known to be y-flipped (rows reversed) relative "
                 "to other conversions of the same pistols' cases; the file itself does not say so",
    },
)


def handedness_hint(writer: WriterInfo | dict[str, Any] | None) -> str | None:
    """Warn when the writer record matches a conversion route known to mirror surfaces.

    Parameters
    ----------
    writer : WriterInfo or None
        ``Provenance.writer``.

    Returns
    -------
    str or None
        ``"possibly y-flipped: converted by <route> on <date>, ..."``, or None when the
        record matches no known route (which says nothing about the file's handedness).
    """
    if not writer or writer.get("format") != "x3p":
        return None
    creator = (writer.get("creator") or "").strip().lower()
    day = (writer.get("date") or "")[:10]
    man = (writer.get("instrument_manufacturer") or writer.get("instrument") or "").strip().lower()
    for r in KNOWN_MIRRORED_ROUTES:
        if creator == r["creator"] and day == r["day"] and man.startswith(r["manufacturer"]):
            return (f"possibly y-flipped: converted by {r['route']} on {day}; {r['known']}. Compare with "
                    "handedness='both' (the default) or mirror the scan (rows reversed) before "
                    "comparing it with a scan from another route.")
    return None
