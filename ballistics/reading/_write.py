"""Writing x3p files: ``write_x3p`` (atomic, durable) and the x3pio call behind it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._io import atomic_open
from ..errors import ParameterError
from ..scan import Scan
from ._provenance import join_instrument
from ._record import make_comment

__all__ = ["write_x3p", "write_x3p_file"]


def write_x3p(scan: Scan, path: str | os.PathLike[str], *, dtype: str = "float64") -> Path:
    """Write a scan to an ISO 25178-72 x3p file, atomically and durably.

    Heights are written in metres with NaN for missing points; identifiers, the region
    geometry and the whole provenance (the source's writer record included) are kept in
    ``Record2/Comment`` as JSON. :func:`read_scan` restores the history, the repairs,
    the writer and the region from it; identifiers and the kind it records are kept
    only as unverified claims (pass them to ``read_scan``), and the handedness hint is
    recomputed from the writer. The file is written to a temporary file beside
    ``path``, fsync-ed and renamed (:func:`ballistics._io.atomic_open`), so an existing
    file is never left half-written; the process umask is never changed.

    Parameters
    ----------
    scan : Scan
        The scan to store.
    path : str or path-like
        Destination, conventionally ending in ``.x3p``.
    dtype : {"float64", "float32"}
        Storage type of the heights; float64 (default) round-trips exactly.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if dtype not in ("float64", "float32"):
        raise ParameterError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    p = Path(path)
    comment = make_comment(scan)
    with atomic_open(p) as fh:
        write_x3p_file(scan.data, scan.spacing, scan.metadata, comment, fh, dtype, writer=scan.provenance.writer)
    return p


def write_x3p_file(data: np.ndarray, spacing: tuple[float, float], metadata: dict[str, Any],
                   comment: str, fh: BinaryIO, dtype: str = "float64",
                   writer: dict[str, Any] | None = None) -> None:
    """Write heights (metres, NaN missing) with spacing ``(dy, dx)`` in metres to ``fh``.

    ``Record2`` names the creator, the instrument (manufacturer and model kept apart
    when ``writer`` knows them) and its calibration date as the scan's ``metadata`` and
    ``writer`` give them; its Date is the time of writing and its ProbingSystem says
    the surface was written by this library (Type ``Software``). The source's own
    writer record travels in full in the JSON of ``comment``.
    """
    import datetime as _dt

    import x3pio

    from .._version import __version__

    w = writer or {}
    z_type = {"float64": x3pio.DataType.FLOAT64, "float32": x3pio.DataType.FLOAT32}[dtype]
    surface = x3pio.Surface.from_array(np.asarray(data, dtype=np.float64), x_scale=float(spacing[1]),
                                       y_scale=float(spacing[0]), z_type=z_type)
    instrument = str(metadata.get("instrument") or w.get("instrument") or "")
    man = str(w.get("instrument_manufacturer") or "")
    mod = str(w.get("instrument_model") or "")
    if join_instrument(man, mod) != (instrument or None):  # the metadata was edited: it wins
        man, mod = instrument, ""
    cal = None
    cal_text = str(metadata.get("calibration_date") or w.get("calibration_date") or "")
    if cal_text:
        try:
            cal = _dt.datetime.fromisoformat(cal_text.replace("Z", "+00:00"))
        except ValueError:
            cal = None
    surface.metadata = x3pio.Metadata(
        date=_dt.datetime.now(_dt.timezone.utc),
        creator=str(metadata.get("creator") or w.get("creator") or "ballistics"),
        instrument=x3pio.Instrument(manufacturer=man or "ballistics", model=mod or man or "ballistics",
                                    serial=str(metadata.get("instrument_serial") or ""),
                                    version=str(metadata.get("instrument_version") or __version__)),
        calibration_date=cal,
        probing_system=x3pio.ProbingSystem(type=x3pio.ProbingType.SOFTWARE,
                                           identification=f"ballistics {__version__}"),
        comment=comment,
    )
    surface.save(fh)
