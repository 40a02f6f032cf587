"""The gateway's sd_notify as systemd sees it: READY=1 only once it serves, then WATCHDOG=1."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import clean_env, free_port

from openclaw_multi.gateway.watchdog import watchdog_interval


@pytest.mark.parametrize(
    ("env", "pid", "expected"),
    [
        ({}, 10, None),
        ({"WATCHDOG_USEC": "200000"}, 10, 0.1),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10, 15.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "11"}, 10, None),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "x"}, 10, None),
        ({"WATCHDOG_USEC": "0"}, 10, None),
        ({"WATCHDOG_USEC": "-5"}, 10, None),
        ({"WATCHDOG_USEC": "soon"}, 10, None),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": ""}, 10, 0.1),
    ],
)
def test_watchdog_interval(env: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval(env, pid) == expected


class _Listener:
    """A datagram socket standing in for systemd's notify socket; records arrival facts."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="ocw-")) / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.05)

    def recv(self, deadline: float, proc: subprocess.Popen[bytes]) -> str | None:
        while time.monotonic() < deadline:
            try:
                return self.sock.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    raise AssertionError(f"gateway exited {proc.returncode}") from None
        return None

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        self.path.parent.rmdir()


def _start(home: Path, port: int, listener: _Listener, **extra: str) -> subprocess.Popen[bytes]:
    env = clean_env(home, NOTIFY_SOCKET=str(listener.path), **extra)
    cmd = [sys.executable, "-m", "openclaw_multi.gateway", "--profile", "work"]
    cmd += ["--port", str(port), "--quiet"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def test_ready_after_serving_then_watchdog_pings(home: Path) -> None:
    listener = _Listener()
    port = free_port()
    # WATCHDOG_PID is what systemd sets: the main pid. We cannot know it before the spawn,
    # so it is left out here (absent means "this process"); the mismatch case is below.
    proc = _start(home, port, listener, WATCHDOG_USEC="200000")
    try:
        deadline = time.monotonic() + 15.0
        ready_at: float | None = None
        pings: list[float] = []
        while len(pings) < 4:
            message = listener.recv(deadline, proc)
            assert message is not None, f"pings so far: {len(pings)}, ready: {ready_at}"
            lines = message.split("\n")
            if "READY=1" in lines:
                assert ready_at is None
                ready_at = time.monotonic()
                # READY means it serves: a connection succeeds now, not later.
                assert _connects(port)
                assert f"MAINPID={proc.pid}" in lines
            if "WATCHDOG=1" in lines:
                assert ready_at is not None, "WATCHDOG=1 before READY=1"
                pings.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # Half of 200 ms each; generous bounds for a loaded machine.
        assert all(0.03 < gap < 1.0 for gap in gaps), gaps
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        listener.close()


def test_no_watchdog_when_the_pid_is_someone_elses(home: Path) -> None:
    listener = _Listener()
    port = free_port()
    other = os.getpid()  # inherited variables naming another process: not ours
    proc = _start(home, port, listener, WATCHDOG_USEC="100000", WATCHDOG_PID=str(other))
    try:
        deadline = time.monotonic() + 15.0
        while True:
            message = listener.recv(deadline, proc)
            assert message is not None, "no READY=1"
            assert "WATCHDOG=1" not in message.split("\n")
            if "READY=1" in message.split("\n"):
                break
        # Five whole periods of silence: a ping would have come every 50 ms.
        quiet_until = time.monotonic() + 0.5
        while time.monotonic() < quiet_until:
            message = listener.recv(quiet_until, proc)
            assert message is None or "WATCHDOG=1" not in message.split("\n"), message
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        listener.close()
