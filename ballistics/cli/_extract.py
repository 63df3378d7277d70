"""``ballistics extract FILE --region breech-face|firing-pin -o OUT.x3p [--plot PNG]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import emit
from ._common import guard_output, shown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="find the primer and firing pin in a raw scan and extract the breech face or firing pin",
        description="Locate the primer edge and the firing-pin impression in a raw scan (x3p height map "
                    "or PNG/TIFF image), cut out the requested region, level it, band-pass filter it and "
                    "resample it; write the result as x3p with the full provenance.",
    )
    p.add_argument("file", help="raw scan: x3p, PNG or TIFF")
    p.add_argument("--region", choices=["breech-face", "firing-pin"], default="breech-face",
                   help="which region to extract (default: breech-face)")
    p.add_argument("-o", "--output", help="output x3p file (default: print a summary only)")
    p.add_argument("--plot", nargs="?", const="", default=None, metavar="PNG",
                   help="save a PNG of the scan with the found regions drawn on it "
                        "(default name: OUTPUT with .png, or FILE stem + _regions.png)")
    p.add_argument("--spacing", type=float, default=None, help="pixel size in metres for images without one")
    p.add_argument("--target-spacing", type=float, default=None,
                   help="output pixel size in metres "
                        "(default: 6.25e-6 for the breech face, input's for the firing pin)")
    p.add_argument("--bandpass", type=float, nargs=2, default=None, metavar=("SHORT", "LONG"),
                   help="band-pass cut-off wavelengths in metres "
                        "(default 16e-6 500e-6 breech face, 8e-6 250e-6 firing pin)")
    p.add_argument("--level-order", type=int, choices=[1, 2], default=None,
                   help="order of the median-fitted trend surface (default 1 breech face, 2 firing pin)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT and the figure if they exist")
    p.add_argument("--json", action="store_true", help="print the result summary as JSON")
    p.set_defaults(func=run)


def _plot_path(args: argparse.Namespace) -> str | None:
    if args.plot is None:
        return None
    if args.plot:
        return str(args.plot)
    if args.output:
        return str(Path(args.output).with_suffix(".png"))
    return str(Path(args.file).with_suffix("").name + "_regions.png")


def _write_outputs(args: argparse.Namespace, scan, regions, out, plot_path: str | None) -> None:
    """The figure, then the surface; a figure this call wrote is removed if the surface fails."""
    from ..reading import write_x3p
    from ..review.plot import plot_regions

    existed = plot_path is not None and Path(plot_path).exists()
    if plot_path:
        title = f"{shown(scan.name)} ({scan.kind}) - confidence {regions.confidence:.2f}"
        plot_regions(scan, regions, plot_path, title=title)
    try:
        if args.output:
            write_x3p(out, args.output)
    except BaseException:
        if plot_path and not existed:
            Path(plot_path).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..features import extract_breech_face, extract_firing_pin, find_regions
    from ..features._extract import _validate
    from ..reading import read_scan

    plot_path = _plot_path(args)
    outputs = [p for p in (args.output, plot_path) if p]
    if len(outputs) == 2 and Path(outputs[0]).absolute() == Path(outputs[1]).absolute():
        from ..errors import OutputError
        raise OutputError(f"the figure {shown(plot_path)} would overwrite the output; choose another --plot path")
    for path, what in ((args.output, "output"), (plot_path, "figure")):
        if path:
            guard_output(path, (args.file,), force=args.force, what=what)
    kw = {}
    if args.target_spacing is not None:
        kw["target_spacing_m"] = args.target_spacing
    if args.bandpass is not None:
        kw["bandpass_m"] = tuple(args.bandpass)
    if args.level_order is not None:
        kw["level_order"] = args.level_order
    with tqdm(total=3, desc="extract", unit="step", disable=args.json, leave=False) as bar:
        scan = read_scan(args.file, spacing=args.spacing)
        bar.update()
        _validate(scan, "ballistics extract")
        regions = find_regions(scan)
        bar.update()
        fn = extract_breech_face if args.region == "breech-face" else extract_firing_pin
        out = fn(scan, regions=regions, **kw)
        bar.update()
    _write_outputs(args, scan, regions, out, plot_path)
    g = out.region
    assert g is not None  # the extractors always record the region they cut
    info = {
        "file": args.file,
        "region": args.region,
        "output": args.output,
        "plot": plot_path,
        "shape": list(out.shape),
        "spacing_m": list(out.spacing),
        "missing_fraction": round(out.missing_fraction, 4),
        "geometry": {k: v for k, v in g.items()
                     if k in ("type", "centre_m", "source_centre_m", "primer_radius_m", "firing_pin_radius_m",
                              "outer_radius_m", "inner_radius_m", "confidence")},
    }
    if args.json:
        emit(info, True)
        return 0
    print(f"file:              {args.file}")
    print(f"region:            {args.region} ({out.shape[0]} x {out.shape[1]} px at {out.spacing[1] * 1e6:.4g} um, "
          f"{100 * out.missing_fraction:.1f} % NaN)")
    print(f"primer:            centre (y, x) = ({regions.centre_m[0] * 1e3:.3f}, {regions.centre_m[1] * 1e3:.3f}) mm, "
          f"r = {regions.primer_radius_m * 1e3:.3f} mm")
    print(f"firing-pin rim:    centre (y, x) = ({regions.firing_pin_centre_m[0] * 1e3:.3f}, "
          f"{regions.firing_pin_centre_m[1] * 1e3:.3f}) mm, r = {regions.firing_pin_radius_m * 1e3:.3f} mm")
    print(f"kept radii:        outer {g['outer_radius_m'] * 1e3:.3f} mm"
          + (f", inner {g['inner_radius_m'] * 1e3:.3f} mm" if g.get("inner_radius_m") else ""))
    print(f"confidence:        {regions.confidence:.2f}")
    if args.output:
        print(f"written:           {args.output}")
    if plot_path:
        print(f"figure:            {plot_path}")
    return 0
