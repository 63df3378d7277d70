"""Stage 2 per candidate: the compiled row minima and hypotheses against the NumPy version they replaced.

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    OMP_NUM_THREADS=1 python benchmarks/bench_stage2.py --queries 14 --baseline 1cb791e

Queries: every 4th of the 54 real breech faces (as given and mirrored, as a search
computes them); candidates: the stored key points of all 54 real scans and the 624 base
decoys.  Each query verifies every candidate with the engine's ``verify`` and with the
baseline's (``ballistics/retrieval/_verify_sift.py`` at commit ``--baseline``, read with
``git show`` and run beside the engine in this process: its row minima and its RANSAC
are NumPy array expressions).  It prints the CPU time per candidate of both (one thread,
interleaved per query so that load on the machine affects both alike), their ratio, and
how many verifications agree in inliers, matches and handedness.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import _decoy_bases, _load, real_scans, setup_logging  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def baseline_module(commit: str) -> types.ModuleType:
    """The stage-2 module of ``commit``, run against this engine's key points."""
    import ballistics.retrieval._verify_sift as new
    src = subprocess.run(["git", "show", f"{commit}:ballistics/retrieval/_verify_sift.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("ballistics.retrieval._verify_sift_baseline")
    mod.__package__ = "ballistics.retrieval"
    sys.modules[mod.__name__] = mod        # its dataclasses look their module up
    exec(compile(src, f"{commit}:_verify_sift.py", "exec"), mod.__dict__)
    mod.Keypoints = new.Keypoints          # one key-point class: the engine's
    return mod


def queries_and_candidates() -> tuple[list, list]:
    """The real breech faces (queries) and the stored key points of the real scans and base decoys."""
    from ballistics.retrieval._verify_sift import Keypoints
    feats = _load()
    cands = [Keypoints.from_bytes(b) for b in feats["real"]["blobs"]]
    cands += [Keypoints.from_bytes(b) for b in _decoy_bases(feats, "both")[1]]
    for c in cands:                        # descriptors as float32 once, as a cached stored entry has them
        _ = c.desc_f32, c.sqnorm
    return real_scans()[0], cands


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=14, help="queries (every 4th real scan)")
    ap.add_argument("--baseline", default="1cb791e", help="commit of the NumPy stage 2")
    a = ap.parse_args(argv)
    setup_logging()
    from ballistics.retrieval._verify_sift import query_keypoints, verify
    old = baseline_module(a.baseline)
    scans, cands = queries_and_candidates()
    qis = list(range(0, len(scans), 4))[: a.queries]
    t_new = t_old = 0.0
    n = same = same_inl = 0
    for qi in qis:
        qs = query_keypoints(scans[qi])
        verify(qs, cands[0]), old.verify(qs, cands[0])   # compiled and warm before timing
        c0 = time.process_time()
        r_new = [verify(qs, c) for c in cands]
        c1 = time.process_time()
        r_old = [old.verify(qs, c) for c in cands]
        c2 = time.process_time()
        t_new += c1 - c0
        t_old += c2 - c1
        for x, y in zip(r_new, r_old):
            n += 1
            same_inl += x.inliers == y.inliers
            same += (x.inliers, x.matches, x.mirrored) == (y.inliers, y.matches, y.mirrored)
        print(f"query {qi}: engine {1e3 * (c1 - c0) / len(cands):.3f} ms, baseline "
              f"{1e3 * (c2 - c1) / len(cands):.3f} ms per candidate", flush=True)
    print(f"{n} verifications ({len(qis)} queries x {len(cands)} candidates): engine "
          f"{1e3 * t_new / n:.3f} ms, baseline {1e3 * t_old / n:.3f} ms CPU per candidate, "
          f"ratio {t_old / t_new:.2f}x; same inliers {same_inl}/{n}, same inliers, matches and "
          f"handedness {same}/{n}")


if __name__ == "__main__":
    main()
