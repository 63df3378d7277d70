"""Declarative parameter objects: frozen dataclasses whose fields state their constraints.

In the spirit of scikit-learn's parameter constraints, each field of a parameter object
declares what it accepts, and one validator (:class:`Params`) checks every field when
the object is built, raising :class:`~ballistics.errors.ParameterError` with the field's
name, the rule and the value given.  A field is declared with :func:`param`::

    @dataclass(frozen=True)
    class SearchParams(Params):
        k: int = param(10, Integer(1, 10_000), "candidates returned")

Rules: :class:`Real`, :class:`Integer`, :class:`Choice`, :class:`Boolean`,
:class:`Pair` and :class:`Text`; each accepts ``none=True`` for optional values.
Cross-field rules go in ``_check(self)``.  Every parameter object offers
:meth:`Params.replace`, :meth:`Params.to_dict` and :meth:`Params.from_dict` (unknown
names are a ``ParameterError`` there too), and documents each field in its metadata
(:meth:`Params.describe`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import ParameterError

__all__ = ["Params", "param", "Real", "Integer", "Choice", "Boolean", "Pair", "Text"]

P = TypeVar("P", bound="Params")


@dataclass(frozen=True)
class Rule:
    """Base of the constraints; ``none`` allows ``None``."""

    none: bool = False

    def __call__(self, name: str, v: Any) -> Any:
        if v is None:
            if self.none:
                return None
            raise ParameterError(f"{name} must be {self.describe()}, got None")
        return self.check(name, v)

    def check(self, name: str, v: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _finite(name: str, v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ParameterError(f"{name} must be {what}, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Real(Rule):
    """A finite real number in ``[lo, hi]`` (``lo_open``/``hi_open`` exclude an end)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __init__(self, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, none: bool = False) -> None:
        for k, v in (("none", none), ("lo", lo), ("hi", hi), ("lo_open", lo_open), ("hi_open", hi_open)):
            object.__setattr__(self, k, v)

    def describe(self) -> str:
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        rng = " and ".join(s for s in (lo, hi) if s)
        return "a finite number" + (f" {rng}" if rng else "")

    def check(self, name: str, v: Any) -> float:
        x = _finite(name, v, self.describe())
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        return x


@dataclass(frozen=True)
class Integer(Rule):
    """An integer in ``[lo, hi]`` (integral floats such as ``4.0`` are accepted)."""

    lo: int | None = None
    hi: int | None = None

    def __init__(self, lo: int | None = None, hi: int | None = None, *, none: bool = False) -> None:
        for k, v in (("none", none), ("lo", lo), ("hi", hi)):
            object.__setattr__(self, k, v)

    def describe(self) -> str:
        lo = "" if self.lo is None else f">= {self.lo}"
        hi = "" if self.hi is None else f"<= {self.hi}"
        rng = " and ".join(s for s in (lo, hi) if s)
        return "an integer" + (f" {rng}" if rng else "")

    def check(self, name: str, v: Any) -> int:
        x = _finite(name, v, self.describe())
        if x != int(x) or (self.lo is not None and x < self.lo) or (self.hi is not None and x > self.hi):
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        return int(x)


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed set of strings."""

    options: tuple[str, ...] = ()

    def __init__(self, *options: str, none: bool = False) -> None:
        object.__setattr__(self, "none", none)
        object.__setattr__(self, "options", tuple(options))

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.options))

    def check(self, name: str, v: Any) -> str:
        if not isinstance(v, str) or v not in self.options:
            raise ParameterError(f"{name} must be {self.describe()}; got {v!r}")
        return v


@dataclass(frozen=True)
class Boolean(Rule):
    """``True`` or ``False`` (not 0/1, not strings)."""

    def describe(self) -> str:
        return "True or False"

    def check(self, name: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise ParameterError(f"{name} must be True or False, got {v!r}")
        return v


@dataclass(frozen=True)
class Text(Rule):
    """A string of at most ``max_len`` characters, without control characters."""

    max_len: int = 1024

    def __init__(self, max_len: int = 1024, *, none: bool = False) -> None:
        object.__setattr__(self, "none", none)
        object.__setattr__(self, "max_len", max_len)

    def describe(self) -> str:
        return f"text of at most {self.max_len} characters without control characters"

    def check(self, name: str, v: Any) -> str:
        if (not isinstance(v, str) or len(v) > self.max_len
                or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in v)):
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        return v


@dataclass(frozen=True)
class Pair(Rule):
    """Two values, each checked by ``rule``; ``ordered`` requires first <= second."""

    rule: Rule = dataclasses.field(default_factory=Real)
    ordered: bool = False

    def __init__(self, rule: Rule, *, ordered: bool = False, none: bool = False) -> None:
        for k, v in (("none", none), ("rule", rule), ("ordered", ordered)):
            object.__setattr__(self, k, v)

    def describe(self) -> str:
        return f"a pair of {self.rule.describe()}" + (" (low <= high)" if self.ordered else "")

    def check(self, name: str, v: Any) -> tuple[Any, Any]:
        if isinstance(v, (str, bytes)):
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        try:
            a, b = v
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}") from exc
        a, b = self.rule(f"{name}[0]", a), self.rule(f"{name}[1]", b)
        if self.ordered and a > b:
            raise ParameterError(f"{name} must be {self.describe()}, got {v!r}")
        return (a, b)


def param(default: Any, rule: Rule, doc: str, *, unit: str = "") -> Any:
    """A dataclass field with its validation ``rule``, its documentation and its unit."""
    return field(default=default, metadata={"rule": rule, "doc": doc, "unit": unit})


@dataclass(frozen=True)
class Params:
    """Base of the engine's parameter objects: validated on construction, immutable.

    Subclasses are ``@dataclass(frozen=True)`` and declare fields with :func:`param`.
    """

    _kind: ClassVar[str] = "parameter"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule = f.metadata.get("rule")
            if rule is not None:
                object.__setattr__(self, f.name, rule(f.name, getattr(self, f.name)))
        self._check()

    def _check(self) -> None:
        """Cross-field rules; raise ParameterError. Override in subclasses."""

    @classmethod
    def names(cls) -> list[str]:
        """The names of every field."""
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self: P, **changes: Any) -> P:
        """A copy with ``changes`` applied and validated; unknown names raise ParameterError."""
        unknown = set(changes) - set(self.names())
        if unknown:
            raise ParameterError(f"Unknown {self._kind}(s) {sorted(unknown)}; known: {sorted(self.names())}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (what results record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any] | None) -> P:
        """Build from a mapping (e.g. a recorded ``to_dict()``); unknown names raise ParameterError."""
        values = dict(values or {})
        if not all(isinstance(k, str) for k in values):
            raise ParameterError(f"{cls.__name__}: parameter names must be strings")
        unknown = set(values) - set(cls.names())
        if unknown:
            raise ParameterError(f"Unknown {cls._kind}(s) {sorted(unknown)}; known: {sorted(cls.names())}.")
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str, str, str]]:
        """One row per field: name, default, rule, unit, documentation."""
        rows = []
        for f in dataclasses.fields(cls):
            rule = f.metadata.get("rule")
            rows.append((f.name, f.default, rule.describe() if rule else "", f.metadata.get("unit", ""),
                         f.metadata.get("doc", "")))
        return rows
