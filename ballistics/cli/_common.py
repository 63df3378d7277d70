"""Plumbing shared by the commands: argument checks, output guards, printable names."""

from __future__ import annotations

import argparse
import ast
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._io import check_output
from ..errors import ParameterError

__all__ = ["check_finite_args", "guard_output", "parse_params", "shown"]


def shown(path: str | os.PathLike[str] | None) -> str:
    """``path`` as text that can always be printed (undecodable bytes shown as U+FFFD)."""
    if path is None:
        return ""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "replace")


def check_finite_args(args: argparse.Namespace) -> None:
    """Refuse non-finite numbers (``nan``, ``inf``) given to any numeric option.

    Raises
    ------
    ParameterError
        Naming the option and the value.
    """
    for name, value in vars(args).items():
        values: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                opt = "--" + name.replace("_", "-")
                raise ParameterError(f"{opt} must be a finite number, got {v!r}")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, values read as Python literals where they parse.

    Raises
    ------
    ParameterError
        An item without ``=`` or without a key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param needs KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key.strip()] = val.strip()
    return out


def guard_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = (), *,
                 force: bool = False, what: str = "output") -> Path:
    """:func:`ballistics._io.check_output` for a command's output file (see there).

    Raises
    ------
    OutputError
        The output is an input, lies in a case database, is a directory, lies under a
        file, or exists and ``force`` is false.
    """
    return check_output(path, inputs=tuple(inputs), force=force, what=what)
