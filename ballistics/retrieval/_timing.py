"""Per-stage timing of a search: wall and CPU seconds and the number of items per stage."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Timer", "format_timings"]


class Timer:
    """Context manager adding one stage's wall and CPU seconds and items to ``timings``.

    ``threads``, when given, is recorded as the stage's ``threads`` (CPU seconds are
    summed over them, so wall time is the latency).
    """

    def __init__(self, timings: dict[str, dict[str, float]], name: str, n: int = 0,
                 threads: int | None = None) -> None:
        self.t, self.name, self.n, self.threads = timings, name, n, threads

    def __enter__(self) -> Timer:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        d = self.t.setdefault(self.name, {"wall_s": 0.0, "cpu_s": 0.0, "n": 0})
        d["wall_s"] += time.perf_counter() - self.w0
        d["cpu_s"] += time.process_time() - self.c0
        d["n"] += self.n
        if self.threads is not None:
            d["threads"] = self.threads


def format_timings(timings: dict[str, dict[str, float]]) -> str:
    """One line per stage (for ``ballistics db search --verbose``).

    Parameters
    ----------
    timings : dict
        :attr:`CascadeResult.timings`.

    Returns
    -------
    str
        e.g. ``"stage2  verify       212 candidates   1.07 s wall   1.05 s CPU"``.
    """
    names = {"query": "query features", "stage1": "retrieval", "stage2": "SIFT+RANSAC verify",
             "stage3": "compare"}
    lines = []
    for k in ("query", "stage1", "stage2", "stage3"):
        if k in timings:
            d = timings[k]
            on = f" on {int(d['threads'])} threads" if d.get("threads", 1) != 1 else ""
            lines.append(f"{k:<7}{names[k]:<20}{int(d.get('n', 0)):>7} items {d['wall_s']:8.3f} s wall "
                         f"{d['cpu_s']:8.3f} s CPU{on}")
    return "\n".join(lines)
