"""A seeded mutational fuzzer of the scan readers (a developer tool, used by
``benchmarks/fuzz_readers.py`` and ``tests/reading/test_fuzz_readers.py``).

Each case takes a real file, applies one seeded mutation and reads the result with
:func:`ballistics.read_scan` in a worker process. The only acceptable outcomes are

* a :class:`~ballistics.Scan` that passes :meth:`~ballistics.Scan.validate` and, for a
  mutation of a file whose format carries checksums (x3p: zip CRC-32 and MD5; PNG:
  chunk CRC-32 and zlib Adler-32), holds exactly the original's values -- anything else
  is a *silent change*, except an edit of main.xml whose MD5 was fixed to match
  (a self-consistent file). Al3d and TIFF carry no checksum of their values, so a
  changed value there is counted apart (``ok-changed-no-checksum``), not as a failure;
* a :class:`~ballistics.errors.BallisticsError`.

Any other exception is an *escape*; a case that runs longer than its time limit is a
*hang* (the worker is killed and replaced); a worker that dies is a *crash*. The time
limit is enforced from the parent process, so a hang inside C code (zlib, Pillow) is
caught too, which a signal-based alarm would not do.

Mutations: bit flips, truncation, inserted bytes, zeroed bytes, and (x3p) a value of
``main.xml`` edited and the archive re-zipped, with the stored MD5 left stale or fixed;
(al3d) a header value edited.
"""

from __future__ import annotations

import collections
import io
import multiprocessing as mp
import random
import re
import tempfile
import time
import traceback
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from ballistics.reading._archive import rewrite_main

MUTATIONS = ("bitflip", "truncate", "insert", "zero", "edit", "edit+md5")
_VALUE_EDITS = ("scale", "negate", "zero", "nan", "inf", "huge", "empty", "garbage", "digit", "long")


# ---------------------------------------------------------------- mutations
def _edit_value(text: bytes, rng: random.Random) -> bytes:
    how = rng.choice(_VALUE_EDITS)
    if how == "scale":
        try:
            return repr(float(text) * 10.0 ** rng.choice((-9, -6, -3, 3, 6, 9))).encode()
        except ValueError:
            return text * 2
    return {"negate": b"-" + text, "zero": b"0", "nan": b"NaN", "inf": b"INF", "huge": b"1e308",
            "empty": b"", "long": b"9" * rng.choice((12, 19, 40, 5000)),
            "garbage": bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 12))),
            "digit": re.sub(rb"\d", lambda m: str(rng.randrange(10)).encode(), text, count=1)}[how]


def _edit_x3p(raw: bytes, rng: random.Random, fix_md5: bool) -> bytes:
    def edit(main: bytes) -> bytes:
        spans = [m.span(1) for m in re.finditer(rb">([^<>]+)<", main) if m.group(1).strip()]
        if spans:
            a, b = rng.choice(spans)
            main = main[:a] + _edit_value(main[a:b], rng) + main[b:]
        return main

    return rewrite_main(raw, edit, refresh_md5=fix_md5, compression=zipfile.ZIP_DEFLATED)


def _edit_al3d(raw: bytes, rng: random.Random) -> bytes:
    off = len(b"AliconaImaging") + 3 + 52 * rng.randrange(0, 40)
    if off + 52 > len(raw):
        return raw
    value = raw[off + 20:off + 50].split(b"\x00", 1)[0].strip()
    new = _edit_value(value, rng)[:29].ljust(30, b"\x00")
    return raw[:off + 20] + new + raw[off + 50:]


def mutate(raw: bytes, fmt: str, rng: random.Random) -> tuple[bytes, str]:
    """One seeded mutation of a file's bytes; returns the mutant and its name."""
    kinds = list(MUTATIONS[:4]) + (["edit", "edit+md5"] if fmt == "x3p" else ["edit"] if fmt == "al3d" else [])
    how = rng.choice(kinds)
    b = bytearray(raw)
    n = len(b)
    if how == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        del b[rng.randrange(n):]
    elif how == "insert":
        i = rng.randrange(n + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif how == "zero":
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 256))
        b[i:j] = bytes(j - i)
    elif how.startswith("edit") and fmt == "x3p":
        return _edit_x3p(raw, rng, fix_md5=how == "edit+md5"), how
    elif how == "edit":
        return _edit_al3d(raw, rng), how
    return bytes(b), how


