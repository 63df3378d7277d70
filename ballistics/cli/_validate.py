"""Sub-command module (being written)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # pragma: no cover - filled in
    """Add this module's sub-commands (none yet)."""
