"""Helpers shared by the reading tests: small x3p files and the fuzzing harness.

The harness is a developer tool in ``benchmarks/fuzz_harness.py`` (not part of the
package); its folder is put on ``sys.path`` so that the worker processes it spawns can
import it by name too.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from ballistics.reading._archive import rewrite_main

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import fuzz_harness  # noqa: E402

__all__ = ["fuzz_harness", "x3p_bytes", "rewrite", "fix_md5"]


def x3p_bytes(z: np.ndarray, spacing: float = 6.25e-6) -> bytes:
    """A standard x3p file of heights ``z`` (metres), written by x3pio."""
    import x3pio

    buf = io.BytesIO()
    x3pio.write(buf, z, x_scale=spacing, y_scale=spacing)
    return buf.getvalue()


def rewrite(raw: bytes, edit) -> bytes:
    """Rewrite main.xml of an x3p archive with ``edit(bytes) -> bytes`` (checksum kept stale)."""
    return rewrite_main(raw, edit, refresh_md5=False)


def fix_md5(raw: bytes) -> bytes:
    """Make md5checksum.hex match main.xml again (a well-formed but non-standard file)."""
    return rewrite_main(raw, lambda m: m)
