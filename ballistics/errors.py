"""The one exception hierarchy of the engine.

Every error the library raises on purpose derives from :class:`BallisticsError`, so a
caller (a lab's pipeline, the CLI) can catch one class.  Messages name the file or
input and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BallisticsError",
    "ParameterError",
    "ScanReadError",
    "ScanFormatError",
    "ScanTooLargeError",
    "UnitsError",
    "EmptyScanError",
    "ScanValidationError",
    "RegionNotFoundError",
    "ComparisonError",
    "DatabaseError",
    "BundleError",
    "BundleFormatError",
    "BundleVersionError",
    "BundleIntegrityError",
    "BundleSignatureError",
    "BundleModelError",
    "CalibrationError",
    "ResourceLimitError",
    "OutputError",
]


class BallisticsError(Exception):
    """Base class of every error raised by the ``ballistics`` library."""


class ParameterError(BallisticsError, ValueError):
    """A parameter given by the caller is out of range or inconsistent."""


class ScanReadError(BallisticsError, OSError):
    """A scan file could not be read: missing, truncated, corrupt or of an unknown kind."""


class ScanFormatError(ScanReadError, ValueError):
    """A scan file was read but its content breaks its format beyond repair."""


class ResourceLimitError(BallisticsError):
    """An operation would exceed a resource limit (pixels, memory budget, result count).

    The message names the limit, the estimate, and the setting that raises it.
    """


class ScanTooLargeError(ScanReadError, ResourceLimitError):
    """A scan (or an archive member) is larger than the configured safety limit."""


class UnitsError(BallisticsError, ValueError):
    """Spacing or heights are in units that cannot be determined or are implausible."""


class EmptyScanError(BallisticsError, ValueError):
    """A scan or a region holds no (or too little) valid data to work with."""


class ScanValidationError(BallisticsError, ValueError):
    """A scan breaks an invariant of the scan model (see :meth:`ballistics.Scan.validate`):
    wrong shape or type, infinite values, implausible spacing or heights."""


class RegionNotFoundError(BallisticsError, ValueError):
    """The primer, breech face or firing pin could not be located in a scan."""


class ComparisonError(BallisticsError, ValueError):
    """Two surfaces cannot be compared (incompatible spacing, kind or too little overlap)."""


class DatabaseError(BallisticsError):
    """A case database operation failed; the stored data was left unchanged."""


class BundleError(DatabaseError):
    """An exchange bundle cannot be used; the database was left unchanged."""


class BundleFormatError(BundleError):
    """Not a bundle, truncated, or a member cannot be parsed."""


class BundleVersionError(BundleError):
    """The bundle was written in a format version this library does not read."""


class BundleIntegrityError(BundleError):
    """A member or the manifest was changed, added or removed after export."""


class BundleSignatureError(BundleError):
    """The detached Ed25519 signature is missing (when required) or does not verify."""


class BundleModelError(BundleError):
    """The bundle's signatures come from another signature model than this database's."""


class CalibrationError(BallisticsError, ValueError):
    """A likelihood-ratio system cannot be fitted, loaded or applied.

    Raised for unusable reference data (one class only, too few firearms for
    cross-validation), for system files that are not valid LR-system JSON, and for
    scores a system was not built for.  Bad arguments raise :class:`ParameterError`.
    """


class OutputError(BallisticsError, OSError):
    """An output path cannot be written safely: it is one of the inputs, lies inside a
    case database, already exists (without ``force``), or is not writable."""
