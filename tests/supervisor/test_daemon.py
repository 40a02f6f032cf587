"""The supervisor with real processes: start/stop, crashes, FATAL, adoption, sockets, probes.

Every supervisor here is started through :class:`SupervisorClient` (autostart) in a short
temp home (unix socket paths are limited to 107 bytes), with small policy numbers from
``OPENCLAW_SUPERVISOR_*``. Waits are on conditions with deadlines. Cleanup asks the
supervisor to stop its gateways, then kills leftovers by recorded pid + start time only.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_multi.client.control import SupervisorClient, supervisor_dir
from openclaw_multi.errors import SupervisorError
from openclaw_multi.profiles.lock import Identity, process_start_time, write_identity
from openclaw_multi.protocol.control import (
    ControlReply,
    Ping,
    ProfileStatus,
    Reset,
    Restart,
    Shutdown,
    Start,
    Status,
    Stop,
)
from tests.conftest import clean_env, free_port, wait_until
from tests.supervised import alive

pytestmark = pytest.mark.e2e

BURST_LIMIT = 3
FAST_POLICY = {
    "OPENCLAW_SUPERVISOR_BACKOFF_INITIAL": "0.1",
    "OPENCLAW_SUPERVISOR_BACKOFF_MAX": "0.4",
    "OPENCLAW_SUPERVISOR_STABLE_AFTER": "30",
    "OPENCLAW_SUPERVISOR_BURST_LIMIT": str(BURST_LIMIT),
    "OPENCLAW_SUPERVISOR_BURST_WINDOW": "30",
    "OPENCLAW_SUPERVISOR_READY_TIMEOUT": "10",
    "OPENCLAW_SUPERVISOR_STOP_TIMEOUT": "3",
    "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "0.3",
    "OPENCLAW_SUPERVISOR_PROBE_FAILURES": "2",
    "OPENCLAW_SUPERVISOR_PROBE_TIMEOUT": "0.5",
}


def readyz(port: int) -> int | None:
    """The status of GET /readyz, or None if nobody answers within 1 s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def port_refuses(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def lock_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


class Harness:
    """One home, its supervisor client, its profiles, and every pid worth cleaning up."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = clean_env(home, **FAST_POLICY)
        self.client = SupervisorClient(home, env=self.env)
        self.ports: dict[str, int] = {}
        self.pids: dict[int, int | None] = {}  # pid -> start time

    def profile(self, name: str, **gateway: object) -> int:
        """Configure a profile with its own port (>= 20 from every other one)."""
        while True:
            port = free_port()
            if all(abs(port - p) >= 20 for p in self.ports.values()):
                break
        self.ports[name] = port
        state = self.home / f".openclaw-{name}"
        state.mkdir(mode=0o700, exist_ok=True)
        config = {"gateway": {"port": port, **gateway}}
        (state / "openclaw.json").write_text(json.dumps(config))
        return port

    def track(self, pid: int | None) -> None:
        if pid is not None and pid not in self.pids:
            self.pids[pid] = process_start_time(pid)

    def request(self, req: object, **kwargs: object) -> ControlReply:
        reply = self.client.request(req, **kwargs)  # type: ignore[arg-type]
        for status in reply.profiles:
            self.track(status.pid)
        return reply

    def status(self, name: str) -> ProfileStatus:
        reply = self.request(Status(), autostart=False)
        return next(p for p in reply.profiles if p.name == name)

    def supervisor_pid(self) -> int:
        data = json.loads((supervisor_dir(self.home) / "supervisor.json").read_text())
        self.track(data["pid"])
        return int(data["pid"])

    def running(self, name: str, *, not_pid: int | None = None) -> ProfileStatus | None:
        """The profile's status once RUNNING (with a pid other than ``not_pid``) and ready."""
        status = self.status(name)
        if status.state != "RUNNING" or status.pid is None or status.pid == not_pid:
            return None
        if readyz(self.ports[name]) != 200:
            return None
        return status

    def log(self) -> str:
        return (supervisor_dir(self.home) / "supervisor.log").read_text()

    def wait_running(self, name: str, *, not_pid: int, timeout: float) -> ProfileStatus:
        """Wait for a new ready gateway; on timeout show the supervisor's log."""
        try:
            status = wait_until(lambda: self.running(name, not_pid=not_pid), timeout, "restart")
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- supervisor.log ---\n{self.log()[-4000:]}") from None
        assert isinstance(status, ProfileStatus)
        return status

    def cleanup(self) -> None:
        # Record the current supervisor first: if the Shutdown fails, it is killed below.
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.supervisor_pid()
        try:
            if self.client.is_running():
                self.client.request(Shutdown(stop_gateways=True), timeout=20, autostart=False)
        except SupervisorError:
            pass
        for pid, start in self.pids.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sup() -> Iterator[Harness]:
    # A short home: the control socket path must stay under 108 bytes.
    home = Path(tempfile.mkdtemp(prefix="ocs-"))
    harness = Harness(home)
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def test_start_restart_stop_and_status(sup: Harness) -> None:
    port = sup.profile("work")
    sup.profile("idle")
    started = time.monotonic()
    reply = sup.request(Start(profiles=["work"]))
    start_s = time.monotonic() - started
    assert reply.ok, reply.error
    (work,) = reply.profiles
    assert (work.name, work.state, work.desired, work.port) == ("work", "RUNNING", True, port)
    assert readyz(port) == 200
    print(f"\nStart (incl. supervisor autostart) -> RUNNING: {start_s:.3f}s")

    statuses = {p.name: p for p in sup.request(Status()).profiles}
    assert statuses["idle"].state == "STOPPED" and not statuses["idle"].desired
    desired = json.loads((supervisor_dir(sup.home) / "desired.json").read_text())
    assert desired["profiles"] == {"work": True}

    # Files of the supervisor dir, with their modes.
    sdir = supervisor_dir(sup.home)
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700
    assert stat.S_ISSOCK((sdir / "supervisor.sock").stat().st_mode)
    assert stat.S_IMODE((sdir / "supervisor.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((sdir / "supervisor.json").stat().st_mode) == 0o600
    assert alive(sup.supervisor_pid(), None)

    # A start of a running profile is a no-op; a second supervisor program exits 0 quietly.
    again = sup.request(Start(profiles=["work"]))
    assert again.ok and again.profiles[0].pid == work.pid
    second = subprocess.run(
        [sys.executable, "-m", "openclaw_multi.supervisor", "--foreground"],
        env={**sup.env, "OPENCLAW_HOME": str(sup.home)},
        capture_output=True,
        timeout=30,
    )
    assert (second.returncode, second.stdout, second.stderr) == (0, b"", b"")

    started = time.monotonic()
    reply = sup.request(Restart(profiles=["work"]))
    assert reply.ok, reply.error
    assert reply.profiles[0].pid != work.pid and reply.profiles[0].state == "RUNNING"
    print(f"Restart -> RUNNING: {time.monotonic() - started:.3f}s")
    assert not alive(work.pid, sup.pids[work.pid])
    assert readyz(port) == 200

    reply = sup.request(Stop(profiles=["work"]))
    assert reply.ok, reply.error
    assert reply.profiles[0].state == "STOPPED" and reply.profiles[0].pid is None
    # STOPPED means the port and the lock are free already, not "soon".
    assert port_refuses(port)
    assert lock_free(sup.home / ".openclaw-work" / "gateway.lock")
    desired = json.loads((supervisor_dir(sup.home) / "desired.json").read_text())
    assert desired["profiles"] == {}

    bad = sup.request(Start(profiles=["no/such"]))
    assert not bad.ok and "Invalid" in (bad.error or "")


def test_kill9_gateway_is_restarted(sup: Harness) -> None:
    port = sup.profile("work")
    reply = sup.request(Start(profiles=["work"]))
    assert reply.ok, reply.error
    old = reply.profiles[0].pid
    assert old is not None

    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    new = sup.wait_running("work", not_pid=old, timeout=5)
    print(f"\nkill -9 -> replacement ready: {time.monotonic() - killed:.3f}s")
    assert new.restarts == 1 and new.last_exit == -signal.SIGKILL
    assert "killed by signal 9" in (new.last_error or "")
    assert readyz(port) == 200


def test_crash_loop_goes_fatal_within_burst_limit_and_reset_clears(sup: Harness) -> None:
    # An unknown auth mode makes the gateway exit 2 (usage), not 78: the restart policy,
    # not the gateway, has to stop the loop.
    sup.profile("loop", auth={"mode": "bogus"})
    reply = sup.request(Start(profiles=["loop"]))
    assert not reply.ok
    assert "exit 2" in (reply.error or "") and "Invalid --auth" in (reply.error or "")

    fatal = wait_until(
        lambda: (s := sup.status("loop")).state == "FATAL" and s, timeout=10, what="FATAL"
    )
    assert isinstance(fatal, ProfileStatus)
    assert "starts in" in (fatal.last_error or "")
    stderr_log = sup.home / ".openclaw-loop" / "logs" / "gateway.stderr.log"
    starts = stderr_log.read_text().count("error: Invalid --auth")
    assert starts <= BURST_LIMIT
    assert sup.log().count("profile loop: spawned gateway") == starts

    reply = sup.request(Reset(profiles=["loop"]))
    assert reply.ok, reply.error
    assert (reply.profiles[0].state, reply.profiles[0].desired) == ("STOPPED", False)


def test_exit78_port_conflict_is_fatal_at_once_with_the_gateway_message(sup: Harness) -> None:
    port = sup.profile("work")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        reply = sup.request(Start(profiles=["work"]))
        assert not reply.ok
        assert f"port {port} is already in use by pid {os.getpid()}" in (reply.error or "")
        status = sup.status("work")
        assert status.state == "FATAL" and status.last_exit == 78 and status.restarts == 0
        assert status.last_error == reply.error
    finally:
        holder.close()
    # Start clears FATAL.
    reply = sup.request(Start(profiles=["work"]))
    assert reply.ok, reply.error
    assert reply.profiles[0].state == "RUNNING" and readyz(port) == 200


def test_gateways_survive_the_supervisor_and_are_adopted(sup: Harness) -> None:
    port = sup.profile("work")
    reply = sup.request(Start(profiles=["work"]))
    assert reply.ok, reply.error
    pid = reply.profiles[0].pid
    assert pid is not None

    # SIGTERM: the supervisor leaves, its gateway keeps serving.
    first = sup.supervisor_pid()
    os.kill(first, signal.SIGTERM)
    wait_until(lambda: not alive(first, sup.pids[first]), timeout=10, what="supervisor exit")
    assert readyz(port) == 200 and alive(pid, sup.pids[pid])

    # kill -9 of the next one: same.
    assert sup.request(Status()).profiles[0].pid == pid  # autostarted; it adopted the gateway
    second = sup.supervisor_pid()
    assert second != first
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: not alive(second, sup.pids[second]), timeout=10, what="supervisor exit")
    assert readyz(port) == 200 and alive(pid, sup.pids[pid])

    # The next request brings a supervisor that adopts the same gateway, spawning nothing.
    status = sup.request(Status()).profiles[0]
    assert (status.name, status.state, status.pid, status.desired) == ("work", "RUNNING", pid, True)
    assert sup.supervisor_pid() not in (first, second)
    assert "adopted gateway pid" in sup.log()
    assert readyz(port) == 200

    # An adopted gateway is watched like our own: its death is noticed and repaired.
    os.kill(pid, signal.SIGKILL)
    new = sup.wait_running("work", not_pid=pid, timeout=5)
    assert new.last_exit is None and "status unknown" in (new.last_error or "")


def test_concurrent_starts_make_one_gateway(sup: Harness) -> None:
    sup.profile("work")
    assert sup.request(Ping()).ok
    replies: list[ControlReply] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            replies.append(sup.client.request(Start(profiles=["work"])))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(replies) == 10 and all(r.ok for r in replies), [r.error for r in replies]
    pids = {r.profiles[0].pid for r in replies}
    assert len(pids) == 1
    for pid in pids:
        sup.track(pid)
    assert sup.log().count("profile work: spawned gateway") == 1


def test_stale_socket_and_corrupt_desired_state_are_survived(sup: Harness) -> None:
    sdir = supervisor_dir(sup.home)
    sdir.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sdir / "supervisor.sock"))
    stale.close()  # the file stays; connecting to it is refused
    (sdir / "desired.json").write_text("{not json")
    assert not sup.client.is_running()

    assert sup.request(Ping()).ok
    assert stat.S_ISSOCK((sdir / "supervisor.sock").stat().st_mode)
    assert sup.client.is_running()
    assert "corrupt" in sup.log() and "stale" in sup.log()