def file_format(path: Path) -> str:
    """``"x3p"``, ``"al3d"``, ``"png"`` or ``"tiff"`` from the file's first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK"):
        return "x3p"
    if head.startswith(b"AliconaImaging"):
        return "al3d"
    return "png" if head.startswith(b"\x89PNG") else "tiff"


# ---------------------------------------------------------------- small real sources
def _al3d_bytes(z: np.ndarray, spacing: float, invalid: float = 3.000000028082e15) -> bytes:
    """An Alicona .al3d file of ``z`` (metres, NaN missing), laid out as the vendor's."""
    rows, cols = z.shape
    stride = cols + (-cols) % 8
    tags = [("Version", "1"), ("TagCount", "9"), ("Cols", str(cols)), ("IconOffset", "0"),
            ("DepthImageOffset", "0"), ("InvalidPixelValue", repr(invalid)),
            ("PixelSizeYMeter", repr(spacing)), ("PixelSizeXMeter", repr(spacing)),
            ("NumberOfPlanes", "0"), ("Rows", str(rows)), ("TextureImageOffset", "0")]
    offset = 17 + 52 * (len(tags) + 1)
    tags[4] = ("DepthImageOffset", str(offset))
    head = b"AliconaImaging\x00\r\n" + b"".join(
        k.encode().ljust(20, b"\x00") + v.encode().ljust(30, b"\x00") + b"\r\n" for k, v in tags)
    head = head.ljust(offset, b"\x00")
    body = np.full((rows, stride), invalid, dtype="<f4")
    body[:, :cols] = np.where(np.isfinite(z), z, invalid)
    return head + body.tobytes()


