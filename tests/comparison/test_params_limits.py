"""CompareParams bounds on the search, the compute budget of a comparison, compute threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ballistics
from ballistics import ParameterError
from ballistics._budget import COMPUTE_LIMITS, ComputeLimits, compute_limits, current_compute_limits
from ballistics._threads import compute_threads, current_threads, get_fft_workers
from ballistics.comparison import PRESETS, CompareParams, compare
from ballistics.comparison._params import MAX_ROTATIONS
from ballistics.errors import ResourceLimitError
from ballistics.reading import scan_from_array


def test_every_field_is_documented_with_its_rule():
    rows = CompareParams.describe()
    assert [r[0] for r in rows] == CompareParams.names()
    assert all(r[2] and len(r[4]) > 20 for r in rows), [r[0] for r in rows if not (r[2] and len(r[4]) > 20)]


@pytest.mark.parametrize("bad", [
    {"rotation_step": 1e-6}, {"coarse_step": 0.01},
    {"rotation_step": 0.1, "coarse_step": None},               # 3601 rotations at full resolution
    {"coarse_step": 0.1},                                      # 3601 coarse rotations
])
def test_the_rotation_search_is_bounded(bad):
    with pytest.raises(ParameterError, match="rotation|coarse_step"):
        CompareParams(**bad)


def test_fine_settings_within_the_bound_are_accepted():
    p = CompareParams(rotation_step=0.25, coarse_step=None)
    assert p.n_rotations() == MAX_ROTATIONS
    assert CompareParams(rotation_range=(-30, 30), rotation_step=0.1, coarse_step=None).n_rotations() == 601
    assert PRESETS["default"].n_rotations() == 6 and PRESETS["cmcr"].n_rotations() == 21


def test_round_trip_through_a_dict():
    for p in PRESETS.values():
        d = p.to_dict()
        d["rotation_range"] = list(d["rotation_range"])      # as JSON gives it back
        assert CompareParams.from_dict(d) == p
    with pytest.raises(ParameterError, match="Unknown"):
        CompareParams.from_dict({"rotaton_range": (0, 1)})


def test_a_comparison_above_the_limits_is_refused_before_work(sample):
    a, b = sample[0], sample[1]
    with compute_limits(compare_max_pixels=1000), pytest.raises(ResourceLimitError, match="compare_max_pixels"):
        compare(a, b)
    with compute_limits(memory_bytes=50 * 1024**2), pytest.raises(ResourceLimitError, match="memory_bytes"):
        compare(a, b)
    assert current_compute_limits() is COMPUTE_LIMITS


def test_a_huge_surface_is_refused_without_allocating_work():
    big = scan_from_array(np.zeros((4200, 4200), dtype=np.float32), (6.25e-6, 6.25e-6), name="big")
    with pytest.raises(ResourceLimitError, match="raise it"):
        compare(big, big)


def test_limits_are_validated():
    with pytest.raises(ParameterError):
        ComputeLimits(memory_bytes=0)
    with pytest.raises(ParameterError):
        COMPUTE_LIMITS.replace(no_such=1)


def test_one_compute_thread_by_default_restored_after(sample):
    import numba
    before = numba.get_num_threads()
    assert current_threads() == 1
    with compute_threads() as n:
        assert n == 1 and numba.get_num_threads() == 1 and get_fft_workers() == 1
    assert numba.get_num_threads() == before
    with ballistics.threads(2) if numba.config.NUMBA_NUM_THREADS >= 2 else ballistics.threads(1):
        assert current_threads() in (1, 2)
    assert current_threads() == 1


def test_thread_settings_are_per_thread():
    seen = {}

    def other():
        seen["other"] = current_threads()

    with ballistics.threads(None):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert current_threads() is None
    assert seen["other"] == 1
