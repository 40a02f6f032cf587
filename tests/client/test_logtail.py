"""The log tail of ``openclaw profiles logs``: last lines, and following across rotation."""

from __future__ import annotations

import os
from pathlib import Path

from openclaw_multi.client.logtail import follow_lines, last_lines


def test_last_lines_small_and_large(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("a\nb\nc\n")
    assert last_lines(log, 2) == ["b", "c"]
    assert last_lines(log, 10) == ["a", "b", "c"]
    assert last_lines(log, 0) == []
    log.write_text("".join(f"{i:06d} {'x' * 200}\n" for i in range(2000)))  # > one block
    tail = last_lines(log, 500)
    assert len(tail) == 500 and tail[0].startswith("001500") and tail[-1].startswith("001999")


def test_last_lines_without_final_newline(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("a\nb")
    assert last_lines(log, 1) == ["b"]


class _Script:
    """A fake ``sleep`` that mutates the file between polls, then stops the follower."""

    def __init__(self, steps: list[object]) -> None:
        self.steps = steps
        self.polls = 0
        self.total = len(steps)

    def sleep(self, _seconds: float) -> None:
        self.polls += 1
        if self.steps:
            step = self.steps.pop(0)
            step()  # type: ignore[operator]

    def done(self) -> bool:
        return self.polls > self.total  # one more poll after the last step


def _append(path: Path, text: str) -> object:
    def step() -> None:
        with path.open("a") as f:
            f.write(text)

    return step


def test_follow_survives_rotation_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("old\n")

    def rotate() -> None:
        with log.open("a") as f:
            f.write("last of old\n")
        os.replace(log, tmp_path / "gateway.log.1")
        log.write_text("first of new\n")

    script = _Script(
        [_append(log, "one\ntw"), _append(log, "o\n"), rotate, _append(log, "second of new\n")]
    )
    got = list(follow_lines(log, should_stop=script.done, sleep=script.sleep))
    assert got == ["one", "two", "last of old", "first of new", "second of new"]


def test_follow_waits_for_a_missing_file_and_handles_truncation(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"

    def truncate() -> None:
        log.write_text("")

    script = _Script(
        [lambda: log.write_text("hello\n"), lambda: None, truncate, _append(log, "again\n")]
    )
    got = list(follow_lines(log, should_stop=script.done, sleep=script.sleep))
    assert got == ["hello", "again"]
