"""What every fault test shares: a throw-away home, its supervisor, and the invariants.

A :class:`FaultHome` is one short temp home (unix socket paths are limited to 107 bytes)
with small restart-policy numbers. Its supervisor is either autostarted by
:class:`SupervisorClient` (no fault) or started here as a foreground program with
``OPENCLAW_FAULT_STOP_AT`` set (see ``openclaw_multi/faults.py``), so the fault reaches the
supervisor and, through it, its gateways; the supervisor a later request autostarts carries
no fault.

After each fault, :meth:`FaultHome.check` asserts the invariants of docs/reliability.md:

* exactly the expected profiles have a gateway: one live process each, whose pid and start
  time are those of the profile's identity file, answering ``/readyz`` 200 on its port;
* nothing is orphaned: no other gateway process of this home is alive (found by scanning
  every process for ``openclaw_multi.gateway`` in its command line and this home in its
  environment or working directory);
* nothing is corrupted: ``desired.json``, identity files and configs parse;
* the CLI tells what happened: ``openclaw profiles list --json`` agrees.

Only processes of this home are ever signalled (found by that scan or recorded when this
harness started them), by pid, after checking their start time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil

from openclaw_multi.client.control import SupervisorClient, supervisor_dir
from openclaw_multi.errors import SupervisorError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.lock import Identity, process_start_time, read_identity
from openclaw_multi.protocol.control import ControlReply, ProfileStatus, Shutdown, Status
from openclaw_multi.supervisor.desired import DesiredState
from tests.conftest import clean_env, free_port, wait_until

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]

FAST_POLICY = {
    "OPENCLAW_SUPERVISOR_BACKOFF_INITIAL": "0.1",
    "OPENCLAW_SUPERVISOR_BACKOFF_MAX": "0.4",
    "OPENCLAW_SUPERVISOR_STABLE_AFTER": "30",
    "OPENCLAW_SUPERVISOR_BURST_LIMIT": "3",
    "OPENCLAW_SUPERVISOR_BURST_WINDOW": "30",
    "OPENCLAW_SUPERVISOR_READY_TIMEOUT": "10",
    "OPENCLAW_SUPERVISOR_STOP_TIMEOUT": "3",
    # Long enough that a test that froze a gateway on purpose is the one that kills it.
    "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "5",
    "OPENCLAW_SUPERVISOR_PROBE_FAILURES": "2",
    "OPENCLAW_SUPERVISOR_PROBE_TIMEOUT": "0.5",
}


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (``T`` stopped, ``Z`` zombie), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()[0]


def alive(pid: int, start_time: int | None) -> bool:
    """The same process (pid and start time) runs and is not a zombie."""
    state = proc_state(pid)
    if state is None or state in "ZX":
        return False
    return start_time is None or process_start_time(pid) == start_time


def readyz(port: int, timeout: float = 1.0) -> int | None:
    """The status of GET /readyz, or None if nobody answers within ``timeout``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass(frozen=True)
class GatewayProc:
    """A live gateway process of the test home, from a process-table scan."""

    pid: int
    start_time: int | None
    profile: str


