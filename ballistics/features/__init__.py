"""Feature extraction: find the primer / firing-pin regions and condition the surface.

>>> from ballistics import datasets, extract_breech_face
>>> bf = extract_breech_face(datasets.fadul("raw")[0])
>>> bf.region["type"], bf.spacing
('breech_face', (6.25e-06, 6.25e-06))

One algorithm per private module: ``_regions`` (primer / firing-pin finding, with
``_regions_primer``, ``_regions_pin``, ``_regions_grid`` and ``_regions_topo``),
``_circle`` (RANSAC circle fit), ``_level`` (median plane, flat-field), ``_filter``
(normalised-convolution Gaussian band-pass, outliers), ``_resample`` (anti-aliased
resampling), ``_params`` (:class:`ExtractParams`), ``_extract`` (the two pipelines),
``_raw`` (:func:`looks_raw`).
"""

from __future__ import annotations

from ._extract import EXTRACT_STEPS, extract_breech_face, extract_firing_pin
from ._params import BREECH_FACE, FIRING_PIN, ExtractParams
from ._raw import RAW_MAX_MISSING, looks_raw
from ._regions import Regions, find_regions

__all__ = ["extract_breech_face", "extract_firing_pin", "find_regions", "Regions", "EXTRACT_STEPS",
           "ExtractParams", "BREECH_FACE", "FIRING_PIN", "looks_raw", "RAW_MAX_MISSING"]

