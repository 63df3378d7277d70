"""LR systems give no LR outside their domain, and honest firearm-bootstrap intervals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ballistics as b
from ballistics import calibration as cal


def _relabel(scan, instrument):
    meta = {**scan.metadata, "instrument": instrument}
    prov = dataclasses.replace(scan.provenance, writer={**scan.provenance.writer, "instrument": instrument,
                                                        "instrument_manufacturer": instrument,
                                                        "instrument_model": instrument})
    return dataclasses.replace(scan, metadata=meta, provenance=prov)


def test_instrument_family_from_metadata(sample):
    assert cal.instrument_family(sample[0]) == "confocal"
    assert cal.instrument_family(_relabel(sample[0], "Cadre TopMatch-GS 3D")) == "topmatch"
    assert cal.instrument_family(_relabel(sample[0], "Alicona InfiniteFocus")) == "focus-variation"


def test_shipped_systems_one_per_family():
    fams = {cal.get_system(n).domain.instrument_family for n in cal.list_systems()}
    assert {"confocal", "topmatch"} <= fams
    assert cal.system_for_family("topmatch").name != cal.system_for_family("confocal").name
    assert cal.system_for_family("focus-variation") is None


def test_in_domain_comparison_gets_an_lr_with_interval(sample):
    r = b.compare(sample[0], sample[1])
    assert r.lr["in_domain"] and r.llr is not None
    lo, hi = r.llr_interval
    assert lo <= r.llr <= hi and hi > lo


def test_out_of_domain_instrument_gets_no_lr_unless_asked(sample):
    a, c = (_relabel(s, "Alicona InfiniteFocus") for s in sample[:2])
    r = b.compare(a, c)
    assert r.llr is None and r.llr_interval is None
    assert any("focus-variation" in w for w in r.lr["warnings"])
    assert any(w.startswith("no LR") for w in r.warnings)
    forced = b.compare(a, c, lr_system="learned-confocal-v1")
    assert forced.llr is not None and forced.lr["outside_validation"]
    assert any("outside the validation" in w for w in forced.warnings)


def test_topmatch_scan_at_confocal_pixel_size_is_outside_topmatch_domain(sample):
    a, c = (_relabel(s, "Cadre TopMatch-GS 3D") for s in sample[:2])
    r = b.compare(a, c)
    assert r.llr is None
    assert any("pixel size" in w for w in r.lr["warnings"])


def test_non_default_parameters_get_no_lr(sample):
    r = b.compare(sample[0], sample[1], rotation_range=(0, 0))
    assert r.llr is None
    assert any("rotation_range" in w for w in r.lr["warnings"])


def _firearm_data(n_firearms, scans=6, seed=3):
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 1.0, n_firearms)
    x, y, g = [], [], []
    for i in range(n_firearms):
        for j in range(i, n_firearms):
            same = i == j
            for _ in range(scans * (scans - 1) // 2 if same else scans * scans // 6):
                x.append(rng.normal(2 + effect[i], 1.5) if same else rng.normal(-1, 1.5))
                y.append(same)
                g.append((f"f{i}", f"f{j}"))
    return np.array(x), np.array(y), g


def test_interval_widens_when_the_reference_population_shrinks():
    big = cal.fit(*_firearm_data(16), bootstrap=200)
    small = cal.fit(*_firearm_data(4), bootstrap=200)
    for score in (0.0, 1.0):
        wb = np.diff(big.interval(score)["interval"])[0]
        ws = np.diff(small.interval(score)["interval"])[0]
        assert ws > 1.3 * wb, (score, wb, ws)


def test_interval_at_a_bound_is_flagged_and_not_a_point():
    s = cal.fit(*_firearm_data(10), bootstrap=200)
    iv = s.interval(50.0)
    assert s.llr(50.0) == s.elub[1]
    assert iv["at_bound"] == "upper" and "ELUB bound" in iv["note"]
    assert iv["interval"][1] - iv["interval"][0] > 0.05
    assert s.interval(0.5)["at_bound"] is None


def test_refits_survive_save_and_load(tmp_path):
    s = cal.fit(*_firearm_data(6), bootstrap=30, domain=cal.Domain.make("confocal", (6e-6, 7e-6), {"tau": 1}))
    p = s.save(tmp_path / "s.json")
    t = cal.get_system(p)
    assert t.domain == s.domain
    assert t.interval(0.5) == s.interval(0.5)
    text = p.read_text().replace('"confocal"', '"topmatch"')
    p.write_text(text)
    with pytest.raises(cal.CalibrationError, match="altered"):
        cal.get_system(p)


def test_shipped_data_hold_no_machine_paths():
    for f in cal.DATA_DIR.glob("*.json"):
        text = f.read_text()
        assert "/work/" not in text and "/root/" not in text and "/home/" not in text, f.name
        if "." not in f.stem:
            cal.get_system(f)  # checksums still verify