def make_small_sources(source: Path, dest: Path, size: int = 64) -> list[Path]:
    """Small files cut from a real scan, one per reader path, for fast fuzzing.

    From the centre of the breech face of ``source`` (an x3p) a ``size`` x ``size``
    crop is written as: a standard x3p (``write_x3p``); an x3p whose revision is
    written ``ISO5436-2000`` (the DFSC deviation: revision repair and re-packing); one
    that also stores micrometres (the SR9-J deviation: unit repairs); an 8-bit PNG
    with a resolution tag; the same as a deflate-compressed TIFF; and an Alicona ``.al3d``.
    """
    import x3pio
    from PIL import Image

    from ballistics import read_scan, write_x3p

    scan = read_scan(source)
    rows, cols = np.nonzero(scan.mask)
    r0 = int(np.clip(np.median(rows) - size // 2, 0, scan.shape[0] - size))
    c0 = int(np.clip(np.percentile(cols, 25) - size // 2, 0, scan.shape[1] - size))
    z = scan.data[r0:r0 + size, c0:c0 + size].copy()
    dx = scan.spacing[1]
    dest.mkdir(parents=True, exist_ok=True)
    out = [write_x3p(scan.derive(z, "crop", {"rows": [r0, r0 + size], "cols": [c0, c0 + size]}),
                     dest / "crop.x3p")]

    def dfsc_like(values: np.ndarray, spacing: float, name: str) -> Path:
        buf = io.BytesIO()
        x3pio.write(buf, values, x_scale=spacing, y_scale=spacing)
        (dest / name).write_bytes(rewrite_main(
            buf.getvalue(), lambda m: re.sub(rb"<Revision>[^<]*", b"<Revision>ISO5436-2000", m),
            compression=zipfile.ZIP_DEFLATED))
        return dest / name

    out.append(dfsc_like(z, dx, "revision.x3p"))
    out.append(dfsc_like(z * 1e6, dx * 1e6, "micrometres.x3p"))
    lo, hi = np.nanmin(z), np.nanmax(z)
    grey = np.nan_to_num((z - lo) / max(hi - lo, 1e-30) * 255, nan=0).astype(np.uint8)
    Image.fromarray(grey).save(dest / "image.png", dpi=(0.0254 / dx, 0.0254 / dx))
    out.append(dest / "image.png")
    Image.fromarray(grey).save(dest / "image.tif", dpi=(0.0254 / dx, 0.0254 / dx), compression="tiff_deflate")
    out.append(dest / "image.tif")
    (dest / "depth.al3d").write_bytes(_al3d_bytes(z, dx))
    out.append(dest / "depth.al3d")
    return out


# ---------------------------------------------------------------- one case (in a worker)
_originals: dict[str, object] = {}


def run_case(source: str, seed: int, workdir: str) -> tuple[str, str, str, float]:
    """Mutate ``source`` with ``seed``, read it; return (mutation, outcome, detail, cpu_s)."""
    from ballistics import reading
    from ballistics.errors import BallisticsError

    t0 = time.process_time()
    src = Path(source)
    fmt = file_format(src)
    if source not in _originals:
        _originals[source] = reading.read_scan(src)
    orig = _originals[source]
    rng = random.Random(seed)
    mutant, how = mutate(src.read_bytes(), fmt, rng)
    path = Path(workdir) / f"mutant{src.suffix}"
    path.write_bytes(mutant)
    try:
        scan = reading.read_scan(path)
    except BallisticsError as exc:
        return how, type(exc).__name__, str(exc)[:300], time.process_time() - t0
    except Exception as exc:  # noqa: BLE001  (counting escapes is the point)
        tb = traceback.format_exc(limit=-3)
        return how, f"escape:{type(exc).__name__}", f"{exc}\n{tb}"[:2000], time.process_time() - t0
    try:
        scan.validate()
    except BallisticsError as exc:
        return how, "invalid", str(exc)[:300], time.process_time() - t0
    same = (scan.shape == orig.shape and scan.spacing == orig.spacing  # type: ignore[attr-defined]
            and np.array_equal(scan.data, orig.data, equal_nan=True))  # type: ignore[attr-defined]
    if same:
        outcome = "ok"
    elif how == "edit+md5":
        outcome = "ok-changed-consistent"  # a self-consistent edit of main.xml reads as edited
    elif fmt in ("al3d", "tiff"):
        outcome = "ok-changed-no-checksum"  # these formats carry no checksum of their values
    else:
        outcome = "silent-change"
    return how, outcome, "", time.process_time() - t0


def mutation_name(source: str, seed: int) -> str:
    """The mutation case ``seed`` applies to ``source`` (for reports of hangs and crashes)."""
    src = Path(source)
    return mutate(src.read_bytes(), file_format(src), random.Random(seed))[1]


def _worker(conn: Connection, workdir: str) -> None:
    import ballistics  # noqa: F401  (import before reporting ready, so imports don't count)

    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        idx, source, seed = msg
        conn.send((idx, *run_case(source, seed, workdir)))


# ---------------------------------------------------------------- the harness
#: Outcomes that are failures of the readers.
FAILURES = ("silent-change", "invalid", "hang", "crash")


@dataclass
class FuzzReport:
    """Counts of outcomes of a fuzzing run.

    Attributes
    ----------
    counts : Counter
        Outcome name (``"ok"``, a BallisticsError subclass name, ``"escape:<type>"``,
        ``"hang"``, ...) to number of cases.
    failures : list of tuple
        ``(case index, source, seed, mutation, outcome, detail)`` of every failure.
    cpu_seconds : float
        CPU time of the cases in the workers, seconds.
    by_mutation : Counter
        ``(mutation, outcome)`` to number of cases.
    by_source : Counter
        ``(source file name, outcome)`` to number of cases.
    """

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[int, str, int, str, str, str]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    by_mutation: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    by_source: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)

    @property
    def n(self) -> int:
        """Number of cases run."""
        return sum(self.counts.values())

    def bad(self) -> list[tuple[int, str, int, str, str, str]]:
        """Escapes, hangs, crashes, invalid scans and silent changes."""
        return self.failures

    def format(self) -> str:
        """Plain-text table of the counts."""
        escapes = sum(v for k, v in self.counts.items() if k.startswith("escape:"))
        lines = [f"{self.n} cases, {self.cpu_seconds:.1f} s CPU in the workers",
                 f"failures: escapes {escapes}, hangs {self.counts['hang']}, crashes {self.counts['crash']}, "
                 f"invalid {self.counts['invalid']}, silent changes {self.counts['silent-change']}"]
        for k, v in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {k:<28} {v:>7}")
        return "\n".join(lines)


class _Slot:
    def __init__(self, ctx: mp.context.BaseContext, workdir: str) -> None:
        self.ctx, self.workdir = ctx, workdir
        self.start()

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.conn = parent
        self.proc = self.ctx.Process(target=_worker, args=(child, self.workdir), daemon=True)  # type: ignore[attr-defined]
        self.proc.start()
        child.close()
        self.ready = False
        self.case: tuple[int, str, int] | None = None
        self.deadline = time.monotonic() + 300.0  # start-up (imports) on a loaded machine

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_fuzz(sources: Sequence[Path], n: int, seed: int = 0, *, timeout: float = 20.0,
             workers: int = 2) -> FuzzReport:
    """Run ``n`` seeded cases over ``sources`` (round robin) in ``workers`` processes.

    Parameters
    ----------
    sources : sequence of Path
        Real scan files to mutate.
    n : int
        Number of cases.
    seed : int
        Master seed; case ``i`` uses seed ``seed * 1_000_003 + i``, so a failure can be
        replayed with :func:`run_case`.
    timeout : float
        CPU-independent wall-clock limit per case, seconds; longer counts as a hang.
    workers : int
        Worker processes.

    Returns
    -------
    FuzzReport
    """
    cases = collections.deque((i, str(sources[i % len(sources)]), seed * 1_000_003 + i) for i in range(n))
    report = FuzzReport()
    ctx = mp.get_context("spawn")

    def record(case: tuple[int, str, int], how: str, outcome: str, detail: str) -> None:
        report.counts[outcome] += 1
        report.by_mutation[(how, outcome)] += 1
        report.by_source[(Path(case[1]).name, outcome)] += 1
        if outcome in FAILURES or outcome.startswith("escape:"):
            report.failures.append((case[0], case[1], case[2], how, outcome, detail))

    startup_failures = 0
    with tempfile.TemporaryDirectory(prefix="ballistics-fuzz-") as tmp:
        for k in range(max(1, workers)):
            (Path(tmp) / f"w{k}").mkdir()
        slots = [_Slot(ctx, str(Path(tmp) / f"w{k}")) for k in range(max(1, workers))]
        try:
            while cases or any(s.case is not None for s in slots):
                for s in slots:
                    if s.ready and s.case is None and cases:
                        s.case = cases.popleft()
                        s.conn.send(s.case)
                        s.deadline = time.monotonic() + timeout
                now = time.monotonic()
                ready = wait([s.conn for s in slots],
                             timeout=min(1.0, max(0.0, min(s.deadline for s in slots) - now)))
                for s in slots:
                    if s.conn in ready:
                        try:
                            msg = s.conn.recv()
                        except (EOFError, OSError):
                            if s.case is not None:
                                record(s.case, mutation_name(*s.case[1:]), "crash",
                                       f"worker exit code {s.proc.exitcode}")
                            elif not s.ready:
                                startup_failures += 1
                                if startup_failures >= 3:
                                    raise RuntimeError("fuzz workers die while starting (import error?); "
                                                       f"exit code {s.proc.exitcode}") from None
                            s.kill()
                            s.start()
                            continue
                        if msg == "ready":
                            s.ready = True
                            s.deadline = float("inf")
                            continue
                        _, how, outcome, detail, cpu = msg
                        report.cpu_seconds += cpu
                        record(s.case, how, outcome, detail)  # type: ignore[arg-type]
                        s.case, s.deadline = None, float("inf")
                    elif time.monotonic() > s.deadline:
                        if s.case is None and not s.ready:
                            startup_failures += 1
                            if startup_failures >= 3:
                                raise RuntimeError("fuzz workers do not start within 300 s")
                        if s.case is not None:
                            record(s.case, mutation_name(*s.case[1:]), "hang", f"no answer within {timeout} s")
                        s.kill()
                        s.start()
        finally:
            for s in slots:
                try:
                    s.conn.send(None)
                except OSError:
                    pass
                s.proc.join(5)
                if s.proc.is_alive():
                    s.kill()
    return report
