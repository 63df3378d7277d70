"""How the bundled sample in ``ballistics/datasets/data`` was made (a developer tool, run once).

    python tools/make_sample.py ../shared/data

* six processed Fadul breech faces (slides 1, 2 and 3, two fires each; CSAFE
  cartridgeCaseScans, CC-BY 4.0), stored unchanged at 6.25 um as float32;
* three raw Fadul scans (1-1, 1-2, 2-1; NIST Ballistics Toolmark Research Database),
  block-averaged 2 x 2 (NaN-aware) from 3.125 um to 6.25 um and stored as float32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ballistics.reading import read_scan, write_x3p

PROCESSED = ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2", "Fadul 3-1", "Fadul 3-2"]
RAW = ["Fadul 1-1", "Fadul 1-2", "Fadul 2-1"]


def block_nanmean(z: np.ndarray, k: int) -> np.ndarray:
    """Average ``k x k`` blocks ignoring NaN; a block with under half its pixels valid is NaN."""
    h, w = (z.shape[0] // k) * k, (z.shape[1] // k) * k
    b = z[:h, :w].reshape(h // k, k, w // k, k)
    valid = np.isfinite(b)
    n = valid.sum(axis=(1, 3))
    s = np.where(valid, b, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n
    out[n < (k * k) / 2] = np.nan
    return out


def main(shared: str) -> None:
    """Write the sample files from the ``shared`` real-scan collection (see the module docstring)."""
    out = Path(__file__).resolve().parents[1] / "ballistics" / "datasets" / "data"
    out.mkdir(exist_ok=True)
    for name in PROCESSED:
        s = read_scan(Path(shared) / "fadul" / "processed" / f"{name}.x3p")
        write_x3p(s, out / f"{name} processed.x3p", dtype="float32")
    for name in RAW:
        s = read_scan(Path(shared) / "fadul" / "raw" / f"{name}.x3p")
        d = s.derive(block_nanmean(s.data, 2), "downsample", {"factor": 2, "method": "block NaN-mean"},
                     spacing=(s.spacing[0] * 2, s.spacing[1] * 2))
        write_x3p(d, out / f"{name} raw.x3p", dtype="float32")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
