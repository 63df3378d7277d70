"""Seeded mutational fuzzing of the readers: every mutant is a valid Scan or a BallisticsError.

The harness (``benchmarks/fuzz_harness.py``, a developer tool) runs each case in a worker process with a
time limit enforced from outside, so a hang in C code counts as a failure too. The
bundled sample is always fuzzed; ``../shared/data`` files where present.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from reading_tools import fuzz_harness as _fuzz

import ballistics
from ballistics import reading

MUTATIONS, make_small_sources, mutate = _fuzz.MUTATIONS, _fuzz.make_small_sources, _fuzz.mutate
run_case, run_fuzz = _fuzz.run_case, _fuzz.run_fuzz

BUNDLED = Path(ballistics.__file__).parent / "datasets" / "data"
SMALLEST = BUNDLED / "Fadul 3-1 processed.x3p"


@pytest.fixture(scope="module")
def small_sources(tmp_path_factory) -> list[Path]:
    return make_small_sources(SMALLEST, tmp_path_factory.mktemp("fuzz-sources"))


def test_small_sources_read_like_the_bundled_crop(small_sources):
    """The derived sources go through each reader path and hold the same crop."""
    scans = {p.name: ballistics.read_scan(p) for p in small_sources}
    ref = scans["crop.x3p"]
    for name in ("revision.x3p", "micrometres.x3p", "depth.al3d"):
        np.testing.assert_allclose(scans[name].data, ref.data, rtol=1e-6, atol=0, equal_nan=True)
        assert scans[name].spacing == pytest.approx(ref.spacing, rel=1e-9)
    assert any("revision" in f for f in scans["revision.x3p"].provenance.fixes)
    assert sum("micrometres" in f for f in scans["micrometres.x3p"].provenance.fixes) == 2
    assert scans["image.png"].kind == "intensity"


def test_mutations_are_seeded_and_change_the_bytes():
    raw = SMALLEST.read_bytes()
    a = mutate(raw, "x3p", random.Random(7))
    b = mutate(raw, "x3p", random.Random(7))
    assert a == b
    seen, changed = set(), 0
    for seed in range(60):
        mutant, how = mutate(raw, "x3p", random.Random(seed))
        seen.add(how)
        changed += mutant != raw  # zeroing zeros or re-writing a value unchanged is possible, rarely
    assert seen == set(MUTATIONS)
    assert changed >= 55


def test_fuzz_bundled_and_every_reader_path(small_sources):
    """510 seeded mutants: no escape, hang, crash, invalid scan or silent change."""
    sources = [SMALLEST, *small_sources]
    report = run_fuzz(sources, 510, seed=20261130, timeout=30.0, workers=2)
    assert report.n == 510
    assert report.failures == [], report.failures[:3]
    assert not any(k.startswith("escape:") for k in report.counts)
    # the mutants really were damaged and really exercised every source and mutation
    assert report.counts["ScanFormatError"] > 250
    assert {how for how, _ in report.by_mutation} == set(MUTATIONS)
    names = {src for src, _ in report.by_source}
    assert names == {p.name for p in sources}
    # values changed without an error only where the format has no checksum (al3d, TIFF)
    changed = {src for (src, outcome), _ in report.by_source.items() if outcome == "ok-changed-no-checksum"}
    assert changed <= {"depth.al3d", "image.tif"}


def test_fuzz_shared_files(shared_data):
    """A DFSC revision-repair file, the SR9-J micrometre file, an al3d and a PNG."""
    sources = [shared_data / "dfsc" / "K004dB1.x3p", shared_data / "dfsc" / "K002fJ1.x3p",
               shared_data / "alicona" / "Klein_replica_mode.al3d",
               shared_data / "nbide_2d" / "NBIDE R BF 118.png"]
    report = run_fuzz(sources, 60, seed=99, timeout=60.0, workers=2)
    assert report.n == 60
    assert report.failures == [], report.failures[:3]
    assert report.counts["ScanFormatError"] > 25


def test_harness_reports_escapes_and_silent_changes(tmp_path, monkeypatch):
    """The harness can fail: an escaping exception and a silently altered scan are caught."""
    src = str(SMALLEST)
    # cache the unmutated scan first, then make the reader misbehave
    _fuzz._originals.pop(src, None)
    orig = ballistics.read_scan(SMALLEST)
    _fuzz._originals[src] = orig

    def escape(path, **kw):
        raise KeyError("boom")

    monkeypatch.setattr(reading, "read_scan", escape)
    _how, outcome, detail, _ = run_case(src, 1, str(tmp_path))
    assert outcome == "escape:KeyError" and "boom" in detail

    seed = next(s for s in range(100) if mutate(SMALLEST.read_bytes(), "x3p", random.Random(s))[1] == "bitflip")

    def altered(path, **kw):
        return orig.derive(orig.data + 1e-9, "tampered")

    monkeypatch.setattr(reading, "read_scan", altered)
    assert run_case(src, seed, str(tmp_path))[1] == "silent-change"
    _fuzz._originals.pop(src, None)


def test_harness_kills_a_case_over_its_time_limit():
    """A case that does not answer in time is a hang; the worker is replaced and goes on."""
    report = run_fuzz([SMALLEST], 2, seed=0, timeout=1e-4, workers=1)
    assert report.counts["hang"] == 2
    assert [f[4] for f in report.failures] == ["hang", "hang"]
    assert all(f[3] in MUTATIONS for f in report.failures)
