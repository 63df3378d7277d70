"""Compare two surfaces: the Congruent Matching Cells (CMC) family.

>>> from ballistics import datasets
>>> from ballistics.comparison import compare, prepare
>>> a, b = datasets.fadul("processed")[:2]           # Fadul 1-1, 1-2 (same slide)
>>> res = compare(a, b)                               # High CMC, full-circle search
>>> res.cmc_count, res.rotation_deg                   # doctest: +SKIP
>>> ref = prepare(a)                                  # one scan against many
>>> [compare(ref, x).score for x in datasets.fadul("processed")[1:]]  # doctest: +SKIP

Methods: ``"original"`` (Song 2013), ``"high"`` (Tong et al. 2015, both directions
combined as cmcR), ``"convergence"`` (Chen et al. 2017).  ``preset="cmcr"`` reproduces
cmcR 0.1.11's settings and cell pipeline (``_cmcr``; same counts as cmcR on its reference
pairs).  The hot loops are Numba kernels in ``ballistics.kernels`` (``_cmc_rotate``,
``_cmc_regions``, ``_ncc``, ``_cmc_cmcr``); FFTs by ``scipy.fft``.
"""

from __future__ import annotations

from ._cells import PreparedScan, prepare
from ._engine import DEFAULTS, METHODS, PRESETS, compare
from ._registration import align, aligned_pair, areal_correlation
from ._result import Comparison

__all__ = ["compare", "Comparison", "prepare", "PreparedScan", "METHODS", "DEFAULTS", "PRESETS",
           "align", "aligned_pair", "areal_correlation"]
