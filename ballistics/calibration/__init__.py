"""Calibrated likelihood ratios: score-to-LR systems, their domains, bounds and metrics.

A comparison score says *how similar* two cartridge cases are; a likelihood ratio says
how much more probable that similarity is if one firearm fired both than if two
different firearms did.  This package is the numeric core that turns scores into log10
LRs and measures how good those LRs are; it imports nothing above the base layer
(comparisons are read as their ``to_dict()``).

* :func:`fit` -- logistic regression, per-class KDE or isotonic (PAV) calibration,
  firearm-level cross-validation, ELUB bounds, firearm-bootstrap refits (each with its
  own bounds); gives an :class:`LRSystem` with ``.llr(scores)``, ``.interval(score)``,
  ``save``/``load`` (checksummed JSON);
* :class:`Domain`, :func:`instrument_family`, :func:`scan_domain` -- the comparisons a
  system's validation covers; outside them no LR is given by default;
* :func:`get_system`, :func:`system_for_family`, :func:`evaluate_comparison` -- the
  shipped systems (one per instrument family) or a lab's own file;
* metrics: :func:`cllr`, :func:`cllr_min`, :func:`cllr_cal`, :func:`ece`, :func:`eer`,
  :func:`misleading_evidence`, :func:`misleading_rates`, :func:`metrics`; bounds:
  :func:`elub_bounds`; :func:`verbal_scale` -- ENFSI (2015) verbal equivalents.

Validation on a lab's own labelled scans (all pairs compared through the batch engine)
is :func:`ballistics.workflow.validate` (``ballistics validate``).

>>> from ballistics import calibration as cal
>>> system = cal.get_system("default")                   # doctest: +SKIP
>>> system.llr(2.5), system.interval(2.5)["interval"]    # doctest: +SKIP

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

from ..errors import CalibrationError
from ._calibrators import IsotonicCalibrator, KDECalibrator, LogisticCalibrator, make_calibrator
from ._criteria import DEFAULT_CRITERIA, evaluate_criteria
from ._domain import Domain, instrument_family, scan_domain
from ._elub import elub_bounds
from ._fitting import DEFAULT_BAR, cross_validate, fit, held_to
from ._metrics import (
    Metrics,
    cllr,
    cllr_cal,
    cllr_min,
    ece,
    eer,
    metrics,
    misleading_evidence,
    misleading_rates,
    pav_llr,
)
from ._model import LRSystem
from ._registry import (
    CALIBRATE_HINT,
    DATA_DIR,
    DEFAULT_SYSTEM,
    evaluate_comparison,
    get_system,
    list_systems,
    system_for_family,
)
from ._storage import training_checksum
from ._verbal import VERBAL_SCALE, verbal_scale

__all__ = [
    "fit", "cross_validate", "held_to", "DEFAULT_BAR", "LRSystem", "Domain", "instrument_family", "scan_domain",
    "get_system", "list_systems", "system_for_family", "evaluate_comparison", "CALIBRATE_HINT", "DEFAULT_SYSTEM",
    "DATA_DIR", "training_checksum", "cllr", "cllr_min", "cllr_cal", "pav_llr", "ece", "eer",
    "misleading_evidence", "misleading_rates", "metrics", "Metrics", "elub_bounds", "verbal_scale", "VERBAL_SCALE",
    "CalibrationError", "DEFAULT_CRITERIA", "evaluate_criteria",
    "LogisticCalibrator", "KDECalibrator", "IsotonicCalibrator", "make_calibrator",
]
