"""Resource guards of the compute stages: pixels per scan and memory per operation.

A comparison of two 6000 x 6000 surfaces needs about 8 GB; an extraction of a
400-million-point scan more.  Before any work starts, :func:`check_compare_budget` and
:func:`check_extract_budget` estimate the peak memory of the operation from the sizes
of its inputs and refuse it with a
:class:`~ballistics.errors.ResourceLimitError` that names the limit, the estimate and
how to raise it, instead of letting the machine swap or the process be killed.

The limits are read at call time from :data:`COMPUTE_LIMITS` (change its attributes for
the whole process) or from the :func:`compute_limits` context manager (this thread, one
block)::

    from ballistics._budget import COMPUTE_LIMITS, compute_limits
    COMPUTE_LIMITS.memory_bytes = 8 * 1024**3           # a big workstation
    with compute_limits(max_pixels=100_000_000):        # one trusted, large job
        ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError, ResourceLimitError

__all__ = ["COMPUTE_LIMITS", "ComputeLimits", "check_compare_budget", "check_extract_budget",
           "compute_limits", "current_compute_limits"]

#: Peak bytes per input pixel (both surfaces summed) of a comparison, and its fixed part.
#: Measured as the growth of peak RSS: 113 and 110 bytes per pixel comparing the bundled
#: Fadul 1-1 / 1-2 breech faces upsampled 2x and 3x (1090 and 1635 px a side).
COMPARE_BYTES_PER_PIXEL = 120
COMPARE_FIXED_BYTES = 64 * 1024**2
#: Peak bytes per scan pixel of an extraction, and its fixed part.  Measured likewise: 39
#: and 34 bytes per pixel extracting the bundled raw Fadul 1-1 upsampled 3x and 6x.
EXTRACT_BYTES_PER_PIXEL = 40
EXTRACT_FIXED_BYTES = 64 * 1024**2


@dataclass
class ComputeLimits:
    """Limits of one comparison or extraction.

    Attributes
    ----------
    compare_max_pixels : int
        Largest surface a comparison accepts, pixels per scan (default 16 million,
        4000 x 4000; extracted breech faces at 6.25 um have about 0.3 million).
    extract_max_pixels : int
        Largest raw scan an extraction accepts, pixels (default 100 million).
    memory_bytes : int
        Memory budget of one operation, bytes (default 2 GiB), checked against the
        estimate before work starts.
    """

    compare_max_pixels: int = 16_000_000
    extract_max_pixels: int = 100_000_000
    memory_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"ComputeLimits.{f.name} must be a positive integer, got {v!r}")

    def replace(self, **changes: Any) -> ComputeLimits:
        """A copy with some limits changed (validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"Unknown compute limit(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


#: The limits every operation uses unless a :func:`compute_limits` block says otherwise.
COMPUTE_LIMITS = ComputeLimits()
_LOCAL = threading.local()


def current_compute_limits() -> ComputeLimits:
    """The limits in force in this thread: the innermost :func:`compute_limits` block's, else
    :data:`COMPUTE_LIMITS`."""
    return getattr(_LOCAL, "limits", None) or COMPUTE_LIMITS


@contextlib.contextmanager
def compute_limits(**changes: Any) -> Iterator[ComputeLimits]:
    """Context manager: other limits for the calling thread inside the block.

    Parameters
    ----------
    **changes
        Fields of :class:`ComputeLimits` (e.g. ``memory_bytes=8 * 1024**3``).
    """
    new = current_compute_limits().replace(**changes)
    old = getattr(_LOCAL, "limits", None)
    _LOCAL.limits = new
    try:
        yield new
    finally:
        _LOCAL.limits = old


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def _refuse(what: str, name: str, value: int, shown: str) -> ResourceLimitError:
    return ResourceLimitError(
        f"{what} exceeds ComputeLimits.{name} = {shown}; if the machine has the resources, raise it "
        f"(ballistics._budget.COMPUTE_LIMITS.{name} = ..., or `with compute_limits({name}=...)`), "
        "or crop / resample the surface first.")


def _check_memory(what: str, estimate: int, limits: ComputeLimits) -> None:
    if estimate > limits.memory_bytes:
        raise _refuse(f"{what} needs about {_gib(estimate)} of memory, which", "memory_bytes",
                      limits.memory_bytes, f"{limits.memory_bytes:,} bytes ({_gib(limits.memory_bytes)})")


def check_compare_budget(a: Any, b: Any) -> int:
    """Refuse a comparison whose surfaces exceed the pixel limit or the memory budget.

    Parameters
    ----------
    a, b : Scan or PreparedScan
        The two surfaces (a prepared scan's ``scan`` is measured).  Objects without a
        2-D ``shape`` are left for the comparison to refuse.

    Returns
    -------
    int
        The estimated peak memory, bytes (0 when a surface has no shape).

    Raises
    ------
    ResourceLimitError
        Naming the limit, the size or estimate, and how to raise the limit.
    """
    lim = current_compute_limits()
    sizes, names = [], []
    for obj in (a, b):
        s = getattr(obj, "scan", obj)
        shape, name = getattr(s, "shape", None), str(getattr(s, "name", "surface"))
        if not isinstance(shape, tuple) or len(shape) != 2:
            return 0
        names.append(name)
        n = int(shape[0]) * int(shape[1])
        if n > lim.compare_max_pixels:
            raise _refuse(f"comparison: {name!r} has {shape[0]} x {shape[1]} = {n:,} pixels, which",
                          "compare_max_pixels", lim.compare_max_pixels, f"{lim.compare_max_pixels:,}")
        sizes.append(n)
    estimate = COMPARE_FIXED_BYTES + COMPARE_BYTES_PER_PIXEL * sum(sizes)
    _check_memory(f"comparing {names[0]!r} with {names[1]!r}", estimate, lim)
    return estimate


def check_extract_budget(scan: Any, what: str = "extraction") -> int:
    """Refuse an extraction whose scan exceeds the pixel limit or the memory budget.

    Parameters
    ----------
    scan : Scan
        The raw scan (only ``shape`` and ``name`` are used).
    what : str
        The operation, for the message.

    Returns
    -------
    int
        The estimated peak memory, bytes.

    Raises
    ------
    ResourceLimitError
        Naming the limit, the size or estimate, and how to raise the limit.
    """
    lim = current_compute_limits()
    h, w = (int(x) for x in scan.shape[:2])
    n = h * w
    if n > lim.extract_max_pixels:
        raise _refuse(f"{what}: {scan.name!r} has {h} x {w} = {n:,} pixels, which", "extract_max_pixels",
                      lim.extract_max_pixels, f"{lim.extract_max_pixels:,}")
    estimate = EXTRACT_FIXED_BYTES + EXTRACT_BYTES_PER_PIXEL * n
    _check_memory(f"{what} of {scan.name!r}", estimate, lim)
    return estimate
