"""Handedness: compare() also searches b mirrored, reports it, warns, and the
extra search raises no different-firearm count (bundled Fadul sample)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ballistics import ParameterError, datasets, scan_from_array
from ballistics.comparison import Comparison, align, aligned_pair, compare, prepare


@pytest.fixture(scope="module")
def fadul():
    return datasets.fadul("processed")


@pytest.fixture(scope="module")
def prepared(fadul):
    return [prepare(s) for s in fadul]


def mirror_warnings(res):
    """The result's warnings about handedness (LR caveats are tested with the LR systems)."""
    return [w for w in res.warnings if "mirror" in w]


def mirror(scan):
    """b's rows reversed (x3ptools' x3p_flip_y), as a differently converted file would be."""
    return scan_from_array(np.ascontiguousarray(scan.data[::-1]), scan.spacing, name=scan.name + " (y-flipped)")


def test_mirrored_copy_matches_its_partner_with_the_same_count(fadul, prepared):
    a, b = prepared[0], fadul[1]                        # Fadul 1-1, 1-2: same slide
    plain = compare(a, b)
    flipped = compare(a, mirror(b))
    assert plain.mirrored is False and mirror_warnings(plain) == []
    assert flipped.mirrored is True
    assert flipped.cmc_count == plain.cmc_count >= 10
    assert flipped.method_counts == plain.method_counts
    assert flipped.rotation_deg == plain.rotation_deg
    assert len(mirror_warnings(flipped)) == 1 and "provenance" in mirror_warnings(flipped)[0]
    assert "mirrored" in flipped.summary()
    # the coarse evidence of both handedness is reported, and decided the choice
    ev = flipped.handedness
    assert ev["mirrored"]["coarse_max_cmc"] > ev["as_given"]["coarse_max_cmc"]
    assert ev["mirrored"]["coarse_max_cmc"] == plain.handedness["as_given"]["coarse_max_cmc"]
    # the registration refers to the flipped-back copy: align() overlays it on a
    al = align(mirror(b), flipped)
    m = al.mask & fadul[0].mask
    assert np.corrcoef(al.data[m], fadul[0].data[m])[0, 1] == pytest.approx(flipped.correlation)
    a_arr, b_al = aligned_pair(fadul[0], mirror(b), flipped)
    np.testing.assert_array_equal(np.isfinite(b_al), al.mask)
    # JSON round trip keeps the handedness fields
    back = Comparison.from_dict(flipped.to_dict())
    assert back.mirrored is True and back.warnings == flipped.warnings and back.handedness == flipped.handedness


def test_as_given_only_misses_a_mirrored_match(fadul, prepared):
    res = compare(prepared[0], mirror(fadul[1]), handedness="as_given")
    assert res.mirrored is False and set(res.handedness) == {"as_given"}
    assert res.cmc_count <= 2 and mirror_warnings(res) == []
    with pytest.raises(ParameterError, match="handedness"):
        compare(prepared[0], fadul[1], handedness="mirror")
    with pytest.raises(ParameterError, match="mirror_margin"):
        compare(prepared[0], fadul[1], mirror_margin=-1)


@pytest.mark.slow
def test_both_handedness_raises_no_different_firearm_count(fadul, prepared):
    """Every different-firearm pair of the bundled sample (slides 1, 2, 3: 12 pairs): the
    count with both handedness searched is no higher than with the files as given, and
    a mirrored choice never comes with a warning unless it has CMCs."""
    firearm = [s.name.split()[-1].split("-")[0] for s in fadul]
    pairs = [(i, j) for i, j in itertools.combinations(range(len(fadul)), 2) if firearm[i] != firearm[j]]
    assert len(pairs) == 12
    for i, j in pairs:
        both = compare(prepared[i], prepared[j])
        given = compare(prepared[i], prepared[j], handedness="as_given")
        what = f"{fadul[i].name} vs {fadul[j].name}"
        assert set(both.handedness) == {"as_given", "mirrored"}, what
        assert both.cmc_count <= given.cmc_count, what
        assert both.cmc_count <= 2, what
        assert bool(mirror_warnings(both)) == (both.mirrored and both.cmc_count > 0), what


def test_mirrored_only_and_a_rotation_window_find_the_match(fadul, prepared):
    """``handedness="mirrored"`` searches only b mirrored, and an asymmetric rotation window
    around the true angle (-24 degrees for Fadul 1-1 / 1-2) is searched in both directions
    (b->a over the negated window), as a search's seeded comparison does."""
    a, b = prepared[0], fadul[1]
    full = compare(a, b)
    seeded = compare(a, mirror(b), handedness="mirrored", rotation_range=(-42.0, -6.0))
    assert seeded.mirrored is True and set(seeded.handedness) == {"mirrored"}
    assert seeded.rotation_deg == full.rotation_deg
    assert abs(seeded.cmc_count - full.cmc_count) <= 2 and seeded.cmc_count >= 10
    assert seeded.directions["b_to_a"]["rotation_deg"] == pytest.approx(-seeded.rotation_deg, abs=3.0)
    wrong = compare(a, mirror(b), handedness="mirrored", rotation_range=(60.0, 96.0))
    assert wrong.cmc_count <= 2


