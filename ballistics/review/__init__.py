"""Examiner review: figures (:mod:`ballistics.plot`) and self-contained HTML reports.

* :mod:`ballistics.review.plot` (also ``ballistics.plot``) -- height maps, virtual light,
  regions, congruent cells on both scans, CMC-rotation curve, agreement map, score
  against reference distributions, ROC curve (matplotlib, colour-blind-safe).
* :func:`ballistics.report` -- one HTML file per comparison (``ballistics report A B``);
  :func:`search_report` -- the candidate list of a database search
  (``ballistics report --db DB --query Q``);
  :func:`reference_scores` -- known same-/different-firearm scores to place a score among.
"""

from __future__ import annotations

from .report import pair_scores, placement, reference_scores, search_report

__all__ = ["search_report", "reference_scores", "pair_scores", "placement"]
