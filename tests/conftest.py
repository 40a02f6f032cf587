"""Shared test helpers: free ports, condition waits, and real gateway processes.

Gateways started here are ours: we keep their pid and end only them. Readiness is observed
through sd_notify (a datagram socket the test owns), never by sleeping.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Fixtures of the command-flow tests (tests/e2e and tests/faults share them) and the
# reference client's (reference_cli: the real OpenClaw CLI, or a skip).
pytest_plugins = ["e2e.flow", "reference"]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 (and ::1) a moment ago, with a free block above."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 65000:
            continue
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", port))
        except OSError as err:
            if err.errno not in (97, 99):  # no IPv6 here is fine; "in use" is not
                continue
        return port
    raise RuntimeError("no free port found")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a child: this one without any OPENCLAW_* variable, HOME=home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.pop("NOTIFY_SOCKET", None)
    env["HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class GatewayProcess:
    """A gateway we started, with what a test needs to talk to it."""

    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    profile: str
    output_path: Path | None = None
    notify_messages: list[str] = field(default_factory=list)

    def output(self) -> str:
        """What the gateway printed to stdout/stderr so far."""
        return self.output_path.read_text(errors="replace") if self.output_path else ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def state_dir(self) -> Path:
        return self.home / f".openclaw-{self.profile}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(
        self, key: str, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
    ) -> list[str]:
        """Collect messages until one carries ``key`` (``READY=1``); fail on timeout or exit."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(0.05)
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"gateway exited {proc.returncode} before {key}") from None
                continue
            seen.append(msg)
            if key in msg.split("\n"):
                return seen
        raise AssertionError(f"no {key} within {timeout}s (got {seen})")

    def close(self) -> None:
        self.sock.close()


def start_gateway(
    home: Path,
    profile: str = "work",
    *args: str,
    port: int | None = None,
    env_extra: dict[str, str] | None = None,
    wait_ready: bool = True,
) -> GatewayProcess:
    """Start ``python -m openclaw_multi.gateway`` and (by default) wait for READY=1."""
    port = port or free_port()
    # AF_UNIX paths are limited to ~108 bytes: keep the socket in a short temp dir.
    notify_path = Path(tempfile.mkdtemp(prefix="ocn-")) / "notify.sock"
    listener = NotifyListener(notify_path)
    env = clean_env(home, NOTIFY_SOCKET=str(notify_path), **(env_extra or {}))
    cmd = [
        sys.executable,
        "-m",
        "openclaw_multi.gateway",
        "--profile",
        profile,
        "--port",
        str(port),
        *args,
    ]
    output = home / f"gateway-{profile}-{port}.out"
    with output.open("ab") as sink:  # a file, not a pipe: nothing can block on a full pipe
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    gw = GatewayProcess(proc=proc, port=port, home=home, profile=profile, output_path=output)
    try:
        if wait_ready:
            gw.notify_messages = listener.wait_for("READY=1", proc=proc)
    except AssertionError as err:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise AssertionError(f"{err}; gateway said: {gw.output().strip()!r}") from None
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    finally:
        listener.close()
    return gw


@pytest.fixture
def home() -> Iterator[Path]:
    """An empty home directory for profiles, on a short path.

    AF_UNIX socket paths (the supervisor's control socket lives under the home) are limited
    to 107 bytes; pytest's own temporary paths, longer still under xdist
    (``.../popen-gw1/<test name>0/``), leave too little room.
    """
    path = Path(tempfile.mkdtemp(prefix="och-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gateway_factory(home: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateways in the test's home; every one still running is stopped afterwards."""
    started: list[GatewayProcess] = []

    def factory(profile: str = "work", *args: str, **kwargs: object) -> GatewayProcess:
        gw = start_gateway(home, profile, *args, **kwargs)  # type: ignore[arg-type]
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        if gw.proc.poll() is None:
            gw.proc.kill()
        gw.proc.wait(timeout=10)


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    """One running gateway for profile ``work`` with auth ``none`` on a free port."""
    return gateway_factory("work")


@pytest.fixture(autouse=True)
def _collect_garbage_per_test() -> Iterator[None]:
    """Collect garbage after each test so a leaked transport or socket warns in the test
    that leaked it (warnings are errors), not in whichever test the collector runs next."""
    yield
    gc.collect()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that collected no tests fails like a failing test (exit 1), never passes quietly.

    Only the controlling process decides (under xdist each worker finishes its own session).
    """
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and not hasattr(
        session.config, "workerinput"
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
