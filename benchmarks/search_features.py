"""Signatures and key points of the real and synthetic scans, and the real-derived decoys (cached).

Run: ``python benchmarks/search_features.py {features|decoys-real} [options]``
(or ``python benchmarks/bench_search.py WHAT``);
see ``benchmarks/results_index.md`` for the commands and results.

The cache goes to ``benchmarks/out/search_features.pkl`` unless ``--cache PATH`` says
otherwise (the other search benchmarks read it from the same option).  A small cache,
built in about a minute, for a quick run of the other benchmarks (the test suite
uses one); its numbers are not those of the write-ups::

    python benchmarks/bench_search.py features --cache /tmp/small.pkl --train-firearms 8 --decoy-firearms 10
    python benchmarks/bench_search.py decoys-real --cache /tmp/small.pkl --copies 1
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    _cv1,
    _load,
    augment,
    cache_path,
    log,
    parser,
    real_scans,
    setup_logging,
    synth_scans,
)


def cmd_features(a: argparse.Namespace) -> None:
    """Signatures (synth-trained and shipped codebooks) and stage-2 key points."""
    from ballistics.retrieval._signature import signature, train_codebook
    from ballistics.retrieval._verify_sift import keypoints
    _cv1()
    rng = np.random.default_rng(7)
    t = time.process_time()
    train = synth_scans(a.train_firearms, 3, seed=1001)
    train = train + [augment(s, rng) for s in train]
    cb = train_codebook(train, seed=1)
    log.info("synth codebook trained on %d synthetic surfaces in %.1f s CPU", len(train), time.process_time() - t)
    scans, names, firearms, source = real_scans()
    decoys = synth_scans(a.decoy_firearms, 2, seed=5000)
    feats: dict = {"names": names, "firearms": firearms, "source": source, "codebook_synth": cb,
                   "n_decoys": len(decoys)}
    for label, group in (("real", scans), ("decoy", decoys)):
        sig_s, sig_ship, blobs, tk, ts = [], [], [], [], []
        for s in group:
            c0 = time.process_time()
            sig_s.append(signature(s, codebook=cb))
            c1 = time.process_time()
            sig_ship.append(signature(s))
            c2 = time.process_time()
            blobs.append(keypoints(s).to_bytes())
            tk.append(time.process_time() - c2)
            ts.append(c1 - c0)
        feats[label] = {"sig_synth": np.array(sig_s), "sig_shipped": np.array(sig_ship), "blobs": blobs,
                        "kp_cpu_s": tk, "sig_cpu_s": ts}
        log.info("%s: %d scans, signature %.3f s CPU, key points %.3f s CPU (median), blob %.1f kB",
                 label, len(group), np.median(ts), np.median(tk), np.mean([len(b) for b in blobs]) / 1e3)
    cache = cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache, "wb") as f:
        pickle.dump(feats, f)
    print(f"features cached in {cache}")


def cmd_decoys_real(a: argparse.Namespace) -> None:
    """Harder decoys: augmented copies of the real scans (rotation, mirror, noise, masks, resampling).

    A query never sees decoys derived from its own firearm (they are removed from its
    search), so every decoy it meets is real texture of another firearm.
    """
    from ballistics.retrieval._signature import signature
    from ballistics.retrieval._verify_sift import keypoints
    _cv1()
    feats = _load()
    scans, names, firearms, _ = real_scans()
    rng = np.random.default_rng(11)
    sig, blobs, base_fa = [], [], []
    for s, f in zip(scans, firearms):
        for _ in range(a.copies):
            t = augment(s, rng)
            sig.append(signature(t, codebook=feats["codebook_synth"]))
            blobs.append(keypoints(t).to_bytes())
            base_fa.append(f)
    feats["decoy_real"] = {"sig_synth": np.array(sig), "blobs": blobs, "firearm": base_fa}
    with open(cache_path(), "wb") as fh:
        pickle.dump(feats, fh)
    print(f"{len(sig)} real-derived decoys cached in {cache_path()}")


COMMANDS = {"features": cmd_features, "decoys-real": cmd_decoys_real}


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "features").parse_args(argv)
    setup_logging()
    COMMANDS[a.what](a)


if __name__ == "__main__":
    main()
