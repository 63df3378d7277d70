"""Benchmark: preprocessing a raw primer scan (region finding + breech-face extraction).

Run from the repository root::

    python benchmarks/bench_preprocess.py [--repeat 5]

Everything runs on ONE core (BLAS / OpenCV threads pinned to 1).  For each raw scan
it times :func:`ballistics.extract_breech_face` and, in the same run, a
straightforward NumPy/SciPy implementation of the same pipeline (full-resolution
region finding with scikit-image's RANSAC, IRLS on every pixel, ``scipy.ndimage``
Gaussian filters at full resolution), and prints the speed ratio.  It also prints
the agreement (IoU of valid regions, height correlation after alignment) with cmcR
0.1.11's output for the same raw files, and saves a figure of the regions found on
every raw scan available (3-D and 2-D) to ``benchmarks/out/`` for a person to check.

The reference: cmcR 0.1.11 needs 10-18 s to preprocess one raw Fadul scan
(``../shared/data/fadul/cmcR_reference/README.md``).

``--only-full`` runs only the fully-measured-primer section: the
topography path of :func:`ballistics.find_regions` on real Fadul scans made fully
measured, against the measured-area path on the same scans, and on synthetic primers
of known geometry.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from agreement import surface_agreement  # benchmarks/agreement.py, beside this script
from scipy import ndimage as ndi

import ballistics as bl
from ballistics import datasets
from ballistics.features import extract_breech_face, extract_firing_pin, find_regions

cv2.setNumThreads(1)


def plot_regions(scan: bl.Scan, regions, path: Path, title: str | None = None) -> None:
    """Save a PNG of ``scan`` with its ``regions`` drawn on it."""
    from ballistics import plot
    h, w = scan.shape
    fig = plot.new_figure((7.0, 7.0 * h / max(w, 1) + 1.2))
    plot.regions(scan, regions, ax=fig.add_subplot(), title=title or scan.name)
    Path(path).write_bytes(plot.figure_to_png(fig, dpi=110))

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SHARED = Path(os.environ.get("BALLISTICS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SIG = np.sqrt(np.log(2) / (2 * np.pi ** 2))  # ISO 16610-21 sigma per cut-off


# ----------------------------------------------------------------- baseline
def baseline_breech_face(scan: bl.Scan) -> np.ndarray:
    """Straightforward NumPy/SciPy/scikit-image version of the same pipeline (no coarse
    grid, no OpenCV, no decimate-before-long-filter): what one writes first."""
    from skimage.measure import CircleModel, ransac

    warnings.simplefilter("ignore")
    d = scan.data
    sp = scan.spacing[1]
    valid = np.isfinite(d)
    body = ndi.binary_fill_holes(ndi.binary_opening(valid, iterations=8))
    lab, _ = ndi.label(body)
    body = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    edge = body & ~ndi.binary_erosion(body)
    pts = np.argwhere(edge).astype(float)
    model, _ = ransac(pts, CircleModel, min_samples=3, residual_threshold=25e-6 / sp, max_trials=400,
                      rng=0)
    (cy, cx), r = model.center, model.radius
    yy, xx = np.indices(d.shape)
    rp = np.hypot(yy - cy, xx - cx)
    holes = ~valid & (rp < 0.9 * r)
    lab, _ = ndi.label(holes)
    sz = np.bincount(lab.ravel())
    sz[0] = 0
    hole = lab == np.argmax(sz)
    hpts = np.argwhere(hole & ~ndi.binary_erosion(hole)).astype(float)
    hm, _ = ransac(hpts, CircleModel, min_samples=3, residual_threshold=25e-6 / sp, max_trials=400, rng=0)
    (hy, hx), hr = hm.center, hm.radius
    z = np.where(valid, d, 0.0)
    w = valid.astype(float)
    zs = ndi.gaussian_filter(z, 12.5e-6 / sp) / np.maximum(ndi.gaussian_filter(w, 12.5e-6 / sp), 1e-6)
    gy, gx = np.gradient(zs, sp)
    strong = (np.hypot(gy, gx) > np.tan(np.radians(15))) & valid
    strong &= (np.hypot(yy - hy, xx - hx) > hr + 100e-6 / sp) & (rp < 0.85 * r)
    spts = np.argwhere(strong).astype(float)
    fm, _ = ransac(spts, CircleModel, min_samples=3, residual_threshold=25e-6 / sp, max_trials=400, rng=0)
    (fy, fx), fr = fm.center, fm.radius
    keep = (rp < r - 75e-6 / sp) & (np.hypot(yy - fy, xx - fx) > fr + 150e-6 / sp)
    d = np.where(keep, d, np.nan)
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    d = d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    v = np.isfinite(d)
    iy, ix = np.nonzero(v)
    a = np.column_stack([np.ones(iy.size), iy, ix])
    zz = d[v]
    coef = np.linalg.lstsq(a, zz, rcond=None)[0]
    for _ in range(30):  # IRLS median plane on every pixel
        wt = 1 / np.maximum(np.abs(zz - a @ coef), 1e-12)
        coef = np.linalg.lstsq(a * np.sqrt(wt)[:, None], zz * np.sqrt(wt), rcond=None)[0]
    lev = np.full(d.shape, np.nan)
    lev[v] = zz - a @ coef
    z = np.where(v, lev, 0.0)
    w = v.astype(float)

    def nc(s: float) -> np.ndarray:
        return ndi.gaussian_filter(z, s) / np.maximum(ndi.gaussian_filter(w, s), 1e-6)

    out = nc(SIG * 16e-6 / sp) - nc(SIG * 500e-6 / sp)
    out[~v] = np.nan
    f = int(round(6.25e-6 / sp))
    return out[::f, ::f]


# ----------------------------------------------------------------- helpers
def timed(fn, *a, repeat: int = 5, **k):
    """Median wall time and median CPU time of this process (the machine may be shared:
    CPU time is what one core spends on the job, wall time includes waiting)."""
    fn(*a, **k)  # warm-up (imports, caches)
    ts, cs = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        res = fn(*a, **k)
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return res, statistics.median(ts), statistics.median(cs)


def _annulus_iou(ra, rb, shape, spacing) -> float:
    ma, mb = ra.breech_face_mask(shape, spacing), rb.breech_face_mask(shape, spacing)
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


def fully_measured_section(repeat: int) -> None:
    """The topography path on fully measured versions of real scans.

    Each real Fadul raw scan (3.125 um from ../shared/data and the bundled 6.25 um
    copies) is made fully measured by :func:`ballistics.synth.fill_unmeasured` (case
    head ``step`` above the primer plane, a 200 um crater in the firing-pin hole) and
    its regions are compared with the measured-area path on the original scan.  Then
    synthetic fully measured primers against their known geometry, and the other real
    files for no-crash behaviour.  Figures go to benchmarks/out/.
    """
    from ballistics import synth
    from ballistics.errors import BallisticsError

    print("\n## Fully measured primers: topography path vs measured-area path, same real scan")
    print("(differences in um; IoU of the breech-face annuli on the scan grid; step = case head above primer)")
    print(f"{'scan':30s} {'step um':>7s} {'centre':>6s} {'primer r':>8s} {'fp centre':>9s} {'inner r':>7s} "
          f"{'outer r':>7s} {'IoU':>6s} {'cpu s':>6s}")
    raw = []
    raw_dir = SHARED / "fadul" / "raw"
    if raw_dir.exists():
        raw += [(f"{p.stem} (3.125 um)", bl.read_scan(p)) for p in sorted(raw_dir.glob("*.x3p"))]
    raw += [(f"{s.name} (bundled 6.25 um)", s) for s in datasets.fadul("raw")]
    ious = []
    for label, scan in raw:
        rm = find_regions(scan)
        for step in (20e-6, 80e-6, 150e-6):
            full = synth.fill_unmeasured(scan, step_m=step)
            rf, _, c = timed(find_regions, full, repeat=repeat)
            iou = _annulus_iou(rf, rm, scan.shape, scan.spacing)
            ious.append(iou)
            d = lambda p, q: float(np.hypot(p[0] - q[0], p[1] - q[1]) * 1e6)
            print(f"{label:30s} {step * 1e6:7.0f} {d(rf.centre_m, rm.centre_m):6.1f} "
                  f"{(rf.primer_radius_m - rm.primer_radius_m) * 1e6:+8.1f} "
                  f"{d(rf.firing_pin_centre_m, rm.firing_pin_centre_m):9.1f} "
                  f"{(rf.breech_face_inner_radius_m - rm.breech_face_inner_radius_m) * 1e6:+7.1f} "
                  f"{(rf.breech_face_outer_radius_m - rm.breech_face_outer_radius_m) * 1e6:+7.1f} {iou:6.3f} {c:6.3f}")
            if step == 80e-6:
                name = label.replace(" ", "_").replace("(", "").replace(")", "").replace(".", "p")
                plot_regions(full, rf, OUT / f"regions_full_{name}.png",
                             title=f"{label}, filled (case head +80 um, crater): method {rf.method}, "
                                   f"conf {rf.confidence:.2f}")
    print(f"IoU over {len(ious)} runs: min {min(ious):.3f}, median {statistics.median(ious):.3f}")
    print("\nextracted breech faces, filled (80 um step) vs original scan (aligned):")
    for label, scan in raw:
        ag = surface_agreement(extract_breech_face(synth.fill_unmeasured(scan)).data,
                               extract_breech_face(scan).data)
        print(f"{label:30s} IoU {ag['iou']:.3f}  height correlation {ag['correlation']:.3f} "
              f"(interior {ag['correlation_interior']:.3f})")

    print("\n## Synthetic fully measured primers against their known geometry (um)")
    print(f"{'seed':>4s} {'centre':>6s} {'r - pocket r':>12s} {'fp centre':>9s} {'fp r':>6s} "
          f"{'inner r - rim':>13s} {'cpu s':>6s}")
    for seed in range(10):
        scan, t = synth.make_primer(seed)
        r, _, c = timed(find_regions, scan, repeat=1)
        d = float(np.hypot(*np.subtract(r.centre_m, t["centre_m"])) * 1e6)
        df = float(np.hypot(*np.subtract(r.firing_pin_centre_m, t["firing_pin_centre_m"])) * 1e6)
        print(f"{seed:4d} {d:6.1f} {(r.primer_radius_m - t['pocket_radius_m']) * 1e6:+12.1f} {df:9.1f} "
              f"{(r.firing_pin_radius_m - t['firing_pin_radius_m']) * 1e6:+6.1f} "
              f"{(r.breech_face_inner_radius_m - t['firing_pin_radius_m']) * 1e6:+13.1f} {c:6.3f}")
        if seed < 2:
            plot_regions(scan, r, OUT / f"regions_full_synthetic_{seed}.png")

    print("\n## Other real files, as read and (height maps with missing data) filled")
    others = []
    for sub, pat in (("dfsc", "*.x3p"), ("alicona", "*"), ("nbide_2d", "*.png")):
        if (SHARED / sub).exists():
            others += [p for p in sorted((SHARED / sub).glob(pat)) if p.suffix in (".x3p", ".al3d", ".png")]
    for p in others:
        scan = bl.read_scan(p)
        variants = [("as read", scan)]
        if scan.kind == "height" and scan.missing_fraction > 0.05:
            variants.append(("filled", synth.fill_unmeasured(scan)))
        for what, s in variants:
            try:
                r = find_regions(s)
                out = (f"{r.method:13s} primer r {r.primer_radius_m * 1e3:.3f} mm, rim r "
                       f"{r.firing_pin_radius_m * 1e3:.3f} mm, conf {r.confidence:.2f}")
                if p.parent.name == "dfsc" and what == "filled":
                    plot_regions(s, r, OUT / f"regions_full_{p.stem}.png")
            except BallisticsError as exc:
                out = f"{type(exc).__name__}: {str(exc)[:90]}"
            print(f"{p.name:36s} {what:8s} {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-repeat", type=int, default=1)
    ap.add_argument("--only-full", action="store_true",
                    help="run only the fully-measured-primer section")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only_full:
        fully_measured_section(args.repeat)
        return 0
    print(f"ballistics {bl.__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"OpenCV {cv2.__version__}, {platform.processor() or platform.machine()}; 1 thread")

    raw_scans: list[tuple[str, bl.Scan]] = []
    raw_dir = SHARED / "fadul" / "raw"
    if raw_dir.exists():
        raw_scans += [(f"{p.stem} (3.125 um)", bl.read_scan(p)) for p in sorted(raw_dir.glob("*.x3p"))]
    else:
        print(f"(shared data not found at {SHARED}: timing the bundled 6.25 um raw scans only)")
    raw_scans += [(f"{s.name} (bundled 6.25 um)", s) for s in datasets.fadul("raw")]

    print("\n## Breech-face preprocessing of raw scans (median of", args.repeat, "runs)")
    print("(wall = elapsed seconds, cpu = CPU seconds of this single-threaded process)")
    print(f"{'scan':30s} {'px':>11s} {'ours wall':>9s} {'ours cpu':>8s} {'base wall':>9s} {'base cpu':>8s} "
          f"{'ratio cpu':>9s} {'ratio wall':>10s} {'IoU/corr vs base':>16s}")
    rows = []
    for label, scan in raw_scans:
        bf, t_ours, c_ours = timed(extract_breech_face, scan, repeat=args.repeat)
        base, t_base, c_base = timed(baseline_breech_face, scan, repeat=args.baseline_repeat)
        agr = surface_agreement(bf.data, base)
        rows.append((label, scan.shape, t_ours, t_base, c_ours, c_base))
        print(f"{label:30s} {scan.shape[0]:>5d}x{scan.shape[1]:<5d} {t_ours:9.3f} {c_ours:8.3f} {t_base:9.3f} "
              f"{c_base:8.3f} {c_base / c_ours:8.1f}x {t_base / t_ours:9.1f}x  "
              f"{agr['iou']:.3f}/{agr['correlation']:.3f}")
    full = [r for r in rows if "3.125" in r[0]]
    if full:
        mo, mb = statistics.mean(r[2] for r in full), statistics.mean(r[3] for r in full)
        co, cb = statistics.mean(r[4] for r in full), statistics.mean(r[5] for r in full)
        print(f"\nraw Fadul scans at 3.125 um (mean of {len(full)}): ours {co:.3f} s CPU / {mo:.3f} s wall per scan "
              f"(target < 0.5 s on one core); straightforward NumPy/SciPy baseline {cb:.3f} s CPU / {mb:.3f} s wall; "
              f"ratio baseline/ours = {cb / co:.1f}x (CPU), {mb / mo:.1f}x (wall). "
              f"cmcR 0.1.11 needs 10-18 s per scan (its README): {10 / mo:.0f}-{18 / mo:.0f}x our wall time.")

    # agreement with cmcR
    ref_dir = SHARED / "fadul" / "cmcR_reference"
    if ref_dir.exists():
        print("\n## Agreement with cmcR 0.1.11 on the same raw files (aligned by height cross-correlation)")
        print(f"{'scan':12s} {'reference':28s} {'IoU':>6s} {'corr':>6s} {'corr>8px from edge':>19s} {'shift px':>9s}")
        for p in sorted(raw_dir.glob("*.x3p")):
            bf = extract_breech_face(bl.read_scan(p))
            for what, rp in (("cmcR 0.1.11 (current)", ref_dir / f"{p.stem} processed by cmcR 0.1.11.x3p"),
                             ("fadul/processed (2020)", SHARED / "fadul" / "processed" / p.name)):
                if rp.exists():
                    a = surface_agreement(bf.data, bl.read_scan(rp).data)
                    print(f"{p.stem:12s} {what:28s} {a['iou']:6.3f} {a['correlation']:6.3f} "
                          f"{a['correlation_interior']:19.3f} {a['shift']!s:>9s}")

    # firing pin and 2-D images
    print("\n## Other timings (median of", args.repeat, "runs)")
    nbide = sorted((SHARED / "nbide_2d").glob("*.png")) if (SHARED / "nbide_2d").exists() else []
    others = [(label, s) for label, s in raw_scans[:1]] + [(p.stem + " (2-D)", bl.read_scan(p)) for p in nbide]
    for label, scan in others:
        _, t_reg, c_reg = timed(find_regions, scan, repeat=args.repeat)
        _, t_bf, c_bf = timed(extract_breech_face, scan, repeat=args.repeat)
        _, t_fp, c_fp = timed(extract_firing_pin, scan, repeat=args.repeat)
        print(f"{label:30s} {scan.shape[0]:>5d}x{scan.shape[1]:<5d} "
              f"CPU (wall) s: find_regions {c_reg:.3f} ({t_reg:.3f}), "
              f"breech face {c_bf:.3f} ({t_bf:.3f}), firing pin {c_fp:.3f} ({t_fp:.3f})")

    # figures of every raw scan
    figs = []
    for label, scan in raw_scans + [(p.stem + " (2-D)", bl.read_scan(p)) for p in nbide]:
        reg = find_regions(scan)
        name = label.replace(" ", "_").replace("(", "").replace(")", "").replace(".", "p")
        path = OUT / f"regions_{name}.png"
        plot_regions(scan, reg, path, title=f"{label}: primer r={reg.primer_radius_m * 1e3:.3f} mm, "
                                          f"firing-pin rim r={reg.firing_pin_radius_m * 1e3:.3f} mm, "
                                          f"conf {reg.confidence:.2f}")
        figs.append(path)
    print(f"\nfigures of the found regions ({len(figs)}) saved in {OUT.relative_to(ROOT)}/:")
    for p in figs:
        print("  ", p.name)
    fully_measured_section(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
