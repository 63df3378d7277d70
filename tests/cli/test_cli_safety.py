"""The command line with careless or hostile input: outputs, errors, pipes, file names."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from ballistics import datasets
from ballistics.cli import main


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one_error_line(err: str, *words: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("\r")]
    assert len(lines) == 1 and lines[0].startswith("ballistics: error:"), err
    for w in words:
        assert w in lines[0], err


@pytest.fixture()
def raw(tmp_path):
    dst = tmp_path / "raw.x3p"
    shutil.copy(datasets.fadul_paths("raw")[0], dst)
    return dst


def test_extract_refuses_to_write_over_its_input(raw, capsys):
    before = _digest(raw)
    assert main(["extract", str(raw), "-o", str(raw)]) == 2
    _one_error_line(capsys.readouterr().err, "input")
    assert _digest(raw) == before


def test_extract_replaces_an_existing_output_only_with_force(raw, tmp_path, capsys):
    out = tmp_path / "bf.x3p"
    out.write_bytes(b"keep me")
    assert main(["extract", str(raw), "-o", str(out), "--json"]) == 2
    _one_error_line(capsys.readouterr().err, "--force")
    assert out.read_bytes() == b"keep me"
    assert main(["extract", str(raw), "-o", str(out), "--json", "--force"]) == 0
    assert out.read_bytes()[:2] == b"PK"          # an x3p archive now


@pytest.mark.parametrize("argv", [
    ["info", "{f}", "--spacing", "nan"],
    ["compare", "{f}", "{f}", "--spacing", "inf"],
    ["extract", "{f}", "--bandpass", "16e-6", "nan"],
    ["extract", "{f}", "--target-spacing=-inf"],
    ["report", "{f}", "{f}", "-o", "{f}.html", "--azimuth", "nan"],
])
def test_non_finite_numbers_are_one_parameter_error(raw, capsys, argv):
    assert main([a.format(f=raw) for a in argv]) == 2
    _one_error_line(capsys.readouterr().err, "finite")


def test_an_os_error_is_one_line_with_status_2(raw, tmp_path, capsys):
    target = "/proc/ballistics-cannot-write-here.x3p"
    assert main(["extract", str(raw), "-o", target, "--json"]) == 2
    _one_error_line(capsys.readouterr().err)
    assert not os.path.exists(target)


def test_closed_pipe_ends_quietly(raw):
    cmd = [sys.executable, "-c", "import sys; from ballistics.cli import main; sys.exit(main())",
           "info", str(raw), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert head.startswith(b"{") and "Traceback" not in err and "Exception" not in err, err


def test_file_names_that_are_not_utf8_work_end_to_end(raw, tmp_path, capsys):
    folder = os.fsencode(tmp_path)
    src = folder + b"/caf\xe9 raw.x3p"
    shutil.copy(raw, src)
    a, b = (folder + b"/bf \xff%d.x3p" % i for i in (1, 2))
    for dst, path in zip((a, b), datasets.fadul_paths("processed")[:2]):
        shutil.copy(path, dst)
    name = os.fsdecode
    assert main(["info", name(src)]) == 0
    assert "caf" in capsys.readouterr().out
    out = folder + b"/out \xfe.x3p"
    assert main(["extract", name(src), "-o", name(out), "--plot"]) == 0
    assert main(["compare", name(a), name(b), "--preset", "cmcr", "--method", "original",
                 "--param", "rotation_range=(-24,-21)"]) == 0
    text = capsys.readouterr().out
    assert "CMC" in text
    expected = {os.fsencode(raw), src, a, b, out, folder + b"/out \xfe.png"}
    assert {folder + b"/" + n for n in os.listdir(folder)} == expected  # no orphan temporary files


def test_report_refuses_to_write_over_an_input_or_an_existing_file(tmp_path, capsys):
    a, b = (tmp_path / "a.x3p", tmp_path / "b.x3p")
    for src, dst in zip(datasets.fadul_paths("processed")[:2], (a, b)):
        shutil.copy(src, dst)
    before = _digest(b)
    assert main(["report", str(a), str(b), "-o", str(b)]) == 2
    _one_error_line(capsys.readouterr().err, "input")
    assert _digest(b) == before
    old = tmp_path / "case.html"
    old.write_text("filed report")
    assert main(["report", str(a), str(b), "-o", str(old)]) == 2
    _one_error_line(capsys.readouterr().err, "--force")
    assert old.read_text() == "filed report"
