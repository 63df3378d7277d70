"""Batch engine (ballistics.batch) on a real 2-worker LocalCluster and the bundled sample.

One cluster (2 processes, 1 thread each) is shared by the module.  Comparisons use a
narrow rotation range (-27..-21 deg, full grid: 3 rotations) so each pair costs a
fraction of a default full-circle comparison; the engine is the same, and the sample's
same-slide pair (Fadul 1-1 / 1-2, true rotation -24 deg) still gets 20+ CMCs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ballistics import ParameterError, ScanReadError, datasets, read_scan
from ballistics.batch import (
    SCHEMA_FIELDS,
    Manifest,
    all_pairs,
    map_scans,
    one_vs_many,
    pairs,
    read_results,
)
from ballistics.batch._cluster import WORKER_ENV, cluster_client
from ballistics.batch._files import TMP_SUFFIX
from ballistics.batch._manifest import scan_identity
from ballistics.batch._tiles import all_pairs_tiles, count_all_pairs_tiles, listed_tiles
from ballistics.comparison import PRESETS, compare, prepare

pytestmark = pytest.mark.slow

PATHS = datasets.fadul_paths("processed")[:3]          # Fadul 1-1, 1-2 (same slide), 2-1
PARAMS = PRESETS["default"].replace(rotation_range=(-27.0, -21.0), coarse_step=None)
ALL = {(0, 1), (0, 2), (1, 2)}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           env=dict(WORKER_ENV))
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def serial():
    """Serial compare of the three sample pairs, in this process."""
    prep = [prepare(read_scan(p, exhibit_id=p.stem)) for p in PATHS]
    return {(i, j): compare(prep[i], prep[j], preset=PARAMS) for i, j in sorted(ALL)}


def _stat(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _kill_a_busy_worker(client, runner: threading.Thread, timeout: float = 300) -> str:
    """SIGKILL the process of a worker as soon as it is computing a tile; its pid."""
    deadline = time.monotonic() + timeout
    while runner.is_alive() and time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items() if any("ballistics-tile" in str(k) for k in keys)]
        if busy:
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            time.sleep(0.5)  # inside the comparison by now
            os.kill(pid, signal.SIGKILL)
            return str(pid)
        time.sleep(0.05)
    raise AssertionError("no worker was computing a tile")


def _check_equal_serial(table, serial) -> None:
    rows = table.to_pylist()
    assert sorted((r["i"], r["j"]) for r in rows) == sorted(ALL)  # every pair exactly once
    for r in rows:
        ref = serial[(r["i"], r["j"])]
        assert r["error"] is None
        assert r["cmc_count"] == ref.cmc_count
        assert r["score"] == pytest.approx(ref.score, abs=1e-9)
        assert r["rotation_deg"] == pytest.approx(ref.rotation_deg, abs=1e-9)
        assert r["translation_dy_m"] == pytest.approx(ref.translation_m[0], abs=1e-12)
        assert r["translation_dx_m"] == pytest.approx(ref.translation_m[1], abs=1e-12)
        assert r["count_high"] == ref.method_counts["high"]
        full = json.loads(r["result_json"])
        assert full["cells"] == json.loads(ref.to_json())["cells"]


# ----------------------------------------------------------------------------- tiling

@pytest.mark.parametrize("n,size", [(2, 1), (3, 1), (7, 3), (9, 4), (10, 5), (17, 8)])
def test_tiles_cover_every_pair_once(n, size):
    tiles = list(all_pairs_tiles(n, size))
    got = [p for t in tiles for p in t.pairs]
    assert sorted(got) == [(i, j) for i in range(n) for j in range(i + 1, n)]
    assert len(tiles) == count_all_pairs_tiles(n, size)
    assert all(len(t.scan_indices) <= 2 * size and t.n_pairs == len(t.pairs) for t in tiles)
    assert {k for t in tiles for k in t.scan_indices} == set(range(n))
    assert len({t.filename for t in tiles}) == len(tiles)


def test_tiles_of_a_large_run_are_counted_without_generating_pairs():
    n, size = 100_000, 500
    tiles = all_pairs_tiles(n, size)
    assert sum(t.n_pairs for t in tiles) == n * (n - 1) // 2 == 4_999_950_000
    assert count_all_pairs_tiles(n, size) == 200 * 201 // 2


def test_listed_tiles_group_by_block():
    tiles = listed_tiles([(5, 0), (0, 5), (1, 2), (0, 1)], 2)
    assert [t.id for t in tiles] == ["00000-00000", "00000-00001", "00000-00002", "00002-00000"]
    assert tiles[0].pairs == ((0, 1),)


# ------------------------------------------------------------------ results and resume

def test_all_pairs_equals_serial_and_resumes_without_recomputing(client, serial, tmp_path):
    out = tmp_path / "run"
    s1 = all_pairs(PATHS, out, params=PARAMS, tile_size=1, client=client, max_tiles=1)
    assert (s1.tiles_computed, s1.n_tiles, s1.complete) == (1, 3, False)
    done = sorted(out.glob("tile-*.parquet"))
    assert len(done) == 1 and read_results(out).num_rows == 1
    before = _stat(done[0])
    # what a run killed during a write leaves behind: a temporary file, never a tile file
    leftover = out / f".tile-00001-00002.parquet.abc{TMP_SUFFIX}"
    leftover.write_bytes(b"half a parquet file")

    # resume, and kill a worker process while it computes a tile: Dask gives the tile to another
    result: dict = {}
    th = threading.Thread(target=lambda: result.update(
        s=all_pairs(PATHS, out, params=PARAMS, tile_size=1, client=client)))
    th.start()
    killed = _kill_a_busy_worker(client, th)
    th.join()
    s2 = result["s"]
    assert (s2.tiles_skipped, s2.tiles_computed, s2.pairs_computed, s2.complete) == (1, 2, 2, True)
    assert s2.tiles_failed == {}
    first_tile = done[0].stem.removeprefix("tile-")
    rerun_rows = [r for r in read_results(out).to_pylist() if r["tile"] != first_tile]
    assert len(rerun_rows) == 2 and killed not in {r["worker"].rsplit(":", 1)[1] for r in rerun_rows}
    assert _stat(done[0]) == before                      # finished tile not rewritten
    assert not leftover.exists()
    table = read_results(out, require_complete=True)
    _check_equal_serial(table, serial)
    assert table.column_names == [n for n, _ in SCHEMA_FIELDS]

    # every file records parameters, version and input checksums
    import pyarrow.parquet as pq
    manifest = Manifest.load(out)
    shas = {r.index: r.sha256 for r in manifest.scans}
    assert shas[0] == hashlib.sha256(PATHS[0].read_bytes()).hexdigest()
    for f in out.glob("tile-*.parquet"):
        meta = {k.decode(): v.decode() for k, v in pq.read_metadata(f).metadata.items()}
        assert meta["ballistics.manifest_digest"] == manifest.digest
        assert json.loads(meta["ballistics.compare"])["params"]["rotation_range"] == [-27.0, -21.0]
        inputs = json.loads(meta["ballistics.inputs"])
        assert all(x["sha256"] == shas[x["index"]] for x in inputs)
    row = table.to_pylist()[0]
    assert (row["a_sha256"], row["b_sha256"]) == (shas[row["i"]], shas[row["j"]])
    assert row["library_version"] == manifest.library_version
    assert json.loads(row["result_json"])["params"]["rotation_range"] == [-27.0, -21.0]

    # a third run has nothing left to do (and needs no cluster)
    s3 = all_pairs(PATHS, out, params=PARAMS, tile_size=1)
    assert (s3.tiles_skipped, s3.tiles_computed) == (3, 0)


def test_killed_cli_run_resumes_where_it_stopped(client, serial, tmp_path):
    """Kill a `ballistics batch all-pairs` process after its first tile; rerun the same command."""
    out = tmp_path / "killed"
    args = ["batch", "all-pairs", *map(str, PATHS), "-o", str(out), "--scheduler", client.scheduler.address,
            "--tile-size", "1", "--param", "rotation_range=(-27.0,-21.0)", "--param", "coarse_step=None",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "ballistics.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("tile-*.parquet")):
            assert proc.poll() is None, "the run ended before its first tile was written"
            assert time.monotonic() < deadline, "no tile file within 300 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {f.name: _stat(f) for f in out.glob("tile-*.parquet")}
    assert 1 <= len(finished) <= 2  # killed before the end

    from ballistics.cli import main
    assert main(args) == 0
    for name, st in finished.items():
        assert _stat(out / name) == st
    _check_equal_serial(read_results(out, require_complete=True), serial)


def test_one_vs_many_in_memory_scans_and_pair_errors(client, serial, tmp_path):
    a, b = (read_scan(p, exhibit_id=p.stem) for p in PATHS[:2])
    coarse = a.derive(a.data, "test: relabel spacing", spacing=(2 * a.spacing[0], 2 * a.spacing[1]))
    s = one_vs_many(a, [b, coarse], tmp_path / "ovm", params=PARAMS, client=client, keep_json=False)
    assert (s.n_pairs, s.pair_errors, s.complete) == (2, 1, True)
    rows = read_results(tmp_path / "ovm").to_pylist()
    assert [(r["i"], r["j"]) for r in rows] == [(0, 1), (0, 2)]
    assert rows[0]["error"] is None and rows[0]["cmc_count"] == serial[(0, 1)].cmc_count
    assert rows[0]["score"] == pytest.approx(serial[(0, 1)].score, abs=1e-9)
    assert rows[0]["result_json"] is None  # keep_json=False: flat columns only
    assert rows[1]["cmc_count"] is None and rows[1]["score"] is None
    assert rows[1]["error"].startswith("ComparisonError") and "spacing" in rows[1]["error"]
    # in-memory scans are identified by array, spacing and kind: same heights, other spacing = other scan
    assert rows[0]["a_sha256"] == scan_identity(a) != scan_identity(coarse) == rows[1]["b_sha256"]


def test_map_scans_reads_on_workers_and_reports_errors(client, tmp_path):
    bad = tmp_path / "not a scan.x3p"
    bad.write_bytes(b"PK\x03\x04 this is no archive")
    res = map_scans(lambda s: (s.name, s.shape), [*PATHS[:2], bad], client=client, on_error="record")
    assert [r.index for r in res] == [0, 1, 2]
    for r, p in zip(res[:2], PATHS):
        assert r.error is None and r.value == (p.stem, read_scan(p).shape)
    assert res[2].value is None and res[2].error.startswith(("ScanReadError", "ScanFormatError"))
    with pytest.raises(ScanReadError):
        map_scans(lambda s: s.shape, [bad], client=client)


# -------------------------------------------------------------------------- bad input

def test_bad_inputs_are_refused_before_anything_runs(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ParameterError, match="at least 2"):
        all_pairs(PATHS[:1], out)
    with pytest.raises(ParameterError, match="listed twice"):
        all_pairs([PATHS[0], PATHS[1], PATHS[0]], out)
    with pytest.raises(ScanReadError, match="does not exist"):
        all_pairs([PATHS[0], tmp_path / "missing.x3p"], out)
    with pytest.raises(ParameterError, match="list of file paths"):
        all_pairs(str(PATHS[0]), out)
    with pytest.raises(ParameterError, match="CompareParams"):
        all_pairs(PATHS, out, params={"rotation_range": (0, 1)})   # a dict: use a CompareParams
    with pytest.raises(ParameterError, match="Unknown preset"):
        all_pairs(PATHS, out, params="fast")
    with pytest.raises(ParameterError, match="Unknown batch option"):
        all_pairs(PATHS, out, tiles=3)
    with pytest.raises(ParameterError, match="Unknown method"):
        all_pairs(PATHS, out, method="best")
    with pytest.raises(ParameterError, match="tile_size"):
        all_pairs(PATHS, out, tile_size=0)
    with pytest.raises(ParameterError, match="not both"):
        all_pairs(PATHS, out, scheduler="tcp://127.0.0.1:1", client=object())
    with pytest.raises(ParameterError, match="n_workers"):
        all_pairs(PATHS, out, scheduler="tcp://127.0.0.1:1", n_workers=2)
    for bad, msg in [([], "empty"), ([(0, 3)], "out of range"), ([(1, 1)], "itself"),
                     ([(0, 1), (0, 1)], "twice"), ([(0, 1, 2)], "pair")]:
        with pytest.raises(ParameterError, match=msg):
            pairs(PATHS, bad, out)
    with pytest.raises(ParameterError, match="at least one scan"):
        one_vs_many(PATHS[0], [], out)
    assert not out.exists()  # nothing was written by any refused call

    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ParameterError, match="not a folder"):
        all_pairs(PATHS, afile)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="not empty"):
        all_pairs(PATHS, tmp_path / "busy")
    with pytest.raises(ParameterError, match="no batch run"):
        read_results(tmp_path / "busy")


def test_rerun_with_other_scans_or_params_is_refused(tmp_path):
    out = tmp_path / "run"
    s = all_pairs(PATHS, out, params=PARAMS, max_tiles=0)  # manifest only, nothing computed
    assert (s.tiles_computed, s.complete) == (0, False)
    manifest = (out / "manifest.json").read_bytes()
    with pytest.raises(ParameterError, match="comparison parameters"):
        all_pairs(PATHS, out, params=PARAMS.replace(rotation_range=(-30.0, 30.0)), max_tiles=0)
    with pytest.raises(ParameterError, match="scans"):
        all_pairs(PATHS[:2], out, params=PARAMS, max_tiles=0)
    with pytest.raises(ParameterError, match="tile size"):
        all_pairs(PATHS, out, params=PARAMS, tile_size=2, max_tiles=0)
    assert (out / "manifest.json").read_bytes() == manifest
    assert all_pairs(PATHS, out, params=PARAMS, max_tiles=0).manifest_digest == s.manifest_digest
    # one writer at a time: a second run into a folder being written is refused
    from filelock import FileLock
    with FileLock(str(out / ".batch.lock"), timeout=0), pytest.raises(ParameterError, match="another batch run"):
        all_pairs(PATHS, out, params=PARAMS, max_tiles=0)


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ParameterError, match="Cannot reach the Dask scheduler"), \
            cluster_client("tcp://127.0.0.1:9", timeout_s=1):
        pass


def _worker_env() -> dict:
    import os
    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}


def test_local_workers_keep_glibcs_adaptive_malloc():
    """The library's local cluster drops Dask's MALLOC_TRIM_THRESHOLD_ (it froze glibc's
    mmap threshold and made each comparison ~50 % slower in the workers), keeps one
    thread per worker, and leaves the caller's Dask configuration as it was."""
    import os

    import dask
    import distributed  # noqa: F401 - loads Dask's distributed defaults
    before = dask.config.get("distributed.nanny.pre-spawn-environ", None)
    assert before["MALLOC_TRIM_THRESHOLD_"]           # Dask's default, which the workers must not get
    # as a cluster started earlier in this process with Dask's defaults leaves it behind
    os.environ["MALLOC_TRIM_THRESHOLD_"] = str(before["MALLOC_TRIM_THRESHOLD_"])
    try:
        env_before = dict(os.environ)
        with cluster_client(n_workers=1) as c:
            envs = list(c.run(_worker_env).values())
        assert dict(os.environ) == env_before          # the caller's environment is untouched
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    assert envs and all(e["MALLOC_TRIM_THRESHOLD_"] is None for e in envs)
    assert all(e["NUMBA_NUM_THREADS"] == "1" and e["OMP_NUM_THREADS"] == "1" for e in envs)
    assert dask.config.get("distributed.nanny.pre-spawn-environ", None) == before


