"""The real OpenClaw CLI (the reference client) as the tests run it.

The CLI is openclaw 2026.9.6 from the npm registry, on its own Node 24, installed by
``scripts/setup-reference-client`` into ``.cache/reference-client/`` with a wrapper,
``bin/openclaw-ref``. Without it the tests that need it skip on a developer's machine and fail
in CI (``CI`` set), naming the script to run.

Each call runs with a client home of its own (no OPENCLAW_* from the caller, the state dir
under that home), update checks, Bonjour and telemetry off, in a process group of its own:
the CLI respawns itself, so a timeout kills the whole group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import clean_env

WRAPPER = (
    Path(__file__).resolve().parents[1] / ".cache" / "reference-client" / "bin" / "openclaw-ref"
)
CLI_TIMEOUT = 60.0  # seconds per CLI call; the CLI's own request timeout is 10 s


@dataclass
class Result:
    """What one CLI call printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        """Its stdout as the JSON object ``--json`` prints."""
        value = json.loads(self.stdout)
        assert isinstance(value, dict), self.stdout
        return value

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@pytest.fixture(scope="session")
def reference_cli() -> Path:
    """The wrapper, or a skip (a fail in CI) saying how to install it."""
    if os.access(WRAPPER, os.X_OK):
        return WRAPPER
    message = (
        f"reference client not installed ({WRAPPER} missing): run ./scripts/setup-reference-client"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def client_env(client_home: Path) -> dict[str, str]:
    """The CLI's environment: HOME ``client_home`` (made if missing), state in its .openclaw."""
    client_home.mkdir(parents=True, exist_ok=True)
    return clean_env(
        client_home,
        OPENCLAW_STATE_DIR=str(client_home / ".openclaw"),
        OPENCLAW_NO_AUTO_UPDATE="1",
        OPENCLAW_DISABLE_BONJOUR="1",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
    )


def _spawn(env: dict[str, str], args: tuple[str, ...], output: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(WRAPPER), *args],
        env=env,
        cwd=env["HOME"],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        start_new_session=True,  # the CLI respawns itself: kill its whole group
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``openclaw-ref ARGS...`` in the background, in its own session, output discarded."""
    return _spawn(env, args, subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill what :func:`start` started: its process group, the CLI and what it spawned."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def run(env: dict[str, str], *args: str, timeout: float = CLI_TIMEOUT) -> Result:
    """``openclaw-ref ARGS...`` to its end; its process group is killed after ``timeout``."""
    proc = _spawn(env, args, subprocess.PIPE)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    result = Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    if timed_out:
        raise AssertionError(
            f"openclaw-ref {' '.join(args)} still running after {timeout}s\n{result}"
        )
    return result
