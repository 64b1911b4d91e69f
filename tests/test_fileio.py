import gzip

import pytest

from bertkit.errors import BertkitError
from bertkit.fileio import atomic_dir, atomic_write_json, iter_lines, read_json


def test_iter_lines_plain_and_gz(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("one\ntwo\r\n\nthree", encoding="utf-8")
    assert list(iter_lines(p)) == [(1, "one"), (2, "two"), (3, ""), (4, "three")]
    g = tmp_path / "a.txt.gz"
    g.write_bytes(gzip.compress(p.read_bytes()))
    assert list(iter_lines(g)) == list(iter_lines(p))


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine\nab\xffcd\n")
    with pytest.raises(BertkitError, match=r"bad.txt:2: invalid UTF-8 at byte offset 7"):
        list(iter_lines(p))
    assert list(iter_lines(p, errors="replace"))[1] == (2, "ab\ufffdcd")


def test_binary_file_is_reported(tmp_path):
    p = tmp_path / "bin.dat"
    p.write_bytes(b"abc\x00def")
    with pytest.raises(BertkitError, match="binary"):
        list(iter_lines(p))


def test_missing_file(tmp_path):
    with pytest.raises(BertkitError, match="no such file"):
        list(iter_lines(tmp_path / "nope.txt"))


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as d:
        (d / "x").write_text("1")
    assert (target / "x").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "x").write_text("2")
            raise RuntimeError("crash")
    assert (target / "x").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_read_json_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(BertkitError, match=r"c.json:2: invalid JSON"):
        read_json(p)
    atomic_write_json(p, {"a": 1})
    assert read_json(p) == {"a": 1}


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    # mkstemp/mkdtemp create 0600/0700; published outputs must be readable like normal files.
    import os

    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
        atomic_write_json(tmp_path / "f.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644
