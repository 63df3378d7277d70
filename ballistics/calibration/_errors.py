"""The error of this package: a likelihood-ratio system cannot be fitted, read or used.

Defined in :mod:`ballistics.errors` with the rest of the hierarchy; re-exported here.
"""

from __future__ import annotations

from ..errors import CalibrationError

__all__ = ["CalibrationError"]
