"""The shipped LR systems, one per instrument family, and choosing one for a comparison.

A shipped system is a starting point valid only for its declared domain
(:class:`~ballistics.calibration.Domain`).  ``lr_system="default"`` picks the shipped
system of the comparison's instrument family; with none for that family, or with
scans of two families, there is no LR.  A lab calibrates on its own data with
``ballistics validate labelled.csv -o study/`` and passes
``lr_system="study/lr_system.json"``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CalibrationError, ParameterError
from ._model import LRSystem
from ._storage import load_system

__all__ = ["DATA_DIR", "DEFAULT_SYSTEM", "list_systems", "get_system", "system_for_family", "evaluate_comparison",
           "CALIBRATE_HINT"]

#: Folder of the LR systems shipped with the package.
DATA_DIR = Path(__file__).parent / "data"
#: Name of the shipped system that ``get_system("default")`` returns (confocal scans).
DEFAULT_SYSTEM = "learned-confocal-v1"
#: How a lab gets a system for its own instrument and settings.
CALIBRATE_HINT = ("calibrate on your own labelled scans: `ballistics validate labelled.csv -o study/` writes "
                  "study/lr_system.json; then compare(..., lr_system=\"study/lr_system.json\")")


def list_systems() -> list[str]:
    """Names of the LR systems shipped with the package (``get_system(name)``)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.json") if "." not in p.stem)


@functools.lru_cache(maxsize=16)
def _shipped(name: str) -> LRSystem:
    return load_system(DATA_DIR / f"{name}.json")


def get_system(name_or_path: str | os.PathLike = "default") -> LRSystem:
    """A shipped LR system by name, or a lab's own system file by path.

    Parameters
    ----------
    name_or_path : str or path
        ``"default"`` (:data:`DEFAULT_SYSTEM`), the name of a shipped system
        (:func:`list_systems`), or the path of a JSON file written by
        :meth:`LRSystem.save`.

    Returns
    -------
    LRSystem
        Shipped systems are read and verified once per process.
    """
    if isinstance(name_or_path, os.PathLike) or (isinstance(name_or_path, str) and (
            name_or_path.endswith(".json") or os.sep in name_or_path or "/" in name_or_path)):
        return load_system(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ParameterError(f"name_or_path must be a system name or a file path, got {name_or_path!r}")
    name = DEFAULT_SYSTEM if name_or_path == "default" else name_or_path
    if not (DATA_DIR / f"{name}.json").exists():
        raise CalibrationError(f"no shipped LR system named {name!r} (shipped: {', '.join(list_systems()) or 'none'}); "
                               "pass the path of a system file to use a lab's own")
    return _shipped(name)


def system_for_family(family: str) -> LRSystem | None:
    """The shipped system whose domain is the given instrument family, or None.

    Parameters
    ----------
    family : str
        An instrument family (:func:`ballistics.calibration.instrument_family`).

    Returns
    -------
    LRSystem or None
    """
    names = list_systems()
    names.sort(key=lambda n: n != DEFAULT_SYSTEM)
    for n in names:
        s = get_system(n)
        if s.domain is not None and s.domain.instrument_family == family:
            return s
    return None


def _no_lr(reason: str, system: LRSystem | None = None) -> dict[str, Any]:
    return {"llr": None, "lr": None, "interval": None, "in_domain": False, "outside_validation": False,
            "warnings": [reason], "system": system.describe() if system else None, "verbal": None,
            "domain": system.domain.to_dict() if system and system.domain else None,
            "domain_summary": system.domain.summary() if system and system.domain else ""}


def evaluate_comparison(comparison: Any, lr_system: Any = "default", *, scans: Sequence[dict[str, Any]] | None = None,
                        outside_domain: bool | None = None, level: float = 0.95) -> dict[str, Any]:
    """The LR account of a comparison with the system chosen by its domain.

    Parameters
    ----------
    comparison : Comparison or dict
    lr_system : str, path, LRSystem
        ``"default"``: the shipped system of the scans' instrument family (no LR when
        there is none, or when the scans come from two families).  Anything else is an
        explicit choice: it is applied even outside its domain, marked so.
    scans : sequence of dict, optional
        :func:`ballistics.calibration.scan_domain` of both scans.
    outside_domain : bool, optional
        Give an LR outside the domain (default: only for an explicit system).
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        :meth:`LRSystem.evaluate`'s account (``llr`` None when no LR is given, with the
        reason in ``warnings``).
    """
    explicit = not (isinstance(lr_system, str) and lr_system == "default")
    allow = explicit if outside_domain is None else bool(outside_domain)
    if explicit:
        system = lr_system if isinstance(lr_system, LRSystem) else get_system(lr_system)
    else:
        fams = sorted({s.get("family", "unknown") for s in scans or []})
        if len(fams) > 1:
            return _no_lr(f"no LR: the scans come from different instrument families ({' and '.join(fams)}); "
                          "no shipped system is validated for such pairs; " + CALIBRATE_HINT)
        found = system_for_family(fams[0]) if fams else None
        if found is None:
            what = f"{fams[0]} scans" if fams else "scans of unknown instrument"
            if not allow:
                return _no_lr(f"no LR: no shipped LR system is validated for {what}; " + CALIBRATE_HINT)
            found = get_system("default")
        system = found
    ev = system.evaluate(comparison, level, scans=scans, outside_domain=allow)
    if ev.get("llr") is None and not ev.get("in_domain", True):
        ev["warnings"] = list(ev.get("warnings") or []) + [CALIBRATE_HINT]
    return ev
