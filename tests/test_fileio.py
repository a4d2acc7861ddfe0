"""Atomic writes: complete files or nothing, normal permissions, clear errors."""

import os

import pytest

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write, atomic_write_json, atomic_write_text


def test_writes_whole_file_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic_write_json(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.txt"
    atomic_write_text(path, "old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]


def test_directory_target_is_a_clear_error(tmp_path):
    with pytest.raises(AccelsimError, match="is a directory"):
        atomic_write_text(tmp_path, "x")
