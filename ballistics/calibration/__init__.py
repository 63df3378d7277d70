"""Calibrated likelihood ratios: score-to-LR systems, their validation and bounds (issue 12).

A comparison score (the CMC count, a learned score) says *how similar* two cartridge
cases are; a likelihood ratio says how much more probable that similarity is if one
firearm fired both than if two different firearms did.  This package turns scores into
log10 LRs and measures how good those LRs are:

* :func:`fit` -- logistic regression, per-class KDE or isotonic (PAV) calibration,
  firearm-level cross-validation, ELUB bounds, a firearm bootstrap; gives an
  :class:`LRSystem` with ``.llr(scores)``, ``.llr_interval(score)``, ``save``/``load``
  (JSON);
* :func:`get_system` -- the shipped default system (:data:`DEFAULT_SYSTEM`) or a lab's
  own file;
* metrics: :func:`cllr`, :func:`cllr_min`, :func:`cllr_cal`, :func:`ece`, :func:`eer`,
  :func:`misleading_evidence`, :func:`metrics`; bounds: :func:`elub_bounds`;
* :func:`verbal_scale` -- ENFSI (2015) verbal equivalents;
* :func:`validate` -- all pairs of a lab's labelled scans, a cross-validated system and
  an HTML validation report (``ballistics validate``).

>>> from ballistics import calibration as cal
>>> system = cal.get_system("default")                   # doctest: +SKIP
>>> system.llr(25.3), system.llr_interval(25.3)          # doctest: +SKIP

References
----------
Brümmer, N., du Preez, J. (2006). Application-independent evaluation of speaker
detection. Computer Speech & Language 20(2-3), 230-275.
Vergeer, P. et al. (2016). Numerical likelihood ratios outputted by LR systems are
often based on extrapolation: when to stop extrapolating? Science & Justice 56(6).
Meuwly, D., Ramos, D., Haraksim, R. (2017). A guideline for the validation of
likelihood ratio methods used for forensic evidence evaluation. FSI 276, 142-153.
Ramos, D., Gonzalez-Rodriguez, J. (2013). Reliable support: measuring calibration of
likelihood ratios. FSI 230(1-3), 156-169.
ENFSI (2015). Guideline for Evaluative Reporting in Forensic Science.
"""

from __future__ import annotations

from ._calibrators import IsotonicCalibrator, KDECalibrator, LogisticCalibrator, make_calibrator
from ._elub import elub_bounds
from ._errors import CalibrationError
from ._metrics import Metrics, cllr, cllr_cal, cllr_min, ece, eer, metrics, misleading_evidence, pav_llr
from ._system import (
    DATA_DIR,
    DEFAULT_SYSTEM,
    LRSystem,
    cross_validate,
    fit,
    get_system,
    list_systems,
    training_checksum,
)
from ._verbal import VERBAL_SCALE, verbal_scale

__all__ = [
    "fit", "cross_validate", "LRSystem", "get_system", "list_systems", "DEFAULT_SYSTEM", "DATA_DIR",
    "training_checksum", "cllr", "cllr_min", "cllr_cal", "pav_llr", "ece", "eer", "misleading_evidence",
    "metrics", "Metrics", "elub_bounds", "verbal_scale", "VERBAL_SCALE", "CalibrationError",
    "LogisticCalibrator", "KDECalibrator", "IsotonicCalibrator", "make_calibrator", "validate",
]


def __getattr__(name: str):  # validate pulls in the comparison engine: import it on use
    if name in ("validate", "ValidationResult"):
        from . import _validate
        return getattr(_validate, name)
    raise AttributeError(f"module 'ballistics.calibration' has no attribute {name!r}")
