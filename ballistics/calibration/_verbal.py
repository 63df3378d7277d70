"""Verbal equivalents of likelihood ratios (ENFSI 2015 guideline).

References
----------
ENFSI (2015). ENFSI Guideline for Evaluative Reporting in Forensic Science,
approved 8 March 2015, section 2.3 and table of verbal equivalents.
"""

from __future__ import annotations

import math

from ..errors import ParameterError

__all__ = ["verbal_scale", "VERBAL_SCALE"]

#: (upper bound of log10 LR, wording), for LR >= 1; the same bands apply to 1/LR.
VERBAL_SCALE: list[tuple[float, str]] = [
    (math.log10(2.0), "no support"),  # LR below 2 -- the guideline's scale starts at 2
    (1.0, "weak support"),                 # 2 - 10
    (2.0, "moderate support"),             # 10 - 100
    (3.0, "moderately strong support"),    # 100 - 1,000
    (4.0, "strong support"),               # 1,000 - 10,000
    (6.0, "very strong support"),          # 10,000 - 1,000,000
    (math.inf, "extremely strong support"),  # above 1,000,000
]


def verbal_scale(llr: float, hp: str = "the same-source proposition",
                 hd: str = "the different-source proposition") -> str:
    """ENFSI (2015) verbal equivalent of a log10 likelihood ratio.

    Bands (LR, and the same for 1/LR in favour of ``hd``): below 2 no support for either
    proposition; 2-10 weak; 10-100 moderate; 100-1,000 moderately strong; 1,000-10,000
    strong; 10,000-1,000,000 very strong; above 1,000,000 extremely strong support.
    Upper band limits are inclusive (LR = 10 is "weak support").

    Parameters
    ----------
    llr : float
        log10 likelihood ratio (positive supports ``hp``); +-inf allowed.
    hp, hd : str
        Wording of the two propositions.

    Returns
    -------
    str
        E.g. ``"The findings provide moderate support for the same-source proposition
        rather than the different-source proposition."``

    References
    ----------
    ENFSI (2015), Guideline for Evaluative Reporting in Forensic Science, p. 17.
    """
    try:
        v = float(llr)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"llr must be a number (log10 LR), got {llr!r}") from exc
    if math.isnan(v):
        raise ParameterError("llr is NaN: no verbal equivalent")
    a = abs(v)
    words = next(w for ub, w in VERBAL_SCALE if a <= ub)
    if words == "no support":
        return ("The findings do not support one proposition over the other "
                f"({hp} and {hd} are about equally probable given the findings).")
    first, second = (hp, hd) if v > 0 else (hd, hp)
    return f"The findings provide {words} for {first} rather than {second}."
