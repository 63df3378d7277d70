"""Workflows that chain the stages: validating an LR system on a lab's labelled scans.

* :func:`validate` -- compare all pairs of a labelled table through the batch engine,
  fit and cross-validate an LR system by firearm, check it against criteria set in
  advance and save it with the study's domain (``study/lr_system.json``, usable as
  ``compare(..., lr_system="study/lr_system.json")``).  The HTML report is
  :func:`ballistics.review.validation_report`; ``ballistics validate`` does both.
"""

from __future__ import annotations

from ._inputs import read_table
from ._validate import LR_SYSTEM_FILE, ValidationResult, run_pairs, validate

__all__ = ["validate", "ValidationResult", "run_pairs", "read_table", "LR_SYSTEM_FILE"]
