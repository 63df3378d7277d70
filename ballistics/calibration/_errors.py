"""The error of this package: a likelihood-ratio system cannot be fitted, read or used."""

from __future__ import annotations

from ..errors import BallisticsError

__all__ = ["CalibrationError"]


class CalibrationError(BallisticsError, ValueError):
    """A likelihood-ratio system cannot be fitted, loaded or applied.

    Raised for unusable reference data (one class only, too few firearms for
    cross-validation), for system files that are not valid LR-system JSON, and for
    scores a system was not built for.  Bad arguments raise
    :class:`ballistics.ParameterError` instead.
    """