class FaultHome:
    """One home, its supervisor(s), its profiles; every process worth cleaning up."""

    def __init__(self, home: Path, **policy: str) -> None:
        self.home = home
        self.env = clean_env(home, **{**FAST_POLICY, **policy})
        self.client = SupervisorClient(home, env=self.env)
        self.ports: dict[str, int] = {}
        self.supervisors: dict[int, int | None] = {}  # pid -> start time
        self._popen: list[subprocess.Popen[bytes]] = []

    # --- set-up ----------------------------------------------------------------------

    def state_dir(self, name: str) -> Path:
        return self.home / f".openclaw-{name}"

    def profile(self, name: str, **gateway: object) -> int:
        """Configure a profile with its own free port (>= 20 from every other one)."""
        for _ in range(200):
            port = free_port()
            if all(abs(port - p) >= 20 for p in self.ports.values()):
                break
        self.ports[name] = port
        state = self.state_dir(name)
        state.mkdir(mode=0o700, exist_ok=True)
        (state / "openclaw.json").write_text(json.dumps({"gateway": {"port": port, **gateway}}))
        return port

    def start_supervisor(self, fault: str | None = None) -> subprocess.Popen[bytes]:
        """Run ``python -m openclaw_multi.supervisor --foreground`` (optionally with a fault)."""
        env = dict(self.env, OPENCLAW_HOME=str(self.home))
        if fault is not None:
            env["OPENCLAW_FAULT_STOP_AT"] = fault
            env["OPENCLAW_FAULT_ONCE"] = str(self.home / f"fault-{fault}.once")
        supervisor_dir(self.home).mkdir(mode=0o700, exist_ok=True)
        out = self.home / "supervisor-foreground.out"
        with out.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "openclaw_multi.supervisor", "--foreground"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._popen.append(proc)
        self.supervisors[proc.pid] = process_start_time(proc.pid)
        wait_until(lambda: self.client.is_running() or proc.poll() is not None, 20, "supervisor up")
        assert proc.poll() is None, out.read_text()
        return proc

    def supervisor_pid(self) -> int:
        data = json.loads((supervisor_dir(self.home) / "supervisor.json").read_text())
        pid = int(data["pid"])
        self.supervisors.setdefault(pid, process_start_time(pid))
        return pid

    def kill_supervisor(self, pid: int) -> None:
        """``kill -9`` a supervisor of this home and wait until it is gone (reaped if ours)."""
        assert alive(pid, self.supervisors.get(pid))
        os.kill(pid, signal.SIGKILL)
        for proc in self._popen:
            if proc.pid == pid:
                proc.wait(timeout=10)
        wait_until(lambda: not alive(pid, None), 10, f"supervisor {pid} gone")

    # --- observing ---------------------------------------------------------------------

    def request(self, req: Any, **kwargs: Any) -> ControlReply:
        return self.client.request(req, **kwargs)

    def status(self, name: str) -> ProfileStatus:
        reply = self.request(Status(), autostart=False)
        return next(p for p in reply.profiles if p.name == name)

    def wait_state(self, name: str, state: str, timeout: float = 15.0) -> ProfileStatus:
        def reached() -> ProfileStatus | None:
            status = self.status(name)
            return status if status.state == state else None

        try:
            found = wait_until(reached, timeout, f"{name} {state}")
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- supervisor.log ---\n{self.log()[-3000:]}") from None
        assert isinstance(found, ProfileStatus)
        return found

    def log(self) -> str:
        try:
            return (supervisor_dir(self.home) / "supervisor.log").read_text()
        except OSError:
            return ""

    def identity(self, name: str) -> Identity | None:
        return read_identity(self.state_dir(name) / "gateway.identity.json")

    def gateways(self) -> list[GatewayProc]:
        """Every live gateway process of this home (zombies excluded)."""
        found: list[GatewayProc] = []
        home = str(self.home)
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                argv = proc.info["cmdline"] or []
                if "openclaw_multi.gateway" not in argv or proc.info["status"] == "zombie":
                    continue
                env = proc.environ()
                cwd = proc.cwd()
            except (psutil.Error, OSError):
                continue
            mine = home in (env.get("OPENCLAW_HOME"), env.get("HOME")) or cwd.startswith(home)
            if not mine:
                continue
            profile = argv[argv.index("--profile") + 1] if "--profile" in argv else "default"
            found.append(GatewayProc(proc.pid, process_start_time(proc.pid), profile))
        return found

    def wait_stopped(self, pid: int, timeout: float = 30.0) -> None:
        """Wait until ``pid`` shows state T (it reached its fault checkpoint)."""
        wait_until(lambda: proc_state(pid) == "T", timeout, f"pid {pid} stopped at checkpoint")

    def wait_spawned(self, name: str, timeout: float = 30.0, not_pid: int | None = None) -> int:
        """The pid of a gateway process of ``name`` (other than ``not_pid``) once one exists."""

        def one() -> int | None:
            pids = [g.pid for g in self.gateways() if g.profile == name and g.pid != not_pid]
            return pids[0] if pids else None

        pid = wait_until(one, timeout, f"a gateway process of {name}")
        assert isinstance(pid, int)
        return pid

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def listing(self) -> dict[str, dict[str, Any]]:
        """``openclaw profiles list --json``, by name."""
        result = self.cli("profiles", "list", "--json")
        assert result.returncode in (0, 1), result.stderr
        return {row["name"]: row for row in json.loads(result.stdout)}

    # --- the invariants ----------------------------------------------------------------

    def check(self, running: set[str], *, skip_config: frozenset[str] = frozenset()) -> None:
        """Assert the invariants: exactly ``running`` serve, nothing orphaned or corrupted."""
        procs = self.gateways()
        by_profile: dict[str, list[GatewayProc]] = {}
        for proc in procs:
            by_profile.setdefault(proc.profile, []).append(proc)
        assert set(by_profile) == running, f"gateways {by_profile}, expected {running}"
        for name in running:
            (proc,) = by_profile[name]  # exactly one per profile
            identity = self.identity(name)
            assert identity is not None, f"{name}: no readable identity"
            assert (identity.pid, identity.start_time) == (proc.pid, proc.start_time)
            assert readyz(identity.port) == 200, f"{name}: /readyz on {identity.port}"
        for name in self.ports:
            state = self.state_dir(name)
            ident = state / "gateway.identity.json"
            if name not in running and ident.exists():
                stale = read_identity(ident)
                assert stale is None or not alive(stale.pid, stale.start_time)
            if name not in skip_config:
                load_config(state / "openclaw.json")  # raises if it no longer parses
        desired = supervisor_dir(self.home) / "desired.json"
        if desired.exists() and desired.read_bytes().strip():
            msgspec.json.decode(desired.read_bytes(), type=DesiredState)

    # --- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.supervisor_pid()
        with contextlib.suppress(SupervisorError):
            if self.client.is_running():
                self.client.request(Shutdown(stop_gateways=True), timeout=20, autostart=False)
        for pid, start in self.supervisors.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for proc in self._popen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for gateway in self.gateways():
            if alive(gateway.pid, gateway.start_time):
                os.kill(gateway.pid, signal.SIGCONT)
                os.kill(gateway.pid, signal.SIGKILL)


@contextlib.contextmanager
def fault_home(**policy: str) -> Iterator[FaultHome]:
    home = Path(tempfile.mkdtemp(prefix="ocf-"))
    harness = FaultHome(home, **policy)
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def until(deadline_s: float) -> float:
    """A monotonic deadline ``deadline_s`` from now (for bounded loops)."""
    return time.monotonic() + deadline_s
