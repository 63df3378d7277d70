"""The scan model: a surface (heights in metres) or an optical image, with provenance.

A :class:`Scan` is immutable in spirit: every processing step returns a new scan
whose :class:`Provenance` records the step and its parameters, so any result can be
traced back to the checksum of the file it came from.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._json import jsonable
from ._version import __version__
from .errors import EmptyScanError, ScanValidationError, UnitsError
from .limits import current_limits

__all__ = ["Scan", "Provenance", "array_checksum"]

Kind = Literal["height", "intensity"]

#: Plausible lateral pixel spacing of a cartridge-case scan, in metres (10 nm .. 1 mm).
SPACING_RANGE_M = (1e-8, 1e-3)


def array_checksum(data: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes (NaN patterns included).

    Parameters
    ----------
    data : numpy.ndarray
        Any array.

    Returns
    -------
    str
        Hex digest; identical arrays give identical digests on every platform.
    """
    a = np.ascontiguousarray(data)
    h = hashlib.sha256()
    h.update(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class Provenance:
    """Where a scan came from and everything that was done to it.

    Attributes
    ----------
    source : str
        File name (or a description such as ``"synthetic"``) the scan was read from.
    sha256 : str
        SHA-256 of the source file's bytes (empty for in-memory scans).
    reader : str
        Reader that produced the scan, e.g. ``"x3pio 2.0.0"``.
    fixes : list of str
        Every repair the reader applied to a non-conforming file, in plain words.
    steps : list of dict
        Processing history: one dict per step with its ``"step"`` name, the parameters
        and the library version.
    library_version : str
        Version of this library that made the record.
    writer : dict
        Who produced the data, as the source file says (a
        :class:`ballistics.reading.WriterInfo`): always ``"format"``, ``"creator"``,
        ``"date"``, ``"software"`` and ``"instrument"`` (None when the file does not
        say), plus whatever else the file records (``"calibration_date"``,
        ``"probing_system"``, ``"comment"``, ``"converted_from"``, ...). For a file
        written by :func:`ballistics.write_x3p` it is the writer of the file the data was
        first read from, so it survives the round trip. Empty for in-memory scans.
    handedness_hint : str or None
        A warning when the writer matches a conversion route known to write mirrored
        (y-flipped) surfaces, e.g. ``"possibly y-flipped: converted by ... on
        2020-12-27; ..."``; None otherwise, which does not prove the handedness.
    """

    source: str = ""
    sha256: str = ""
    reader: str = ""
    fixes: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    library_version: str = __version__
    writer: dict[str, Any] = field(default_factory=dict)
    handedness_hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "reader": self.reader,
            "fixes": list(self.fixes),
            "steps": [dict(s) for s in self.steps],
            "library_version": self.library_version,
            "writer": dict(self.writer),
            "handedness_hint": self.handedness_hint,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=d.get("source", ""),
            sha256=d.get("sha256", ""),
            reader=d.get("reader", ""),
            fixes=list(d.get("fixes", [])),
            steps=[dict(s) for s in d.get("steps", [])],
            library_version=d.get("library_version", __version__),
            writer=dict(d.get("writer") or {}),
            handedness_hint=d.get("handedness_hint"),
        )


