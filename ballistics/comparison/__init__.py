"""Compare two surfaces: the Congruent Matching Cells (CMC) family.

>>> from ballistics import datasets
>>> from ballistics.comparison import compare, prepare
>>> a, b = datasets.fadul("processed")[:2]           # Fadul 1-1, 1-2 (same slide)
>>> res = compare(a, b)                               # convergence CMC, full circle, both handedness
>>> res.cmc_count, res.rotation_deg                   # doctest: +SKIP
>>> ref = prepare(a)                                  # one scan against many
>>> [compare(ref, x).score for x in datasets.fadul("processed")[1:]]  # doctest: +SKIP

Methods: ``"original"`` (Song 2013), ``"high"`` (Tong et al. 2015, both directions
combined as cmcR), ``"convergence"`` (Chen et al. 2017).  Parameters are one validated
:class:`CompareParams`; ``preset="cmcr"`` reproduces cmcR 0.1.11's settings and cell
pipeline (``_cmcr``; exactly cmcR's counts on its six reference rows).  The native search
(``_search``) is coarse-to-fine over the full circle and also tries ``b`` mirrored
(``Comparison.mirrored``).  The hot loops are Numba kernels in ``ballistics.kernels`` (``_cmc_rotate``,
``_cmc_regions``, ``_ncc``, ``_cmc_cmcr``); FFTs by ``scipy.fft``.
"""

from __future__ import annotations

from ._cells import PreparedScan, prepare
from ._engine import DEFAULTS, compare
from ._evidence import attach_evidence
from ._learned import contributions, learned_score, score_features
from ._params import METHODS, PRESETS, CompareParams
from ._registration import align, aligned_pair, areal_correlation
from ._result import Comparison

__all__ = ["compare", "Comparison", "CompareParams", "prepare", "PreparedScan", "METHODS", "DEFAULTS", "PRESETS",
           "align", "aligned_pair", "areal_correlation", "attach_evidence", "learned_score", "score_features",
           "contributions"]
