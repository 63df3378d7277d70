"""Adding entries to a ``local-sift`` collection: the cost of the next search, with and without a delta.

Run (repository root, venv active; needs the developer cache of ``search_features.py``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_local_add.py --entries 100000 --adds 1 10 100

A collection of N entries is made from the stage-2 key points of the 624 base decoys
(real-derived and synthetic; entry ``i`` holds the postings of base ``i mod 624``, so the
postings are real, the entries are repeats).  The catalogue is a small in-memory stand-in
with the calls :class:`ballistics.database._local_stage1.LocalStage1` makes (generation,
live scans, blob numbers, one blob), so the measurement is the inverted file's own work,
not SQLite's.  For each number of added entries it reports the CPU seconds of the first
search after the addition:

* **rebuild**: the inverted file built again from every stored entry (what a database
  did before the delta part existed, and still does when the delta passes
  ``MERGE_SHARE`` of the main part);
* **delta**: :class:`LocalStage1` as shipped (the main part kept, the new entries in a
  delta), and that its answer equals the rebuilt index's.

It also reports what a later process pays instead of the first build: loading the saved
main part.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import _decoy_bases, _load, setup_logging  # noqa: E402


class MemoryCatalogue:
    """The few catalogue calls the local stage 1 makes, over a dict of blobs."""

    def __init__(self, blobs: dict[int, bytes]) -> None:
        self.blobs, self.gen = blobs, 0
        self.con = self

    def execute(self, sql: str, args: tuple) -> MemoryCatalogue:
        self._rows = [(n,) for n in self.blobs]
        return self

    def fetchall(self) -> list[tuple[int]]:
        return self._rows

    def generation(self) -> int:
        return self.gen

    def list_scans(self) -> list[dict[str, int]]:
        return [{"num": n} for n in self.blobs]

    def get_blob(self, num: int, name: str) -> bytes | None:
        return self.blobs.get(num)

    def add(self, num: int, blob: bytes) -> None:
        self.blobs[num] = blob
        self.gen += 1


def main(argv: list[str] | None = None) -> None:
    from ballistics.database._local_stage1 import LocalStage1
    from ballistics.database._local_stage1 import _load as load_main
    from ballistics.database._local_stage1 import _save as save_main
    from ballistics.retrieval._local_index import index_from_blobs, local_blob
    from ballistics.retrieval._verify_sift import Keypoints
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--adds", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--queries", type=int, default=5)
    a = ap.parse_args(argv)
    setup_logging()
    feats = _load()
    _, base_blobs, _ = _decoy_bases(feats, "both")
    local = [local_blob(Keypoints.from_bytes(b)) for b in base_blobs]
    queries = [Keypoints.from_bytes(b) for b in feats["real"]["blobs"][: a.queries]]
    cat = MemoryCatalogue({i: local[i % len(local)] for i in range(a.entries)})
    state = LocalStage1()
    c = time.process_time()
    state.sync(cat)
    t_build = time.process_time() - c
    print(f"{a.entries:,} entries: first build {t_build:.2f} s CPU", flush=True)
    with tempfile.TemporaryDirectory() as d:  # what a later process pays: loading the saved main part
        path = Path(d) / "main.npz"
        c = time.process_time()
        save_main(path, state.parts.main, state.main_nums)
        t_save = time.process_time() - c
        c = time.perf_counter()
        loaded = load_main(path)
        t_load = time.perf_counter() - c
        assert loaded is not None and loaded[1] == state.main_nums
        print(f"saved main part: {path.stat().st_size / 1e6:.0f} MB, save {t_save:.2f} s CPU, load {t_load:.2f} s wall "
              f"({t_build / max(t_load, 1e-9):.0f}x less than building it)", flush=True)
    nxt = a.entries
    for n in a.adds:
        for _ in range(n):
            cat.add(nxt, local[nxt % len(local)])
            nxt += 1
        c = time.process_time()
        parts = state.sync(cat)
        t_delta = time.process_time() - c
        c = time.process_time()
        full = index_from_blobs(sorted(cat.blobs), [cat.blobs[k] for k in sorted(cat.blobs)])
        t_full = time.process_time() - c
        same, ts = True, []
        for q in queries:
            c = time.process_time()
            got = parts.search(q, 1000)
            ts.append(time.process_time() - c)
            ref = full.search(q, 1000)
            same &= bool(np.array_equal(got[1], ref[1]) and np.allclose(got[0], ref[0], rtol=1e-6))
        ratio = t_full / max(t_delta, 1e-9)
        print(f"+{n:>5} entries: first search after the addition pays {t_delta:.3f} s CPU with the delta "
              f"(rebuild {t_full:.2f} s CPU, {ratio:.0f}x); search {statistics.median(ts) * 1e3:.0f} ms median; "
              f"answers equal the rebuilt index: {same}; rebuilds so far {state.rebuilds}", flush=True)


if __name__ == "__main__":
    main()
