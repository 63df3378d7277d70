"""Figures for examiners (matplotlib): scans, virtual light, regions, cells, scores.

This module is the public face of the figures (also ``ballistics.plot``); each family
lives in its own module, and the numbers behind the figures are computed apart from the
drawing:

* surfaces (``_plot_surfaces``): :func:`scan`, :func:`virtual_light`, :func:`regions`;
  computed by :func:`common_limits`, :func:`hillshade` and ``_region_circles``;
* cells (``_plot_cells``): :func:`cells`, :func:`comparison`; computed by
  :func:`aligned_pair` and ``_cells`` (selection and numbering of the cells);
* curves and score distributions (``_plot_curves``): :func:`rotation_curve`,
  :func:`score_reference`, :func:`roc`; computed by :func:`roc_curve`, :func:`roc_auc`
  and :mod:`ballistics.review.reference`;
* agreement maps (``_plot_agreement``): :func:`agreement`; computed by
  :func:`local_correlation`;
* likelihood-ratio calibration figures: the names listed by ``_plot_calibration``.

Every function draws into a given :class:`matplotlib.axes.Axes` (or figure); without
one it makes a new pyplot figure, for notebooks.  Figures that are saved or embedded
are best made with :class:`matplotlib.figure.Figure` directly (no backend needed).
Axes carry physical units (mm for positions, um for heights, degrees for angles),
titles name the scans, and the colours are colour-blind safe: ``cividis`` for heights,
``PuOr`` (diverging) for agreement, grey for virtual light and the Okabe-Ito palette
for categories.  Scans that are compared share one colour scale (:func:`common_limits`).

>>> from matplotlib.figure import Figure
>>> from ballistics import datasets, plot
>>> a, b = datasets.fadul("processed")[:2]
>>> axs = Figure(figsize=(10, 4)).subplots(1, 2)
>>> ax = plot.scan(a, ax=axs[0])                             # height map, um, axes in mm
>>> ax = plot.virtual_light(a, ax=axs[1], azimuth_deg=45)    # hill-shading, movable light
>>> ax.get_xlabel()
'x (mm)'

References
----------
Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
Tong, M., Song, J., Chu, W. (2015). An improved algorithm of congruent matching cells
(CMC) method for firearm evidence identifications. J. Res. NIST 120, 102-112.
Zemmels, J., Hofmann, H., VanderPlas, S. (2022). cmcR: an implementation of the Congruent
Matching Cells method. The R Journal 14(1) -- its diagnostic plots of congruent cells.
Horn, B. K. P. (1981). Hill shading and the reflectance map. Proc. IEEE 69(1), 14-47.
Okabe, M., Ito, K. (2008). Color Universal Design (CUD): how to make figures and
presentations that are friendly to colorblind people.
"""

from __future__ import annotations

from . import _plot_calibration
from ._cells import aligned_pair
from ._colour_scale import common_limits
from ._figures import figure_to_png, new_figure
from ._local_correlation import local_correlation
from ._plot_agreement import agreement
from ._plot_calibration import *  # noqa: F403 - the calibration figures, whatever that module lists
from ._plot_cells import cells, comparison
from ._plot_curves import roc, rotation_curve, score_reference
from ._plot_surfaces import regions, scan, virtual_light
from ._regions_figure import plot_regions
from ._roc import roc_auc, roc_curve
from ._shading import hillshade
from ._style import DIVERGING_CMAP, HEIGHT_CMAP, OKABE_ITO

__all__ = [
    "OKABE_ITO", "HEIGHT_CMAP", "DIVERGING_CMAP",
    "common_limits", "hillshade", "scan", "virtual_light", "regions", "plot_regions", "comparison",
    "cells", "rotation_curve", "agreement", "local_correlation", "score_reference",
    "roc", "roc_curve", "roc_auc", "aligned_pair", "figure_to_png", "new_figure",
    *(name for name in _plot_calibration.__all__),
]