def test_importing_batch_starts_nothing():
    code = ("import sys, logging, ballistics.batch; "
            "print('distributed' in sys.modules, 'dask' in sys.modules, logging.getLogger().handlers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.split() == ["False", "False", "[]"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from ballistics.cli import main
    assert main(["batch", "all-pairs", str(PATHS[0]), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ballistics: error:") and "at least 2" in err and "\n" not in err
    assert main(["batch", "all-pairs", *map(str, PATHS), "-o", str(tmp_path / "o"), "--param", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ options and manifest

def test_options_and_parameters_are_validated_objects(tmp_path):
    from ballistics.batch import BatchOptions, compare_spec
    with pytest.raises(ParameterError, match="tile_size"):
        BatchOptions(tile_size=0)
    with pytest.raises(ParameterError, match="n_workers"):
        BatchOptions(n_workers=2, scheduler="tcp://127.0.0.1:1")
    assert compare_spec("cmcr", "original")["preset"] == "cmcr"
    spec = compare_spec(PARAMS, "convergence")
    assert spec["preset"] == "custom" and spec["params"] == PARAMS.to_dict()
    s = all_pairs(PATHS, tmp_path / "run", PARAMS, options=BatchOptions(tile_size=2), max_tiles=0)
    m = Manifest.load(tmp_path / "run")
    assert m.compare_params() == PARAMS and m.tile_size == 2 and m.digest == s.manifest_digest
    # a manifest whose parameters this engine would refuse is not a readable run
    text = (tmp_path / "run" / "manifest.json").read_text().replace('"rotation_step": 3.0', '"rotation_step": 1e-06')
    (tmp_path / "run" / "manifest.json").write_text(text)
    with pytest.raises(ParameterError, match="not a readable batch manifest"):
        Manifest.load(tmp_path / "run")
