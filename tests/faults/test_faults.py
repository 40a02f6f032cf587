"""Faults that are not a phase: crash loops, a hung gateway, a stolen port, a reused pid,
and corrupted or truncated identity, desired-state and config files.

Each test ends with :meth:`FaultHome.check` (exactly the expected gateways, nothing orphaned,
nothing corrupted) and looks at what ``openclaw profiles list --json`` says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.profiles.lock import Identity, process_start_time, write_identity
from openclaw_multi.protocol.control import Start, Status
from openclaw_multi.supervisor.desired import load_desired
from tests.conftest import wait_until
from tests.faults.harness import FaultHome, alive, fault_home, readyz
from tests.wire import Wire

pytestmark = pytest.mark.e2e


@pytest.fixture
def fh() -> Iterator[FaultHome]:
    with fault_home() as harness:
        yield harness


def _run(fh: FaultHome, name: str) -> int:
    reply = fh.request(Start(profiles=[name]), timeout=30)
    assert reply.ok, reply.error
    pid = reply.profiles[0].pid
    assert pid is not None
    return pid


def _leave_unsupervised(fh: FaultHome) -> None:
    """kill -9 the supervisor; its gateways keep serving."""
    fh.kill_supervisor(fh.supervisor_pid())


def test_crash_loop_is_bounded_and_reported() -> None:
    with fault_home(OPENCLAW_SUPERVISOR_BURST_LIMIT="3") as fh:
        # An unknown auth mode: the gateway exits 2 (usage, not 78) on every start, so only
        # the restart policy can end the loop.
        fh.profile("loop", auth={"mode": "bogus"})
        fh.profile("work")
        _run(fh, "work")
        reply = fh.request(Start(profiles=["loop"]), timeout=30)
        assert not reply.ok and "exit 2" in (reply.error or "")
        status = fh.wait_state("loop", "FATAL")
        assert "gave up after 3 starts in 30 s" in (status.last_error or "")
        assert "Invalid --auth" in (status.last_error or "")
        spawned = fh.log().count("profile loop: spawned gateway")
        stderr_log = fh.state_dir("loop") / "logs" / "gateway.stderr.log"
        assert spawned == 3 == stderr_log.read_text().count("error: Invalid --auth")
        # FATAL is final: no spawn since (the CLI listing below adds a round of probes).
        assert fh.status("loop").state == "FATAL"
        assert fh.log().count("profile loop: spawned gateway") == spawned
        fh.check({"work"})
        row = fh.listing()["loop"]
        assert (row["state"], row["health"]) == ("FATAL", "down")
        assert row["lastError"] == status.last_error
        assert fh.log().count("profile loop: spawned gateway") == spawned


def test_hung_gateway_is_detected_and_replaced() -> None:
    with fault_home(OPENCLAW_SUPERVISOR_PROBE_INTERVAL="0.3") as fh:
        port = fh.profile("work")
        old = _run(fh, "work")
        old_start = process_start_time(old)
        os.kill(old, signal.SIGSTOP)  # accepts TCP (kernel backlog), never answers
        try:
            new = wait_until(
                lambda: (s := fh.status("work")).state == "RUNNING" and s.pid != old and s,
                15,
                "replacement",
            )
        finally:
            if alive(old, old_start):
                os.kill(old, signal.SIGCONT)
        assert not alive(old, old_start)
        assert "health probe failed 2 times in a row (hung?)" in (new.last_error or "")  # type: ignore[union-attr]
        assert readyz(port) == 200
        fh.check({"work"})
        row = fh.listing()["work"]
        assert row["restarts"] == 1 and "hung" in row["lastError"]


def test_port_stolen_between_stop_and_start(fh: FaultHome) -> None:
    port = fh.profile("work")
    assert fh.cli("profiles", "start", "work").returncode == 0
    assert fh.cli("profiles", "stop", "work").returncode == 0
    fh.check(set())
    thief = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys\n"
            f"s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen()\n"
            "print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert thief.stdout is not None and thief.stdout.readline() == b"ok\n"
        # The CLI refuses up front, naming the holder.
        result = fh.cli("profiles", "start", "work")
        assert result.returncode == 78, result.stderr
        assert f"port {port} is already in use by pid {thief.pid}" in result.stderr
        # Past the CLI's check (asked directly): the gateway exits 78, FATAL at once.
        reply = fh.request(Start(profiles=["work"]), timeout=30)
        assert not reply.ok and f"in use by pid {thief.pid}" in (reply.error or "")
        status = fh.status("work")
        assert (status.state, status.last_exit, status.restarts) == ("FATAL", 78, 0)
        row = fh.listing()["work"]
        assert row["state"] == "FATAL" and f"pid {thief.pid}" in row["lastError"]
        fh.check(set())
    finally:
        thief.kill()
        thief.communicate()  # reaps it and closes its pipes
    result = fh.cli("profiles", "start", "work")
    assert result.returncode == 0, result.stderr
    fh.check({"work"})


@pytest.mark.parametrize("same_start_time", [False, True], ids=["reused-pid", "forged"])
def test_identity_naming_an_unrelated_process(fh: FaultHome, same_start_time: bool) -> None:
    """A dead gateway's identity whose pid now belongs to another program: never signalled,
    never adopted. With another start time (a real reuse) the identity is stale and the
    profile starts; with the same start time (only a forged file can do that) the gateway
    refuses to run beside it (78) and says whom it found."""
    port = fh.profile("work")
    state = fh.state_dir("work")
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        start = process_start_time(sleeper.pid)
        assert start is not None
        write_identity(
            state / "gateway.identity.json",
            Identity(
                pid=sleeper.pid,
                start_time=start if same_start_time else start + 12345,
                port=port,
                host="127.0.0.1",
                config_path=str(state / "openclaw.json"),
                state_dir=str(state),
                created_at=time.time(),
                version="0.1.0",
                profile="work",
            ),
        )
        reply = fh.request(Start(profiles=["work"]), timeout=30)
        if same_start_time:
            assert not reply.ok
            assert f"gateway already running for profile work (pid {sleeper.pid}" in (
                reply.error or ""
            )
            assert fh.status("work").state == "FATAL"
            assert fh.gateways() == []  # (check() would object to the live identity)
        else:
            assert reply.ok, reply.error
            assert reply.profiles[0].pid != sleeper.pid
            fh.check({"work"})
        assert "adopted" not in fh.log()
        assert sleeper.poll() is None and alive(sleeper.pid, start)  # never signalled
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("content", [b"", b'{"pid": 12', b"\x00\xff garbage", b"[]"])
def test_corrupt_identity_of_a_dead_gateway_is_reclaimed(fh: FaultHome, content: bytes) -> None:
    fh.profile("work")
    gateway = _run(fh, "work")
    _leave_unsupervised(fh)
    os.kill(gateway, signal.SIGKILL)
    wait_until(lambda: not alive(gateway, None), 10, "gateway gone")
    (fh.state_dir("work") / "gateway.identity.json").write_bytes(content)

    reply = fh.request(Status())  # autostarts a supervisor; desired.json says work runs
    assert reply.ok
    status = fh.wait_state("work", "RUNNING")
    assert status.pid != gateway
    fh.check({"work"})  # the identity file was rewritten whole by the new gateway


def test_corrupt_identity_of_a_live_gateway_is_never_signalled(fh: FaultHome) -> None:
    """The supervisor cannot tell who holds the lock: it does not adopt, does not signal,
    does not start a second gateway; the profile is FATAL with the gateway's own words."""
    port = fh.profile("work")
    gateway = _run(fh, "work")
    start = process_start_time(gateway)
    _leave_unsupervised(fh)
    (fh.state_dir("work") / "gateway.identity.json").write_bytes(b'{"pid": ')

    fh.request(Status())
    status = fh.wait_state("work", "FATAL")
    assert status.last_exit == 78
    assert "gateway already running for profile work" in (status.last_error or "")
    assert alive(gateway, start) and readyz(port) == 200
    assert [g.pid for g in fh.gateways()] == [gateway]
    assert fh.listing()["work"]["state"] == "FATAL"


