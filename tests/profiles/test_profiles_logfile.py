"""Own log files (profiles/logfile.py): every file, first and after a rollover, is 0600."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openclaw_multi.client.nodehost.logs import setup_node_logging
from openclaw_multi.gateway.logs import setup_logging
from openclaw_multi.profiles.logfile import PrivateRotatingFileHandler


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """A umask that would make new files world-readable, and a clean ``openclaw`` logger."""
    old = os.umask(0o022)
    root = logging.getLogger("openclaw")
    saved = (list(root.handlers), root.level, root.propagate)
    try:
        yield
    finally:
        os.umask(old)
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        root.propagate = saved[2]
        logging.getLogger("openclaw.client.ws").setLevel(logging.NOTSET)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _gateway(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "gateway.log"
    setup_logging(path, to_stderr=False)
    return path


def _node(tmp_path: Path) -> Path:
    return setup_node_logging(tmp_path / "logs", to_stderr=False)


@pytest.mark.usefixtures("wide_umask")
@pytest.mark.parametrize("setup", [_gateway, _node], ids=["gateway", "node"])
def test_every_file_is_0600_after_a_rollover(tmp_path: Path, setup: Callable[[Path], Path]) -> None:
    path = setup(tmp_path)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    root = logging.getLogger("openclaw")
    (handler,) = [h for h in root.handlers if isinstance(h, PrivateRotatingFileHandler)]
    root.warning("before the rollover")
    handler.doRollover()
    root.warning("after the rollover")
    handler.flush()
    backup = path.with_name(path.name + ".1")
    assert "before the rollover" in backup.read_text()
    assert "after the rollover" in path.read_text()
    assert (_mode(path), _mode(backup)) == (0o600, 0o600)


@pytest.mark.usefixtures("wide_umask")
def test_a_wider_existing_file_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "gateway.log"
    path.parent.mkdir()
    path.write_text("old line\n")
    path.chmod(0o644)
    setup_logging(path, to_stderr=False)
    assert _mode(path) == 0o600
    assert path.read_text() == "old line\n"  # appended to, not truncated


@pytest.mark.usefixtures("wide_umask")
def test_file_only_records_stay_off_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openclaw_multi.gateway.logs import FILE_ONLY

    path = tmp_path / "gateway.log"
    setup_logging(path, to_stderr=True)
    root = logging.getLogger("openclaw")
    root.error("shown")
    root.error("file only", extra=FILE_ONLY)
    for handler in root.handlers:
        handler.flush()
    assert capsys.readouterr().err == "shown\n"
    assert "file only" in path.read_text()
