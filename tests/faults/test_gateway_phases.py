"""kill -9 of a supervised gateway frozen at each phase of its life (faults.checkpoint).

The supervisor is started with ``OPENCLAW_FAULT_STOP_AT=<phase>`` and a one-shot marker, so
the first gateway it spawns freezes (SIGSTOP) exactly at that phase and its replacement does
not. The test waits for state ``T``, kills it with SIGKILL, and checks the recovery: one new
gateway serving, nothing orphaned, files intact, and the CLI naming the signal.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.protocol.control import ControlReply, Start, Stop
from tests.faults.harness import FaultHome, fault_home

pytestmark = pytest.mark.e2e


@pytest.fixture
def fh() -> Iterator[FaultHome]:
    with fault_home() as harness:
        yield harness


STARTING_PHASES = ["gateway.before-lock", "gateway.locked", "gateway.bound", "gateway.published"]


def _desire(fh: FaultHome, *names: str) -> None:
    sdir = supervisor_dir(fh.home)
    sdir.mkdir(mode=0o700, exist_ok=True)
    profiles = ",".join(f'"{n}":true' for n in names)
    (sdir / "desired.json").write_text(f'{{"version":1,"profiles":{{{profiles}}}}}')


@pytest.mark.parametrize("phase", [*STARTING_PHASES, "gateway.serving"])
def test_gateway_killed_at_phase_is_replaced(fh: FaultHome, phase: str) -> None:
    fh.profile("work")
    fh.profile("other")  # an unrelated profile, not desired: must stay down throughout
    _desire(fh, "work")
    fh.start_supervisor(fault=phase)
    frozen = fh.wait_spawned("work")
    fh.wait_stopped(frozen)
    expected_state = "RUNNING" if phase == "gateway.serving" else "STARTING"
    assert fh.status("work").state == expected_state

    os.kill(frozen, signal.SIGKILL)
    fh.wait_spawned("work", not_pid=frozen)
    status = fh.wait_state("work", "RUNNING")
    assert status.pid not in (None, frozen)
    assert status.restarts == 1 and status.last_exit == -signal.SIGKILL
    assert "killed by signal 9" in (status.last_error or "")
    fh.check({"work"})

    row = fh.listing()["work"]
    assert (row["state"], row["health"], row["pid"], row["restarts"]) == (
        "RUNNING",
        "ok",
        status.pid,
        1,
    )
    assert row["lastExit"] == -9 and "killed by signal 9" in row["lastError"]
    assert fh.listing()["other"]["state"] == "STOPPED"


def test_gateway_killed_while_stopping(fh: FaultHome) -> None:
    fh.profile("work")
    _desire(fh, "work")
    fh.start_supervisor(fault="gateway.stopping")
    pid = fh.wait_state("work", "RUNNING").pid
    assert pid is not None
    replies: list[ControlReply] = []
    stopper = threading.Thread(
        target=lambda: replies.append(fh.request(Stop(profiles=["work"]), timeout=30))
    )
    stopper.start()
    try:
        fh.wait_stopped(pid)  # got SIGTERM, froze before draining
        assert fh.status("work").state == "STOPPING"
        os.kill(pid, signal.SIGKILL)
    finally:
        stopper.join(timeout=30)
    (reply,) = replies
    assert reply.ok, reply.error
    assert (reply.profiles[0].state, reply.profiles[0].desired) == ("STOPPED", False)
    fh.check(set())
    row = fh.listing()["work"]
    assert (row["state"], row["desired"], row["health"]) == ("STOPPED", False, "down")

    # The profile is not damaged: it starts again (the one-shot fault is spent).
    reply = fh.request(Start(profiles=["work"]), timeout=30)
    assert reply.ok, reply.error
    fh.check({"work"})