@pytest.mark.parametrize("content", [b'{"version":1,"profiles":{"wo', b"\x00" * 64, b"[1,2]"])
def test_corrupt_desired_state_is_survived(fh: FaultHome, content: bytes) -> None:
    fh.profile("work")
    gateway = _run(fh, "work")
    _leave_unsupervised(fh)
    desired = supervisor_dir(fh.home) / "desired.json"
    desired.write_bytes(content)

    reply = fh.request(Status())  # a supervisor comes up on a corrupt file...
    assert reply.ok
    assert (reply.profiles[0].state, reply.profiles[0].pid) == ("RUNNING", gateway)
    assert "corrupt" in fh.log()
    # ...adopts what runs, and writes a whole, valid desired state again.
    assert load_desired(desired) == {"work": True}
    fh.check({"work"})


def test_corrupt_config_is_reported_and_never_rewritten(fh: FaultHome) -> None:
    fh.profile("work")
    fh.profile("other")
    gateway = _run(fh, "work")
    _run(fh, "other")
    config = fh.state_dir("work") / "openclaw.json"
    broken = config.read_bytes()[:-7]  # truncated mid-file
    config.write_bytes(broken)
    before = config.stat()

    os.kill(gateway, signal.SIGKILL)  # the replacement reads the broken config
    status = fh.wait_state("work", "FATAL")
    assert status.last_exit == 78
    assert f"{config}:1:" in (status.last_error or "")
    row = fh.listing()["work"]
    assert row["state"] == "FATAL" and str(config) in row["lastError"]

    result = fh.cli("profiles", "start", "work")
    assert result.returncode == 78 and f"{config}:1:" in result.stderr
    after = config.stat()
    assert config.read_bytes() == broken
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    fh.check({"other"}, skip_config=frozenset({"work"}))


def test_secrets_never_leak_through_faults(fh: FaultHome) -> None:
    """A token profile through a crash, a refused client and a restart: the token shows up in
    no log, no listing, no state file, no command line and no environment but its config."""
    token = "s3cr3t-" + os.urandom(12).hex()
    fh.profile("work", auth={"mode": "token", "token": token})
    gateway = _run(fh, "work")
    wire = Wire(fh.ports["work"])
    try:
        refused = wire.hello(auth={"token": token[::-1]})
        assert refused["ok"] is False
    finally:
        wire.close()
    os.kill(gateway, signal.SIGKILL)
    new = wait_until(
        lambda: (s := fh.status("work")).state == "RUNNING" and s.pid != gateway and s.pid,
        15,
        "restart",
    )
    assert isinstance(new, int)
    result = fh.cli("profiles", "list", "--json")
    show = fh.cli("profiles", "show", "work", "--json")
    places: dict[str, bytes] = {
        "list": result.stdout.encode() + result.stderr.encode(),
        "show": show.stdout.encode() + show.stderr.encode(),
    }
    for path in fh.home.rglob("*"):
        if path.is_file() and path.name != "openclaw.json":
            places[str(path)] = path.read_bytes()
    for pid in (new, fh.supervisor_pid()):
        for what in ("cmdline", "environ"):
            places[f"/proc/{pid}/{what}"] = Path(f"/proc/{pid}/{what}").read_bytes()
    leaked = [where for where, data in places.items() if token.encode() in data]
    assert leaked == []
    assert any("gateway.log" in where for where in places)  # the logs were looked at
    fh.check({"work"})
