"""Command-line interface: ``ballistics <command> ...``.

Each pipeline stage adds its commands from a module of this package that defines
``register(subparsers)``; the module list is :data:`COMMAND_MODULES`.  Errors of the
library (:class:`ballistics.BallisticsError`) and of the operating system
(:class:`OSError`: a full disk, a missing permission) are printed as one clear line and
give exit status 2, never a traceback; a closed output pipe (``ballistics info f.x3p
--json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import BallisticsError
from ._common import check_finite_args

#: Modules of this package that add sub-commands, in the order of the pipeline.
COMMAND_MODULES = ["_info", "_extract", "_compare", "_db", "_batch", "_validate", "_report", "_demo"]


def emit(obj: Any, as_json: bool) -> None:
    """Print ``obj`` as JSON, or as indented ``key: value`` lines for people."""
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
        return
    for line in _lines(obj, 0):
        print(line)


def _lines(o: Any, indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    if isinstance(o, dict):
        for k, v in o.items():
            if isinstance(v, (dict, list)) and v and not _flat(v):
                out.append(f"{pad}{k}:")
                out.extend(_lines(v, indent + 1))
            else:
                out.append(f"{pad}{k}: {fmt(v)}")
    elif isinstance(o, list):
        for v in o:
            if isinstance(v, (dict, list)) and not _flat(v):
                sub = _lines(v, indent + 1)
                out.append(f"{pad}- {sub[0].strip()}" if sub else f"{pad}-")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {fmt(v)}")
    else:
        out.append(f"{pad}{fmt(o)}")
    return out


def _flat(v: Any) -> bool:
    """True for a list of scalars (printed on one line)."""
    return isinstance(v, list) and all(isinstance(x, (int, float, str, bool, type(None))) for x in v)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{}"
    return str(v)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ballistics",
        description="Open ballistic image comparison engine: read cartridge-case scans, extract "
                    "breech-face and firing-pin impressions, compare them (Congruent Matching Cells), "
                    "search a case database and write examiner reports.",
    )
    parser.add_argument("--version", action="version", version=f"ballistics {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def _error(exc: BaseException) -> int:
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"ballistics: error: {text}", file=sys.stderr)
    return 2


def _quiet_broken_pipe() -> int:
    """The reader of our output went away: send the rest to /dev/null and stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (tests capture it)
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ballistics`` command.

    Only the command line sets process-wide defaults: Numba's OpenMP threads sleep
    between parallel regions (``OMP_WAIT_POLICY=PASSIVE``, unless the user chose
    otherwise), which keeps the kernels fast on a shared machine.

    Returns
    -------
    int
        0 on success, 1 for a result the command reports as incomplete or failing, 2 for
        an error (one line on stderr), 130 when interrupted.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for stream in (sys.stdout, sys.stderr):   # file names that are not valid UTF-8 stay printable
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        check_finite_args(args)
        rc = int(args.func(args) or 0)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (BallisticsError, OSError) as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print("ballistics: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