def test_a_peer_with_another_uid_is_refused(sup: Harness) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    assert sup.request(Ping()).ok
    sdir = supervisor_dir(sup.home)
    # Open the file-system path on purpose, to reach the SO_PEERCRED check behind it.
    os.chmod(sup.home, 0o711)
    os.chmod(sdir, 0o711)
    os.chmod(sdir / "supervisor.sock", 0o666)
    # A forked child that drops to nobody (the venv's python may not be reachable by it).
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(sdir / "supervisor.sock"))
                s.sendall(b'{"op":"ping"}\n')
                os.write(write_end, s.recv(4096))
            status = 0
        except BaseException as err:
            os.write(write_end, repr(err).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    reply = json.loads(answer)
    assert reply == {
        "ok": False,
        "error": "permission denied",
        "profiles": [],
        "tunnels": [],
        "nodes": [],
    }
    assert sup.client.is_running()


def test_identity_naming_an_unrelated_pid_is_never_signalled(sup: Harness) -> None:
    port = sup.profile("work")
    state = sup.home / ".openclaw-work"
    sleeper = subprocess.Popen(["sleep", "60"])
    # Hold the profile lock as a gateway would, and name the sleeper in the identity file:
    # a supervisor must check the command line before adopting (or ever signalling) it.
    lock_fd = os.open(state / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        start = process_start_time(sleeper.pid)
        assert start is not None
        write_identity(
            state / "gateway.identity.json",
            Identity(
                pid=sleeper.pid,
                start_time=start,
                port=port,
                host="127.0.0.1",
                config_path=str(state / "openclaw.json"),
                state_dir=str(state),
                created_at=time.time(),
                version="0",
                profile="work",
            ),
        )
        (supervisor_dir(sup.home)).mkdir(mode=0o700)
        (supervisor_dir(sup.home) / "desired.json").write_text('{"profiles":{"work":true}}')

        status = wait_until(
            lambda: (
                (s := sup.status("work")).state == "FATAL" and s
                if sup.client.is_running() or sup.request(Ping()).ok
                else None
            ),
            timeout=10,
            what="FATAL",
        )
        assert isinstance(status, ProfileStatus)
        assert status.pid is None and status.last_exit == 78
        assert f"gateway already running for profile work (pid {sleeper.pid}" in (
            status.last_error or ""
        )
        assert "not adopted" in sup.log()
        assert sup.request(Stop(profiles=["work"])).ok
        sup.request(Shutdown(stop_gateways=True), autostart=False)
        wait_until(lambda: not sup.client.is_running(), timeout=10, what="shutdown")
        assert sleeper.poll() is None  # never signalled
    finally:
        os.close(lock_fd)
        sleeper.kill()
        sleeper.wait()


def test_a_stopped_gateway_is_detected_by_probes_and_replaced(sup: Harness) -> None:
    port = sup.profile("work")
    reply = sup.request(Start(profiles=["work"]))
    assert reply.ok, reply.error
    old = reply.profiles[0].pid
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    try:
        new = sup.wait_running("work", not_pid=old, timeout=10)
        assert "health probe failed" in (new.last_error or "")
        assert not alive(old, sup.pids[old])
        assert readyz(port) == 200
    finally:
        if alive(old, sup.pids[old]):
            os.kill(old, signal.SIGCONT)
