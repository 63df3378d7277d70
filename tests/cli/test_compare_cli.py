"""``ballistics compare`` on the bundled sample."""

from __future__ import annotations

import json

import pytest

from ballistics import datasets
from ballistics.cli import main
from ballistics.features import looks_raw


def test_cli_compare_processed_json(capsys):
    a, b = [str(p) for p in datasets.fadul_paths("processed")[:2]]
    rc = main(["compare", a, b, "--preset", "cmcr", "--method", "original", "--json",
               "--param", "rotation_range=(-27,-18)"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["method"] == "original" and d["cmc_count"] >= 8
    assert d["params"]["rotation_range"] == [-27.0, -18.0]
    assert d["inputs"][0]["sha256"] and d["inputs"][0]["checksum"]


def test_cli_compare_text_and_cells(capsys):
    a, b = [str(p) for p in datasets.fadul_paths("processed")[:2]]
    rc = main(["compare", a, b, "--no-extract", "--cells", "--param", "rotation_range=(-24,-21)",
               "--param", "coarse_step=None"])
    out = capsys.readouterr().out
    assert rc == 0 and "Fadul 1-1" in out and "Fadul 1-2" in out and "a_to_b" in out and "yes" in out


def test_cli_errors_are_one_line(capsys):
    a = str(datasets.fadul_paths("processed")[0])
    assert main(["compare", a, a, "--param", "no_such=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ballistics: error:") and "no_such" in err


def test_raw_detection():
    raw = datasets.fadul("raw")[0]
    processed = datasets.fadul("processed")[0]
    assert looks_raw(raw) and not looks_raw(processed)


@pytest.mark.slow
def test_cli_compare_raw_extracts_first(capsys):
    a, b = [str(p) for p in datasets.fadul_paths("raw")[:2]]     # 1-1 and 1-2 whole primers
    rc = main(["compare", a, b, "--json", "--preset", "cmcr"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cmc_count"] >= 5         # same slide: clearly more than a different-slide pair (<= 2)


def test_cli_compare_reports_a_mirrored_match(tmp_path, capsys):
    import numpy as np

    from ballistics import scan_from_array, write_x3p
    a, b = datasets.fadul("processed")[:2]
    flipped = tmp_path / "b flipped.x3p"
    write_x3p(scan_from_array(np.ascontiguousarray(b.data[::-1]), b.spacing, name="flipped"), flipped)
    pa = str(datasets.fadul_paths("processed")[0])
    rc = main(["compare", pa, str(flipped), "--no-extract", "--param", "rotation_range=(-30,-18)",
               "--param", "coarse_step=None"])
    out = capsys.readouterr().out
    assert rc == 0 and "WARNING" in out and "provenance" in out and "mirrored" in out
    rc = main(["compare", pa, str(flipped), "--no-extract", "--handedness", "as_given", "--json",
               "--param", "rotation_range=(-30,-18)", "--param", "coarse_step=None"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["mirrored"] is False and d["params"]["handedness"] == "as_given"
    assert not any("mirror" in w for w in d["warnings"])      # (an LR caveat may remain: no instrument)
