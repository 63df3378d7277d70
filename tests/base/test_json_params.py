"""The base helpers: canonical JSON, bounded parsing of untrusted JSON, declarative parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ballistics._json import canonical_hash, canonical_json, jsonable, loads_bounded
from ballistics._params import Choice, Integer, Pair, Params, Real, param
from ballistics.errors import BallisticsError, ParameterError


def test_canonical_json_is_order_and_type_independent():
    a = {"b": (1, 2), "a": np.float64(0.5)}
    b = {"a": 0.5, "b": [1, 2]}
    assert canonical_json(a) == canonical_json(b) == '{"a":0.5,"b":[1,2]}'
    assert canonical_hash(a) == canonical_hash(b)
    assert canonical_hash(a) != canonical_hash({"a": 0.5, "b": [2, 1]})
    assert jsonable(float("nan")) is None


@pytest.mark.parametrize("text", ["[" * 200 + "]" * 200, '{"a":' * 100 + "1" + "}" * 100])
def test_deep_json_is_refused_before_parsing(text):
    with pytest.raises(BallisticsError, match="nested"):
        loads_bounded(text, what="manifest")


def test_bounded_json_refuses_size_constants_and_wrong_type():
    with pytest.raises(BallisticsError, match="limit"):
        loads_bounded(b"[" + b"1," * 100 + b"1]", what="x", max_bytes=50)
    with pytest.raises(BallisticsError, match="not valid JSON"):
        loads_bounded("[NaN]", what="x")
    with pytest.raises(BallisticsError, match="expected a JSON dict"):
        loads_bounded("[1]", what="x", expect=dict)
    # brackets inside strings do not count as nesting
    assert loads_bounded('{"s": "' + "[" * 500 + '"}', what="x", expect=dict)["s"] == "[" * 500


@dataclass(frozen=True)
class _Demo(Params):
    k: int = param(10, Integer(1, 100), "candidates")
    r: tuple[float, float] = param((0.0, 1.0), Pair(Real(-1, 2), ordered=True), "range", unit="deg")
    m: str = param("a", Choice("a", "b"), "mode")
    s: float | None = param(None, Real(0, lo_open=True, none=True), "step")


@pytest.mark.parametrize("bad", [dict(k=0), dict(k=1.5), dict(k=True), dict(r=(2, 1)), dict(r="ab"),
                                 dict(m="c"), dict(s=0.0), dict(s=float("nan"))])
def test_params_refuse_bad_values(bad):
    with pytest.raises(ParameterError, match=next(iter(bad))):
        _Demo(**bad)


def test_params_coerce_replace_and_round_trip():
    p = _Demo(k=4.0, r=[0, 1])
    assert p.k == 4 and isinstance(p.k, int) and p.r == (0.0, 1.0)
    assert _Demo.from_dict(p.to_dict()) == p
    assert p.replace(m="b").m == "b"
    with pytest.raises(ParameterError, match="Unknown"):
        p.replace(z=1)
    with pytest.raises(ParameterError, match="Unknown"):
        _Demo.from_dict({"z": 1})
    assert [row[0] for row in _Demo.describe()] == ["k", "r", "m", "s"]
