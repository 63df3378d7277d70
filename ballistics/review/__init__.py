"""Examiner review: figures (:mod:`ballistics.plot`), reference scores and HTML reports.

* :mod:`ballistics.review.plot` (also ``ballistics.plot``) -- height maps, virtual light,
  regions, congruent cells on both scans, CMC-rotation curve, agreement map, score
  against reference distributions, ROC curve (matplotlib, colour-blind-safe).
* :mod:`ballistics.review.reference` -- known same-/different-firearm pairs, their
  scores (:func:`reference_scores`) and where a score falls among them (:func:`placement`).
* :func:`ballistics.report` -- one HTML file per comparison (``ballistics report A B``);
  :func:`search_report` -- the candidate list of a database search
  (``ballistics report --db DB --query Q``); :func:`validation_report` -- the report of a
  validation study (:func:`ballistics.workflow.validate`; ``ballistics validate``).
"""

from __future__ import annotations

from ._search_report import search_report
from .reference import Placement, ReferencePair, ReferenceScores, pair_scores, placement, reference_scores
from .validation_report import validation_report

__all__ = ["search_report", "validation_report", "reference_scores", "pair_scores", "placement", "ReferenceScores",
           "ReferencePair", "Placement"]
