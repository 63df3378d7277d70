"""Whether a scan is a raw whole-primer scan that still needs extraction."""

from __future__ import annotations

from ..scan import Scan

__all__ = ["RAW_MAX_MISSING", "looks_raw"]

#: A scan without an extraction step in its provenance and with less than this fraction
#: missing is taken to be a raw whole-primer scan (extracted breech faces are mostly NaN
#: outside the annulus and inside the firing-pin hole).
RAW_MAX_MISSING = 0.6


def looks_raw(scan: Scan) -> bool:
    """True if ``scan`` seems to be a raw whole-primer scan that needs extraction.

    Parameters
    ----------
    scan : Scan
        Any scan (heights or intensity).

    Returns
    -------
    bool
        False when the scan records an extraction step or a region, or when at least
        :data:`RAW_MAX_MISSING` of its pixels are missing (an extracted surface);
        True otherwise.
    """
    steps = " ".join(str(s.get("step", "")) for s in scan.provenance.steps)
    if "extract" in steps or scan.region is not None:
        return False
    return bool(scan.missing_fraction < RAW_MAX_MISSING)
