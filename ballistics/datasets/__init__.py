"""Bundled real sample data: a few Fadul cartridge cases (see ``data/ATTRIBUTION.md``).

>>> from ballistics import datasets
>>> scans = datasets.fadul("processed")     # 6 breech faces, slides 1-3
>>> [s.exhibit_id for s in scans][:2]
['Fadul 1-1', 'Fadul 1-2']
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..reading import read_scan
from ..scan import Scan

__all__ = ["fadul", "fadul_paths", "DATA_DIR", "firearm_of"]

DATA_DIR = Path(__file__).parent / "data"


def firearm_of(name: str) -> str:
    """Firearm (slide) of a Fadul known case from its name: ``"Fadul 2-1"`` -> ``"slide-2"``."""
    stem = Path(name).stem.replace(" processed", "").replace(" raw", "")
    number = stem.split()[-1].split("-")[0]
    return f"slide-{number}"


def fadul_paths(kind: Literal["processed", "raw"] = "processed") -> list[Path]:
    """Paths of the bundled Fadul files of one kind, sorted by name.

    Parameters
    ----------
    kind : {"processed", "raw"}
        ``"processed"``: six breech faces already extracted by cmcR (6.25 um);
        ``"raw"``: three whole-primer scans, downsampled to 6.25 um.
    """
    if kind not in ("processed", "raw"):
        raise ValueError(f"kind must be 'processed' or 'raw', got {kind!r}")
    return sorted(DATA_DIR.glob(f"Fadul * {kind}.x3p"))


def fadul(kind: Literal["processed", "raw"] = "processed") -> list[Scan]:
    """Load the bundled Fadul scans, with ``exhibit_id`` and ``case_id`` set.

    Parameters
    ----------
    kind : {"processed", "raw"}
        See :func:`fadul_paths`.

    Returns
    -------
    list of Scan
        ``exhibit_id`` is e.g. ``"Fadul 1-1"``; ``metadata["firearm"]`` is the slide
        (``"slide-1"``), the ground truth of the study.

    References
    ----------
    Fadul et al. (2011), NIJ report 237960; CSAFE cartridgeCaseScans (CC-BY 4.0).
    """
    out = []
    for p in fadul_paths(kind):
        name = p.stem.replace(f" {kind}", "")
        scan = read_scan(p, exhibit_id=name)
        scan.metadata["firearm"] = firearm_of(name)
        out.append(scan)
    return out