def test_consistent_peak_needs_both_directions():
    """The handedness evidence counts a peak only where b->a agrees at the inverse rotation."""
    from ballistics.comparison._search import consistent_peak
    ab = [(-12.0, 3), (0.0, 5), (24.0, 20), (36.0, 4)]
    ba_agrees = [(-24.0, 18), (0.0, 2), (12.0, 6)]
    ba_elsewhere = [(24.0, 18), (0.0, 2), (12.0, 6)]
    assert consistent_peak(ab, ba_agrees, 6.0) == 18            # min(20, 18) at 24 / -24
    assert consistent_peak(ab, ba_elsewhere, 6.0) == 3          # the 20-cell peak has no partner; -12 <-> 12 does
    assert consistent_peak([(30.0, 10)], [(-27.0, 8)], 6.0) == 8
    assert consistent_peak([(30.0, 10)], [(-27.0, 8)], 0.0) == 0
    assert consistent_peak([], ba_agrees, 6.0) == 0
    # the tolerance wraps around the circle
    assert consistent_peak([(179.0, 9)], [(-177.0, 9)], 6.0) == 9


@pytest.mark.parametrize("pair", [(0, 1, False), (0, 1, True), (0, 2, False)])
def test_pruned_mirror_screen_decides_as_the_whole_screen(fadul, prepared, pair):
    """The mirror's b->a screen runs only where it could lift the mirror's consistent peak
    over the decision threshold; the decision and, when the mirror wins, its evidence
    equal those of the whole screen (both b->a sweeps computed here)."""
    from ballistics.comparison._params import PRESETS
    from ballistics.comparison._search import _SCREEN_EVERY, _coarse, _coarse_grid, _mirror_screen, consistent_peak
    i, j, flip = pair
    p = PRESETS["default"]
    pa = prepared[i]
    mb = prepare(mirror(fadul[j]) if flip else fadul[j]).mirrored()
    rgrid = _coarse_grid(p, True, _SCREEN_EVERY)
    whole = consistent_peak(_coarse(pa, mb, p, _SCREEN_EVERY)[1],
                            _coarse(mb, pa, p, _SCREEN_EVERY, reverse=True)[1], p.coarse_step)
    for need in (0, 3, 8, whole - 1, whole):
        sw = _mirror_screen(pa, mb, p, rgrid, need, p.coarse_step)
        got = sw.ev["consistent_peak"]
        assert (got > need) == (whole > need)
        if whole > need:
            assert got == whole and "consistent_peak_at_most" not in sw.ev
        else:
            assert got <= whole <= sw.ev.get("consistent_peak_at_most", got)
        assert sw.ev["screen_b_to_a_rotations"] <= len(rgrid)
    assert flip == (whole > 8)      # a mirrored mate's mirror peaks high; a plain pair's does not


def _dfsc(name):
    from shared_files import shared_path

    from ballistics import read_scan
    return read_scan(shared_path("dfsc", name))


@pytest.mark.slow
@pytest.mark.parametrize("a_name, b_name, count", [("K002eG1_proc.x3p", "K227iG3_proc.x3p", 10),
                                                   ("K002fJ1.x3p", "K002fJ2.x3p", 5)])
def test_weak_mark_mirrored_mate_is_found_on_the_final_evidence(a_name, b_name, count):
    """TopMatch scans of one SR9 pistol, one of them mirrored: the coarse peaks of the two
    handedness are too close to decide (the wrong handedness peaks high too), so both are
    refined and the final, consistency-checked counts decide: the mirrored match is found
    with the count of the pair as given."""
    a, b = prepare(_dfsc(a_name)), _dfsc(b_name)
    plain = compare(a, b, lr_system=None)
    flipped = compare(a, mirror(b), lr_system=None)
    assert plain.mirrored is False and plain.cmc_count >= count
    ev = flipped.handedness
    assert abs(ev["mirrored"]["consistent_peak"] - ev["as_given"]["consistent_peak"]) <= flipped.params["mirror_margin"]
    assert ev["as_given"]["final_cmc"] < ev["mirrored"]["final_cmc"] == flipped.cmc_count
    assert flipped.mirrored is True and flipped.cmc_count == plain.cmc_count
    assert flipped.learned_score == pytest.approx(plain.learned_score, abs=1e-6)
    assert len(flipped.warnings) == 1


@pytest.mark.slow
@pytest.mark.parametrize("a_name, b_name", [("K004dB2.x3p", "K004dD1.x3p"), ("K004dB3.x3p", "K004dD3.x3p"),
                                            ("K004dB1.x3p", "K011sR1.x3p")])
def test_different_pistols_gain_nothing_from_refining_both_handedness(a_name, b_name):
    """Different SR9 pistols (from one conversion group, with one direction reaching 13-16
    CMCs; and a pair whose mirror image peaks higher on the coarse stage by chance, which
    the coarse rule reported as mirrored): refining the mirror image as well gives them
    no CMC, no higher learned score and no mirrored report over the files as given."""
    a, b = prepare(_dfsc(a_name)), prepare(_dfsc(b_name))
    both = compare(a, b, lr_system=None)
    given = compare(a, b, handedness="as_given", lr_system=None)
    assert "final_cmc" in both.handedness["mirrored"]          # both were refined
    assert both.mirrored is False and both.warnings == []
    assert both.cmc_count <= given.cmc_count
    assert both.learned_score <= given.learned_score + 1e-9


def test_handedness_decision_is_validated(prepared, fadul):
    with pytest.raises(ParameterError, match="handedness_decision"):
        compare(prepared[0], fadul[1], handedness_decision="peak")
