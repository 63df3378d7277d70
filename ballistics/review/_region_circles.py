"""The circles of found regions, in the raw scan's frame (no plotting here).

:func:`ballistics.find_regions` returns centres and radii in metres measured from the
centre of pixel (0, 0) of the raw scan; an extracted scan's ``region`` dict holds them
in its own (cropped) frame together with where that frame sits on the raw scan.
:func:`region_circles` turns either into one table of circles on the raw scan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import BallisticsError
from ._style import OKABE_ITO

__all__ = ["Circle", "region_circles"]


@dataclasses.dataclass(frozen=True)
class Circle:
    """One circle to draw: centre ``(y, x)`` and radius in metres, colour, line style, label."""

    centre_m: tuple[float, float]
    radius_m: float
    colour: str
    linestyle: str
    label: str


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if callable(getattr(obj, "to_dict", None)):
        return dict(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise BallisticsError(f"Cannot read regions from a {type(obj).__name__}; pass the output of "
                          "ballistics.find_regions(scan), an extracted scan or its region dict.")


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def region_circles(found: Any) -> tuple[tuple[float, float], list[Circle]]:
    """The primer centre and the circles of the regions, on the raw scan.

    Parameters
    ----------
    found : Regions or dict
        Output of :func:`ballistics.find_regions`, or an extracted scan's ``region``
        dict (whose ``source_centre_m`` or ``output_origin_in_source_m`` places it on
        the raw scan).

    Returns
    -------
    centre_m : (float, float)
        Primer centre ``(y, x)`` in metres on the raw scan.
    circles : list of Circle
        Primer edge, firing-pin impression, breech-face outer and inner edges and the
        firing-pin hole, those present.

    Examples
    --------
    >>> c, circles = region_circles({"centre_m": (2e-3, 1e-3), "primer_radius_m": 1.5e-3})
    >>> c, [(x.label, x.radius_m) for x in circles]
    ((0.002, 0.001), [('primer edge', 0.0015)])
    """
    d = _as_dict(found)
    centre = _first(d, "centre_m", "center_m", "source_centre_m")
    if centre is None:
        raise BallisticsError("The regions hold no centre (expected 'centre_m' in metres); "
                              "pass the output of ballistics.find_regions(scan).")
    # an extracted scan's region is in its own frame: shift it onto the raw scan
    off = np.zeros(2)
    if d.get("output_origin_in_source_m") is not None:
        off = np.asarray(d["output_origin_in_source_m"], float)
    elif d.get("source_centre_m") is not None and d.get("centre_m") is not None:
        off = np.asarray(d["source_centre_m"], float) - np.asarray(d["centre_m"], float)
    if d.get("primer_centre_m") is not None:
        centre = d["primer_centre_m"]
    c0 = np.asarray(centre, float) + off
    fp_raw = _first(d, "firing_pin_centre_m")
    fp = np.asarray(fp_raw, float) + off if fp_raw is not None else c0
    hole_raw = _first(d, "hole_centre_m")
    hole = np.asarray(hole_raw, float) + off if hole_raw is not None else None
    specs = [
        (c0, _first(d, "primer_radius_m"), OKABE_ITO["orange"], "--", "primer edge"),
        (fp, _first(d, "firing_pin_radius_m"), OKABE_ITO["sky_blue"], "--", "firing-pin impression"),
        (c0, _first(d, "breech_face_outer_radius_m", "outer_radius_m"), OKABE_ITO["vermillion"], "-",
         "breech face (outer)"),
        (fp, _first(d, "breech_face_inner_radius_m", "inner_radius_m"), OKABE_ITO["reddish_purple"], "-",
         "breech face (inner)"),
        (hole, _first(d, "hole_radius_m"), OKABE_ITO["black"], ":", "firing-pin hole"),
    ]
    circles = [Circle((float(cen[0]), float(cen[1])), float(r), colour, ls, label)
               for cen, r, colour, ls, label in specs if cen is not None and r is not None]
    return (float(c0[0]), float(c0[1])), circles