@dataclass(eq=False)  # arrays make field-wise equality meaningless; compare checksums instead
class Scan:
    """A cartridge-case scan: a height map in metres, or a 2-D optical image.

    Parameters
    ----------
    data : numpy.ndarray
        2-D float64 array, rows along y and columns along x. Heights in **metres**
        (``kind == "height"``) or intensity in arbitrary units (``kind == "intensity"``);
        NaN where not measured.
    spacing : tuple of float
        Pixel spacing ``(dy, dx)`` in **metres**.
    kind : {"height", "intensity"}
        What ``data`` holds.
    metadata : dict
        Instrument, creator, date and comment as found in the file.
    case_id, exhibit_id : str or None
        Identifiers of the case and exhibit, when known.
    provenance : Provenance
        Source checksum, reader, repairs and processing steps.
    region : dict or None
        Geometry of the extracted region (centre and radii in metres) when the scan is
        the output of :func:`ballistics.extract_breech_face` or
        :func:`ballistics.extract_firing_pin`.
    """

    data: np.ndarray
    spacing: tuple[float, float]
    kind: Kind = "height"
    metadata: dict[str, Any] = field(default_factory=dict)
    case_id: str | None = None
    exhibit_id: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    region: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data, dtype=np.float64)
        if data.ndim != 2:
            raise EmptyScanError(f"A scan must be a 2-D array, got shape {data.shape}.")
        if data.size == 0:
            raise EmptyScanError("A scan must hold at least one pixel; got an empty array.")
        data = np.where(np.isfinite(data), data, np.nan)
        self.data = data
        if self.kind not in ("height", "intensity"):
            raise ValueError(f"kind must be 'height' or 'intensity', got {self.kind!r}")
        try:
            dy, dx = (float(v) for v in self.spacing)
        except (TypeError, ValueError) as exc:
            raise UnitsError(f"spacing must be (dy, dx) in metres, got {self.spacing!r}") from exc
        for v in (dy, dx):
            if not (np.isfinite(v) and SPACING_RANGE_M[0] <= v <= SPACING_RANGE_M[1]):
                raise UnitsError(
                    f"Pixel spacing {v!r} m is outside the plausible range "
                    f"{SPACING_RANGE_M[0]:g}..{SPACING_RANGE_M[1]:g} m; give spacing in metres."
                )
        self.spacing = (dy, dx)

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` in pixels."""
        return self.data.shape

    @property
    def mask(self) -> np.ndarray:
        """Boolean array, True where the scan holds a measured value."""
        return np.isfinite(self.data)

    @property
    def missing_fraction(self) -> float:
        """Fraction of pixels that are not measured (0..1)."""
        return float(1.0 - self.mask.mean())

    @property
    def extent(self) -> tuple[float, float]:
        """Physical size ``(height, width)`` in metres."""
        return (self.shape[0] * self.spacing[0], self.shape[1] * self.spacing[1])

    @property
    def checksum(self) -> str:
        """SHA-256 of the data array (identifies derived surfaces too)."""
        return array_checksum(self.data)

    @property
    def name(self) -> str:
        """A short human name: exhibit id, else the source file's name."""
        if self.exhibit_id:
            return str(self.exhibit_id)
        src = self.provenance.source
        return src.rsplit("/", 1)[-1] if src else "scan"

    # ------------------------------------------------------------------ invariants
    def validate(self, max_abs_height_m: float | None = None) -> Scan:
        """Check the invariants of the scan model; every reader calls this.

        Checked: ``data`` is a 2-D, non-empty float64 array whose values are finite or
        NaN (never infinite); ``spacing`` is two finite numbers in the plausible range
        :data:`SPACING_RANGE_M` (metres); ``kind`` is known; heights lie within
        ``+/- max_abs_height_m``; the validity mask has the data's shape and marks
        exactly the finite values; the region geometry, if any, holds finite numbers; the
        source checksum, if any, is a SHA-256 hex digest.

        Parameters
        ----------
        max_abs_height_m : float, optional
            Largest height magnitude accepted, metres. Default: the readers' current
            limit, ``ballistics.reading.LIMITS.max_abs_height_m`` (0.1 m).

        Returns
        -------
        Scan
            ``self``, so that ``scan = read(...).validate()`` chains.

        Raises
        ------
        ScanValidationError
            An invariant is broken; the message names the scan and the invariant.
        """
        who = self.provenance.source or self.name
        if max_abs_height_m is None:
            max_abs_height_m = current_limits().max_abs_height_m

        def fail(msg: str) -> ScanValidationError:
            return ScanValidationError(f"{who}: {msg}")

        d = self.data
        if not isinstance(d, np.ndarray) or d.dtype != np.float64 or d.ndim != 2 or d.size == 0:
            raise fail(f"data must be a non-empty 2-D float64 array, got "
                       f"{type(d).__name__} {getattr(d, 'dtype', '?')} {getattr(d, 'shape', '?')}.")
        if np.isinf(d).any():
            raise fail("data holds infinite values; missing points must be NaN.")
        if self.kind not in ("height", "intensity"):
            raise fail(f"kind must be 'height' or 'intensity', got {self.kind!r}.")
        sp = self.spacing
        if (not isinstance(sp, tuple) or len(sp) != 2
                or not all(isinstance(v, float) and np.isfinite(v)
                           and SPACING_RANGE_M[0] <= v <= SPACING_RANGE_M[1] for v in sp)):
            raise fail(f"spacing must be (dy, dx) in metres within {SPACING_RANGE_M[0]:g}.."
                       f"{SPACING_RANGE_M[1]:g}, got {sp!r}.")
        mask = self.mask
        if mask.shape != d.shape or mask.dtype != bool:
            raise fail(f"the validity mask has shape {mask.shape}, the data {d.shape}.")
        if mask.any() and self.kind == "height":
            peak = float(np.nanmax(np.abs(d)))
            if not peak <= max_abs_height_m:
                raise fail(f"a height of {peak:g} m exceeds the physical bound of {max_abs_height_m:g} m "
                           "(ballistics.reading.LIMITS.max_abs_height_m); the heights are not metres "
                           "or the file is damaged.")
        if self.region is not None:
            nums = [v for v in self.region.values() if isinstance(v, (int, float, np.number))
                    and not isinstance(v, bool)]
            if not all(np.isfinite(float(v)) for v in nums):
                raise fail(f"the region geometry holds non-finite numbers: {self.region!r}.")
        sha = self.provenance.sha256
        if sha and not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise fail(f"the source checksum {sha!r} is not a SHA-256 hex digest.")
        return self

    # ------------------------------------------------------------------ helpers
    def require_valid(self, min_fraction: float = 0.0, what: str = "scan") -> None:
        """Raise :class:`EmptyScanError` if the scan has no (or too little) valid data."""
        n = int(self.mask.sum())
        if n == 0:
            raise EmptyScanError(
                f"The {what} {self.name!r} holds no measured values (all NaN); "
                "check the file or the region that was cut from it."
            )
        if n < min_fraction * self.data.size:
            raise EmptyScanError(
                f"The {what} {self.name!r} holds only {n} valid pixels "
                f"({100 * n / self.data.size:.2f} %), fewer than the {100 * min_fraction:.1f} % needed."
            )

    def derive(
        self,
        data: np.ndarray,
        step: str,
        params: dict[str, Any] | None = None,
        spacing: tuple[float, float] | None = None,
        region: dict[str, Any] | None = None,
        kind: Kind | None = None,
    ) -> Scan:
        """New scan from processed data, with the step appended to the provenance.

        Parameters
        ----------
        data : numpy.ndarray
            The processed array.
        step : str
            Name of the processing step, e.g. ``"extract_breech_face"``.
        params : dict, optional
            Every parameter of the step (recorded for reproducibility).
        spacing : tuple of float, optional
            New ``(dy, dx)`` in metres if the step resampled.
        region : dict, optional
            Region geometry (metres) if the step located one.
        kind : str, optional
            New kind, if it changed.
        """
        prov = Provenance.from_dict(self.provenance.to_dict())
        entry = {"step": step, "library_version": __version__,
                 "input_checksum": self.checksum,
                 "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        entry.update(params or {})
        prov.steps.append(jsonable(entry))
        return dataclasses.replace(
            self,
            data=data,
            spacing=spacing if spacing is not None else self.spacing,
            provenance=prov,
            region=region if region is not None else self.region,
            kind=kind if kind is not None else self.kind,
            metadata=dict(self.metadata),
        )

    def summary(self) -> dict[str, Any]:
        """Plain-dictionary description (used by ``ballistics info``)."""
        valid = self.data[self.mask]
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "spacing_m": list(self.spacing),
            "extent_m": list(self.extent),
            "missing_fraction": round(self.missing_fraction, 6),
            "metadata": jsonable(self.metadata),
            "case_id": self.case_id,
            "exhibit_id": self.exhibit_id,
            "provenance": self.provenance.to_dict(),
        }
        if valid.size:
            out["value_range"] = [float(valid.min()), float(valid.max())]
            out["value_std"] = float(valid.std())
        if self.region is not None:
            out["region"] = jsonable(self.region)
        return out

    def __repr__(self) -> str:  # keep reprs short in notebooks
        return (
            f"Scan({self.name!r}, kind={self.kind!r}, shape={self.shape}, "
            f"spacing=({self.spacing[0]:.4g}, {self.spacing[1]:.4g}) m, "
            f"missing={100 * self.missing_fraction:.1f} %)"
        )

