"""A supervisor driven through the ``openclaw`` CLI in a short home of its own, for tests of
what it supervises (tunnels, node hosts).

Every pid a test sees is tracked with its start time; cleanup asks the supervisor to shut
down (stopping what it runs), then SIGKILLs only those tracked processes still alive (the
same pid *and* start time), never anything by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from conftest import clean_env
from openclaw_cli import OPENCLAW

from openclaw_multi.client.control import SupervisorClient, supervisor_dir
from openclaw_multi.errors import SupervisorError
from openclaw_multi.profiles.lock import process_start_time
from openclaw_multi.protocol.control import Shutdown


def alive(pid: int, start_time: int | None) -> bool:
    """Is ``pid`` running (not a zombie), with ``start_time`` when one is given?"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0] != "Z" and (start_time is None or int(fields[19]) == start_time)


class SupervisedHome:
    """One short home, its supervisor (through the CLI), and every pid worth cleaning up."""

    def __init__(self, home: Path, policy: dict[str, str]) -> None:
        self.home = home
        self.env = clean_env(home, **policy)
        self.client = SupervisorClient(home, env=self.env)
        self.pids: dict[int, int | None] = {}

    def run(
        self, *args: str, timeout: float = 90, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``openclaw ARGS`` in this home; never a traceback."""
        result = subprocess.run(
            [*OPENCLAW, *args], env=env or self.env, capture_output=True, text=True, timeout=timeout
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def rows(self, *args: str) -> dict[str, dict[str, Any]]:
        """A ``--json`` listing by name; every pid in it is tracked."""
        rows = json.loads(self.run(*args).stdout)
        for row in rows:
            self.track(row["pid"])
        return {row["name"]: row for row in rows}

    def track(self, pid: int | None) -> None:
        """Remember ``pid`` (and its start time) for cleanup."""
        if pid is not None and pid not in self.pids:
            self.pids[pid] = process_start_time(pid)

    def log(self) -> str:
        """``supervisor.log``."""
        return (supervisor_dir(self.home) / "supervisor.log").read_text(errors="replace")

    def cleanup(self) -> None:
        """Shut the supervisor down, then kill what is tracked and still alive."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads((supervisor_dir(self.home) / "supervisor.json").read_text())
            self.track(int(data["pid"]))
        with contextlib.suppress(SupervisorError):
            if self.client.is_running():
                self.client.request(Shutdown(stop_gateways=True), timeout=20, autostart=False)
        for pid, start in self.pids.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)


H = TypeVar("H", bound=SupervisedHome)


@contextlib.contextmanager
def supervised_home(kind: type[H], prefix: str, policy: dict[str, str]) -> Iterator[H]:
    """A ``kind`` (a :class:`SupervisedHome`) in a new short directory (unix socket paths
    <= 107 bytes), cleaned up and removed afterwards."""
    harness = kind(Path(tempfile.mkdtemp(prefix=prefix)), policy)
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(harness.home, ignore_errors=True)
