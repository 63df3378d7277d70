"""Output paths never destroy inputs or a database."""

from __future__ import annotations

import pytest

from ballistics._io import check_output
from ballistics.errors import BallisticsError


def test_output_may_not_be_an_input_or_exist(tmp_path):
    src = tmp_path / "in.x3p"
    src.write_bytes(b"x")
    link = tmp_path / "link.x3p"
    link.symlink_to(src)
    with pytest.raises(BallisticsError, match="also an input"):
        check_output(src, inputs=(src,))
    with pytest.raises(BallisticsError, match="also an input"):
        check_output(link, inputs=(src,), force=True)
    other = tmp_path / "other.html"
    other.write_text("old")
    with pytest.raises(BallisticsError, match="already exists"):
        check_output(other)
    assert check_output(other, force=True) == other
    assert check_output(tmp_path / "new.html") == tmp_path / "new.html"


def test_output_inside_database_directory_or_under_file(tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / "catalogue.sqlite").write_bytes(b"")
    with pytest.raises(BallisticsError, match="inside the case database"):
        check_output(db / "catalogue.sqlite", force=True)
    with pytest.raises(BallisticsError, match="directory"):
        check_output(tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BallisticsError, match="not a directory"):
        check_output(f / "out.html")
