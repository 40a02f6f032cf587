"""kill -9 of the supervisor frozen at each phase of a start and of a stop.

The supervisor runs with ``OPENCLAW_FAULT_STOP_AT=supervisor.<phase>`` and freezes there; the
test kills it with SIGKILL and lets the next request autostart a fresh supervisor (without the
fault). What was decided before the crash must survive it: the desired state on disk, the
gateway that runs (adopted, never a second one), and nothing left half-stopped.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.errors import SupervisorError
from openclaw_multi.protocol.control import Start, Status, Stop
from openclaw_multi.supervisor.desired import load_desired
from tests.conftest import wait_until
from tests.faults.harness import FaultHome, alive, fault_home, readyz

pytestmark = pytest.mark.e2e


@pytest.fixture
def fh() -> Iterator[FaultHome]:
    with fault_home() as harness:
        yield harness


def _in_background(fh: FaultHome, request: object) -> threading.Thread:
    """Send a request whose answer never comes (the supervisor dies before replying)."""

    def send() -> None:
        with contextlib.suppress(SupervisorError):
            fh.request(request, timeout=20, autostart=False)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("phase", ["supervisor.spawned", "supervisor.ready"])
def test_supervisor_killed_during_a_start_loses_nothing(fh: FaultHome, phase: str) -> None:
    port = fh.profile("work")
    proc = fh.start_supervisor(fault=phase)
    sender = _in_background(fh, Start(profiles=["work"]))
    fh.wait_stopped(proc.pid)
    gateway = fh.wait_spawned("work")
    # The gateway needs no supervisor: it comes up on its own.
    wait_until(lambda: readyz(port) == 200, 10, "gateway ready without its supervisor")
    assert load_desired(supervisor_dir(fh.home) / "desired.json") == {"work": True}

    fh.kill_supervisor(proc.pid)
    sender.join(timeout=30)
    assert alive(gateway, None)  # a supervisor crash never takes a gateway down

    # The next command brings a supervisor that adopts it; no second gateway is spawned.
    reply = fh.request(Status())
    (work,) = reply.profiles
    assert (work.state, work.pid, work.desired) == ("RUNNING", gateway, True)
    assert "adopted gateway pid" in fh.log()
    fh.check({"work"})
    assert fh.listing()["work"]["state"] == "RUNNING"


def test_supervisor_killed_before_signalling_a_stop(fh: FaultHome) -> None:
    fh.profile("work")
    proc = fh.start_supervisor(fault="supervisor.stop-begin")
    reply = fh.request(Start(profiles=["work"]), timeout=30)
    assert reply.ok, reply.error
    gateway = reply.profiles[0].pid
    assert gateway is not None
    sender = _in_background(fh, Stop(profiles=["work"]))
    fh.wait_stopped(proc.pid)
    # The stop was decided and saved, nothing was signalled yet.
    assert load_desired(supervisor_dir(fh.home) / "desired.json") == {}
    fh.kill_supervisor(proc.pid)
    sender.join(timeout=30)

    # A gateway that serves is adopted, and so desired again: a supervisor never stops a
    # gateway just by starting. The stop that never completed has to be asked again.
    reply = fh.request(Status())
    assert (reply.profiles[0].state, reply.profiles[0].pid) == ("RUNNING", gateway)
    fh.check({"work"})
    assert load_desired(supervisor_dir(fh.home) / "desired.json") == {"work": True}
    reply = fh.request(Stop(profiles=["work"]), timeout=30)
    assert reply.ok, reply.error
    fh.check(set())


def test_supervisor_killed_after_signalling_a_stop(fh: FaultHome) -> None:
    fh.profile("work")
    proc = fh.start_supervisor(fault="supervisor.stop-signalled")
    reply = fh.request(Start(profiles=["work"]), timeout=30)
    assert reply.ok, reply.error
    gateway = reply.profiles[0].pid
    assert gateway is not None
    sender = _in_background(fh, Stop(profiles=["work"]))
    fh.wait_stopped(proc.pid)
    assert not alive(gateway, None)  # it got SIGTERM and drained
    fh.kill_supervisor(proc.pid)
    sender.join(timeout=30)

    reply = fh.request(Status())
    (work,) = reply.profiles
    assert (work.state, work.pid, work.desired) == ("STOPPED", None, False)
    fh.check(set())
    row = fh.listing()["work"]
    assert (row["state"], row["health"]) == ("STOPPED", "down")
