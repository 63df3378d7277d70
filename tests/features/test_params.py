"""ExtractParams: the extraction's settings as one validated object, keywords still working."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics import ParameterError, UnitsError, datasets
from ballistics._budget import compute_limits
from ballistics.errors import ResourceLimitError
from ballistics.features import extract_breech_face, extract_firing_pin
from ballistics.features._params import BREECH_FACE, FIRING_PIN, ExtractParams


@pytest.fixture(scope="module")
def raw():
    return datasets.fadul("raw")[0]


def test_defaults_of_the_two_pipelines():
    assert BREECH_FACE.target_spacing_m == 6.25e-6 and BREECH_FACE.bandpass_m == (16e-6, 500e-6)
    assert FIRING_PIN.target_spacing_m is None and FIRING_PIN.level_order == 2
    assert ExtractParams.from_dict(FIRING_PIN.to_dict()) == FIRING_PIN


@pytest.mark.parametrize("bad, err", [
    ({"target_spacing_m": 6.25}, UnitsError), ({"bandpass_m": (16, 500)}, UnitsError),
    ({"bandpass_m": (500e-6, 16e-6)}, ParameterError), ({"level_order": 3}, ParameterError),
    ({"outlier_k": float("nan")}, ParameterError), ({"min_valid_fraction": 1.5}, ParameterError),
    ({"no_such": 1}, ParameterError),
])
def test_bad_settings_are_refused_the_same_way_as_keywords(bad, err):
    with pytest.raises(err):
        BREECH_FACE.replace(**bad)


def test_params_object_and_keywords_give_the_same_surface(raw):
    by_kw = extract_breech_face(raw, bandpass_m=(20e-6, 400e-6), target_spacing_m=12.5e-6)
    by_obj = extract_breech_face(raw, ExtractParams(bandpass_m=(20e-6, 400e-6), target_spacing_m=12.5e-6))
    assert np.array_equal(by_kw.data, by_obj.data, equal_nan=True)
    step = by_obj.provenance.steps[-1]
    assert step["bandpass_m"] == [20e-6, 400e-6] and step["target_spacing_m"] == 12.5e-6
    with pytest.raises(ParameterError):
        extract_firing_pin(raw, {"level_order": 2})   # type: ignore[arg-type]


def test_extraction_refuses_a_scan_above_the_limits_before_working(raw):
    with compute_limits(extract_max_pixels=1000), pytest.raises(ResourceLimitError, match="extract_max_pixels"):
        extract_breech_face(raw)
    with compute_limits(memory_bytes=10 * 1024**2), pytest.raises(ResourceLimitError, match="memory_bytes"):
        extract_firing_pin(raw)
    assert extract_breech_face(raw).region["type"] == "breech_face"   # the block restored the limits
