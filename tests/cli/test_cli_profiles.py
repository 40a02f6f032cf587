"""``openclaw profiles ...`` and ``openclaw supervisor ...`` as a person runs them: real processes.

Every command is ``python -m openclaw_multi.cli.main`` in a fresh home. Synchronisation is
by waiting on conditions (``wait_until``), never by sleeping. Whatever a test starts is
stopped in a finalizer: ``openclaw supervisor stop --all``, then any gateway pid we saw is
killed after checking it is still the process we recorded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import clean_env, free_port, wait_until
from wire import Wire

from openclaw_multi.profiles.lock import identity_matches_process, read_identity
from openclaw_multi.profiles.ports import PORT_BLOCK, derived_port

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]
ROW_KEYS = {
    "name",
    "state",
    "desired",
    "supervised",
    "owner",
    "shouldRun",
    "health",
    "latencyMs",
    "pid",
    "port",
    "bind",
    "uptimeS",
    "restarts",
    "lastExit",
    "lastError",
    "clients",
    "rssBytes",
    "version",
    "stateDir",
}


@dataclass
class Host:
    """A home directory with the CLI pointed at it, and what to clean up afterwards."""

    home: Path
    ports: list[int] = field(default_factory=list)
    pids: dict[int, object] = field(default_factory=dict)

    def run(
        self, *args: str, timeout: float = 60.0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=clean_env(self.home),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def port(self) -> int:
        """A free port whose block is at least PORT_BLOCK away from every one handed out."""
        for _ in range(100):
            candidate = free_port()
            if all(abs(candidate - p) >= PORT_BLOCK for p in self.ports):
                self.ports.append(candidate)
                return candidate
        raise AssertionError("no free port block")

    def create(self, name: str, *extra: str) -> int:
        port = self.port()
        result = self.run("profiles", "create", name, "--port", str(port), *extra)
        assert result.returncode == 0, result.stderr
        return port

    def state_dir(self, name: str) -> Path:
        return self.home / f".openclaw-{name}"

    def remember(self, name: str) -> int | None:
        """Record the gateway of ``name`` (from its identity file) for cleanup."""
        identity = read_identity(self.state_dir(name) / "gateway.identity.json")
        if identity is None:
            return None
        self.pids[identity.pid] = identity
        return identity.pid

    def rows(self) -> tuple[int, list[dict[str, object]]]:
        result = self.run("profiles", "list", "--json")
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, json.loads(result.stdout)

    def row(self, name: str) -> dict[str, object]:
        _code, rows = self.rows()
        return next(r for r in rows if r["name"] == name)


@pytest.fixture
def host(home: Path) -> Iterator[Host]:
    h = Host(home)
    yield h
    h.run("supervisor", "stop", "--all", timeout=90)
    for pid, identity in h.pids.items():
        if identity_matches_process(identity):  # type: ignore[arg-type]
            os.kill(pid, signal.SIGKILL)
    sup = home / ".openclaw-supervisor" / "supervisor.json"
    if sup.exists():
        try:
            pid = json.loads(sup.read_text())["pid"]
            proc = psutil.Process(pid)
            if "openclaw_multi.supervisor" in " ".join(proc.cmdline()):
                proc.kill()
        except (psutil.Error, OSError, ValueError, KeyError):
            pass


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- create ------------------------------------------------------------------------------


def test_create_derived_port_writes_private_config(host: Host) -> None:
    result = host.run("profiles", "create", "work")
    if result.returncode == 78 and "in use" in result.stderr:
        pytest.skip("the derived port of 'work' is busy on this machine")
    assert result.returncode == 0, result.stderr
    config = host.state_dir("work") / "openclaw.json"
    assert json.loads(config.read_text())["gateway"]["port"] == derived_port("work") == 41984
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(host.state_dir("work").stat().st_mode) == 0o700
    again = host.run("profiles", "create", "work")
    assert again.returncode == 1
    assert again.stderr.strip() == (f"error: profile work already exists ({config})")


def test_create_explicit_port_and_overlap_names_other_profile(host: Host) -> None:
    port = host.create("work")
    config = host.state_dir("work") / "openclaw.json"
    assert json.loads(config.read_text())["gateway"]["port"] == port
    clash = host.run("profiles", "create", "personal", "--port", str(port + 5))
    assert clash.returncode == 78
    assert "profile work" in clash.stderr and str(port) in clash.stderr
    assert clash.stderr.startswith("error: ") and clash.stderr.count("\n") == 1
    assert not host.state_dir("personal").exists()


def test_create_refuses_port_held_by_another_process(host: Host) -> None:
    port = host.port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = host.run("profiles", "create", "work", "--port", str(port))
    assert result.returncode == 78
    assert f"port {port} is already in use by pid {os.getpid()}" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (host.state_dir("work") / "openclaw.json").exists()


def test_generate_token_is_stored_0600_and_never_printed(host: Host) -> None:
    port = host.port()
    result = host.run("profiles", "create", "work", "--port", str(port), "--generate-token")
    assert result.returncode == 0, result.stderr
    config = host.state_dir("work") / "openclaw.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    auth = json.loads(config.read_text())["gateway"]["auth"]
    assert auth["mode"] == "token" and len(auth["token"]) >= 40
    assert auth["token"] not in result.stdout + result.stderr
    assert str(config) in result.stdout  # says where it is
    shown = host.run("profiles", "show", "work", "--json")
    assert shown.returncode == 0, shown.stderr
    assert auth["token"] not in shown.stdout
    assert json.loads(shown.stdout)["authMode"] == "token"


def test_create_from_example_config(host: Host) -> None:
    repo = Path(__file__).resolve().parents[2]
    port = host.port()
    example = repo / "profiles" / "work.json5"
    result = host.run(
        "profiles", "create", "w1", "--from", str(example), "--port", str(port), "--generate-token"
    )
    assert result.returncode == 0, result.stderr
    gateway = json.loads((host.state_dir("w1") / "openclaw.json").read_text())["gateway"]
    assert gateway["bind"] == "loopback" and gateway["port"] == port
    # Without a token, token auth from the example is refused up front.
    bare = host.run("profiles", "create", "w2", "--from", str(example), "--port", str(host.port()))
    assert bare.returncode == 2 and "--generate-token" in bare.stderr


@pytest.mark.parametrize("name", ["bad name", "-x", "a" * 65, "wörk"])
def test_invalid_names_exit_2(host: Host, name: str) -> None:
    for args in (("create", name), ("show", name), ("logs", name), ("rm", name)):
        result = host.run("profiles", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert list(host.home.iterdir()) == []


def test_invalid_port_exit_2(host: Host) -> None:
    for bad in ("0", "65536", "-1", "http"):
        result = host.run("profiles", "create", "work", "--port", bad)
        assert result.returncode == 2
        assert "Invalid --port" in result.stderr


def test_global_profile_flag_selects_the_profile(host: Host) -> None:
    port = host.create("work")
    shown = host.run("--profile", "work", "profiles", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["name"] == "work" and info["port"] == port
    clash = host.run("--profile", "work", "profiles", "show", "other")
    assert clash.returncode == 2


def test_broken_config_exits_78_with_position_and_file_unchanged(host: Host) -> None:
    host.create("work")
    config = host.state_dir("work") / "openclaw.json"
    broken = b"{\n  gateway: {\n    port: 1234,,\n  },\n}\n"
    config.write_bytes(broken)
    os.chmod(config, 0o600)
    for args in (("show", "work"), ("start", "work")):
        result = host.run("profiles", *args)
        assert result.returncode == 78, (args, result.stderr)
        assert f"{config}:3:" in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert config.read_bytes() == broken


# --- logs / rm without a gateway --------------------------------------------------------


def test_logs_last_lines(host: Host) -> None:
    host.create("work")
    log = host.state_dir("work") / "logs" / "gateway.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    result = host.run("profiles", "logs", "work", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["line 97", "line 98", "line 99"]
    assert len(host.run("profiles", "logs", "work").stdout.splitlines()) == 50


def test_rm_keeps_dir_and_purge_needs_confirmation(host: Host) -> None:
    host.create("work")
    kept = host.run("profiles", "rm", "work")
    assert kept.returncode == 0, kept.stderr
    assert host.state_dir("work").is_dir()
    refused = host.run("profiles", "rm", "work", "--purge")  # stdin is not a terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert host.state_dir("work").is_dir()
    purged = host.run("profiles", "rm", "work", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert not host.state_dir("work").exists()
    missing = host.run("profiles", "rm", "work")
    assert missing.returncode == 1


def test_list_with_nothing_running(host: Host) -> None:
    empty = host.run("profiles", "list")
    assert empty.returncode == 0 and "no profiles" in empty.stdout
    host.create("work")
    host.create("personal")
    code, rows = host.rows()
    assert code == 0
    assert [r["name"] for r in rows] == ["personal", "work"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["state"] == "STOPPED" and row["health"] == "down" and row["pid"] is None
    table = host.run("profiles", "list")
    assert table.returncode == 0
    header, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "HEALTH"]
    assert "\x1b[" not in table.stdout  # no colour when not a terminal
    assert lines[0].index("STOPPED") == header.index("STATE")


# --- with the supervisor --------------------------------------------------------------------


def _start(host: Host, *names: str) -> subprocess.CompletedProcess[str]:
    result = host.run("profiles", "start", *names, timeout=90)
    for name in names:
        host.remember(name)
    return result


@pytest.mark.e2e
def test_start_list_stop(host: Host) -> None:
    port = host.create("work")
    started = _start(host, "work")
    assert started.returncode == 0, started.stderr
    pid = host.remember("work")
    assert pid is not None
    assert started.stdout.startswith(f"work: running (pid {pid}, port {port}) in ")
    code, rows = host.rows()
    assert code == 0
    (row,) = rows
    assert set(row) == ROW_KEYS
    assert row["state"] == "RUNNING" and row["health"] == "ok" and row["pid"] == pid
    assert row["port"] == port and row["bind"] == "loopback" and row["supervised"] is True
    assert isinstance(row["latencyMs"], float) and isinstance(row["rssBytes"], int)
    assert row["version"] and row["desired"] is True and row["shouldRun"] is True
    table = host.run("profiles", "list")
    assert table.returncode == 0 and " ok " in table.stdout
    client = Wire(port)  # clients are authenticated WebSocket connections, as /readyz counts
    try:
        assert host.row("work")["clients"] == 0
        client.hello()
        assert host.row("work")["clients"] == 1
    finally:
        client.close()
    logs = host.run("profiles", "logs", "work", "-n", "20")
    assert "gateway ready: profile work" in logs.stdout
    rm = host.run("profiles", "rm", "work")
    assert rm.returncode == 1 and "stop it first" in rm.stderr
    stopped = host.run("profiles", "stop", "work", timeout=90)
    assert stopped.returncode == 0, stopped.stderr
    assert _free(port)
    code, rows = host.rows()
    assert code == 0 and rows[0]["state"] == "STOPPED" and rows[0]["desired"] is False


@pytest.mark.e2e
def test_start_refuses_port_held_by_another_process_up_front(host: Host) -> None:
    port = host.create("work")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = host.run("profiles", "start", "work")
    assert result.returncode == 78
    assert f"port {port} is already in use by pid {os.getpid()}" in result.stderr


@pytest.mark.e2e
def test_kill_9_is_restarted_and_list_follows(host: Host) -> None:
    host.create("work")
    assert _start(host, "work").returncode == 0
    first = host.remember("work")
    assert first is not None
    os.kill(first, signal.SIGKILL)

    def healthy_again() -> bool:
        row = host.row("work")
        return row["health"] == "ok" and row["pid"] not in (None, first)

    wait_until(healthy_again, timeout=30, what="the supervisor to restart work")
    host.remember("work")
    assert host.row("work")["restarts"] >= 1  # type: ignore[operator]


@pytest.mark.e2e
def test_list_without_supervisor_uses_identity_and_probe(host: Host) -> None:
    host.create("work")
    assert _start(host, "work").returncode == 0
    pid = host.remember("work")
    sup = json.loads((host.home / ".openclaw-supervisor" / "supervisor.json").read_text())
    os.kill(sup["pid"], signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(sup["pid"]) or _zombie(sup["pid"]), what="sup")
    code, rows = host.rows()
    assert code == 0
    (row,) = rows
    assert row["pid"] == pid and row["health"] == "ok" and row["state"] == "RUNNING"
    assert row["supervised"] is False and row["desired"] is None


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@pytest.mark.e2e
def test_list_exits_1_when_a_running_profile_is_not_healthy(host: Host) -> None:
    host.create("work")
    assert _start(host, "work").returncode == 0
    pid = host.remember("work")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        result = host.run("profiles", "list", "--json")
        assert result.returncode == 1
        (row,) = json.loads(result.stdout)
        assert row["health"] == "down" and row["shouldRun"] is True
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.e2e
def test_start_of_a_gateway_that_exits_78_reports_it(host: Host) -> None:
    port = host.create("work")
    # Token auth without a token: the gateway refuses its config and exits 78.
    config = host.state_dir("work") / "openclaw.json"
    config.write_text(json.dumps({"gateway": {"port": port, "auth": {"mode": "token"}}}))
    result = host.run("profiles", "start", "work", timeout=90)
    assert result.returncode == 78, result.stderr
    assert "no token is set" in result.stderr
    code, rows = host.rows()
    assert code == 1 and rows[0]["state"] == "FATAL"
    reset = host.run("profiles", "reset", "work")
    assert reset.returncode == 0, reset.stderr


@pytest.mark.e2e
def test_rm_purge_after_stop(host: Host) -> None:
    host.create("work")
    assert _start(host, "work").returncode == 0
    assert host.run("profiles", "stop", "work", timeout=90).returncode == 0
    purged = host.run("profiles", "rm", "work", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert not host.state_dir("work").exists()
    code, rows = host.rows()
    assert code == 0 and [r["name"] for r in rows] == []


@pytest.mark.e2e
def test_supervisor_status_and_stop(host: Host) -> None:
    down = host.run("supervisor", "status", "--json")
    assert down.returncode == 1 and json.loads(down.stdout)["running"] is False
    host.create("work")
    assert _start(host, "work").returncode == 0
    up = host.run("supervisor", "status", "--json")
    assert up.returncode == 0, up.stderr
    status = json.loads(up.stdout)
    assert status["running"] is True
    assert [p["name"] for p in status["profiles"]] == ["work"]
    pid = host.remember("work")
    stopped = host.run("supervisor", "stop")  # gateways keep serving
    assert stopped.returncode == 0, stopped.stderr
    assert host.row("work")["pid"] == pid


@pytest.mark.e2e
def test_start_creates_a_missing_profile(host: Host) -> None:
    name = "fresh"
    port = derived_port(name)
    if not _free(port):
        pytest.skip(f"the derived port {port} of {name!r} is busy on this machine")
    result = _start(host, name)
    assert result.returncode == 0, result.stderr
    config = host.state_dir(name) / "openclaw.json"
    assert json.loads(config.read_text())["gateway"]["port"] == port
    assert result.stdout.splitlines()[0] == f"{name}: created (port {port}, config {config})"
    assert result.stdout.splitlines()[1].startswith(f"{name}: running (pid ")
    assert host.row(name)["health"] == "ok"
