"""The atomic file writer."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from openclaw_multi.profiles.atomic import write_file_atomic


def test_writes_0600_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_file_atomic(path, b"one")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_replaces_and_resets_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"old content that is longer")
    path.chmod(0o644)
    write_file_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_file_atomic(path, b"x", mode=0o640)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_failure_removes_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    with pytest.raises(OSError):
        write_file_atomic(target, b"x")  # cannot replace a directory with a file
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert list(target.iterdir()) == []


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_file_atomic(tmp_path / "no" / "f", b"x")
