"""gateway/record_store.py: the JSON record files behind devices/ and nodes/ pairing."""

from __future__ import annotations

import errno
import logging
import stat
from pathlib import Path

import msgspec
import pytest

from openclaw_multi.gateway.record_store import PairingFiles, RecordFile
from openclaw_multi.profiles import atomic


class Rec(msgspec.Struct, rename="camel"):
    some_id: str
    count: int = 0


def test_a_missing_file_is_empty_and_a_save_round_trips_0600_in_a_0700_dir(
    tmp_path: Path,
) -> None:
    records = RecordFile(tmp_path / "d" / "paired.json", Rec, what="test")
    assert records.load() == {}
    records.save({"a": Rec(some_id="a", count=2)})
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    assert stat.S_IMODE(records.path.stat().st_mode) == 0o600
    assert b'"someId": "a"' in records.path.read_bytes()  # camelCase, formatted
    assert records.load() == {"a": Rec(some_id="a", count=2)}


def test_a_corrupt_file_is_moved_aside_and_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pending.json"
    path.write_text('{"a": {"count": "not a number"}}')
    with caplog.at_level(logging.ERROR, logger="openclaw.gateway"):
        assert RecordFile(path, Rec, what="node pairing").load() == {}
    assert not path.exists()
    (aside,) = tmp_path.glob("pending.corrupt-*.json")
    assert "not a number" in aside.read_text()
    assert "is not a node pairing file" in caplog.text


def test_an_unreadable_file_starts_empty_and_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "paired.json"
    path.mkdir()  # reading it fails with EISDIR
    with caplog.at_level(logging.ERROR, logger="openclaw.gateway"):
        assert RecordFile(path, Rec, what="test").load() == {}
    assert path.is_dir() and "cannot read" in caplog.text


def test_a_failed_save_raises_and_leaves_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = RecordFile(tmp_path / "paired.json", Rec, what="test")
    records.save({"a": Rec(some_id="a")})

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)  # the temp file cannot be made durable
    with pytest.raises(OSError, match="No space left"):
        records.save({})
    monkeypatch.undo()
    assert records.load() == {"a": Rec(some_id="a")}
    assert [p.name for p in tmp_path.iterdir()] == ["paired.json"]  # no temp file left


def test_pairing_files_load_both_and_save_each(tmp_path: Path) -> None:
    files = PairingFiles(tmp_path, Rec, Rec, what="test")
    assert files.paired == {} and files.pending == {}
    files.paired["p"] = Rec(some_id="p")
    files.save_paired()
    assert not (tmp_path / "pending.json").exists()
    files.pending["q"] = Rec(some_id="q", count=1)
    files.save_pending()
    again = PairingFiles(tmp_path, Rec, Rec, what="test")
    assert again.paired == {"p": Rec(some_id="p")}
    assert again.pending == {"q": Rec(some_id="q", count=1)}
