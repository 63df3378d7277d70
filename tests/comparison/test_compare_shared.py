"""compare() on the real Fadul collection (../shared/data): cmcR agreement and separation."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from shared_files import shared_path

from ballistics import read_scan
from ballistics.comparison import compare, prepare

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def _cmcr_rows():
    ref = shared_path("fadul", "cmcR_reference", "counts_and_times.csv")
    return list(csv.DictReader(open(ref)))


def _cmcr_pair(row):
    n1, n2 = row["pair"].split(" vs ")
    if row["input"].startswith("fadul/processed"):
        paths = [shared_path("fadul", "processed", f"{n}.x3p") for n in (n1, n2)]
    else:   # the raw scans as cmcR 0.1.11's own preprocessing leaves them
        paths = [shared_path("fadul", "cmcR_reference", f"{n} processed by cmcR 0.1.11.x3p") for n in (n1, n2)]
    return [read_scan(p) for p in paths]


def test_cmcr_compatible_mode_agrees_with_cmcr(shared_data):
    """All six rows of cmcR 0.1.11's reference counts, exactly, from the original float64
    files (tests/test_compare.py checks the same rows on the shipped float32 copies)."""
    rows = _cmcr_rows()
    assert len(rows) == 6
    for row in rows:
        a, b = _cmcr_pair(row)
        res = compare(a, b, "original", preset="cmcr")
        d1, d2 = res.directions["a_to_b"], res.directions["b_to_a"]
        what = f"{row['input']} {row['pair']}"
        assert d1["original_count"] == int(row["original_A_ref"]), what
        assert d2["original_count"] == int(row["original_B_ref"]), what
        for d, col in ((d1, "A"), (d2, "B")):
            assert d["high_count"] == int(row[f"high_{col}_ref"]), what
            assert d["high_passed"] is (row[f"high_{col}_status"] == "passed"), what
        assert res.method_counts["high"] == int(row["combined_high"]), what
        # cmcR's registration: median of the cells' best (theta, x, y); cmcR's x is our row offset
        assert d1["rotation_deg"] == float(row["theta_A_ref_deg"]), what
        assert d1["cmcr_translation_px"][0] == float(row["dx_A_ref_px"]), what
        assert d1["cmcr_translation_px"][1] == float(row["dy_A_ref_px"]), what


def test_same_firearm_pairs_score_above_different(shared_data):
    truth = {Path(r["file"]).stem: r["firearm"]
             for r in csv.DictReader(open(shared_path("fadul", "ground_truth.csv")))}
    names = [n for n in sorted(truth)            # the known cases N-1, N-2 of four slides
             if "-" in n.split()[-1] and truth[n] in ("slide-1", "slide-4", "slide-7", "slide-9")]
    assert len(names) == 8
    prepared = {n: prepare(read_scan(shared_path("fadul", "processed", f"{n}.x3p"))) for n in names}
    km, knm = [], []
    for a, b in itertools.combinations(names, 2):
        r = compare(prepared[a], prepared[b])
        (km if truth[a] == truth[b] else knm).append(r.cmc_score)   # the CMC score (the learned one saw Fadul)
    assert len(km) == 4 and len(knm) == 24
    assert min(km) > max(knm)
    assert min(km) >= 10 and max(knm) <= 3


def test_different_dfsc_pistols_find_no_congruent_cells(shared_data):
    """Regression: a half-resolution fine stage after the coarse stage at a quarter of the
    resolution (fine_factor=2, coarse_factor=4) gave this different-pistol pair (SR9-B vs
    SR9-D, same conversion route, so no mirroring) 7 CMCs; the default gives 0."""
    a, b = (read_scan(shared_path("dfsc", f"{n}.x3p")) for n in ("K004dB1", "K004dD1"))
    res = compare(a, b, lr_system=None)
    assert res.cmc_count == 0 and not res.mirrored


@pytest.mark.parametrize("a_name, b_name", [("K004dB1", "K004dB3"), ("K004dD1", "K004dD3")])
def test_mirrored_dfsc_mates_are_found_mirrored(shared_data, a_name, b_name):
    """Regression (issue 11): on these TopMatch SR9 mates the wrong handedness also peaks
    high in one direction (a->b coarse 15 vs 18 and 19 vs 21 cells), so a one-direction
    rule missed the mirrored copy; the consistent peak of both directions finds it, with
    the same count as the files as given."""
    import numpy as np

    from ballistics import scan_from_array
    a, b = (read_scan(shared_path("dfsc", f"{n}.x3p")) for n in (a_name, b_name))
    pa = prepare(a)
    given = compare(pa, b, lr_system=None)
    flipped = compare(pa, scan_from_array(np.ascontiguousarray(b.data[::-1]), b.spacing, name="flipped"),
                      lr_system=None)
    assert not given.mirrored and given.cmc_count >= 10
    assert flipped.mirrored and flipped.cmc_count == given.cmc_count
    ev = flipped.handedness
    assert ev["mirrored"]["consistent_peak"] > ev["as_given"]["consistent_peak"] + 3
