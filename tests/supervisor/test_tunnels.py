"""SSH tunnels with real processes: a real sshd we own, a real token gateway behind it, the
supervisor running ``ssh -N -L``, and the ``openclaw`` CLI.

Loopback only, free ports only. Waits are on conditions with deadlines. Only processes we
started (sshd, its sessions, the gateway) or our supervisor started (ssh) are ever signalled,
by pid. Cleanup: Shutdown(stop_gateways) to the supervisor, then sshd and the gateway.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from openclaw_multi.client.control import supervisor_dir
from openclaw_multi.protocol.control import Shutdown
from tests.conftest import GatewayProcess, free_port, start_gateway, wait_until
from tests.sshd import Sshd, start_sshd
from tests.supervised import SupervisedHome, alive, supervised_home

pytestmark = pytest.mark.e2e

TOKEN = "tunnel-test-token-" + uuid.uuid4().hex
POLICY = {
    "OPENCLAW_SUPERVISOR_BACKOFF_INITIAL": "0.1",
    "OPENCLAW_SUPERVISOR_BACKOFF_MAX": "0.4",
    "OPENCLAW_SUPERVISOR_BURST_LIMIT": "6",
    "OPENCLAW_SUPERVISOR_BURST_WINDOW": "30",
    "OPENCLAW_SUPERVISOR_READY_TIMEOUT": "10",
    "OPENCLAW_SUPERVISOR_STOP_TIMEOUT": "3",
    "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "0.3",
    "OPENCLAW_SUPERVISOR_PROBE_FAILURES": "2",
    "OPENCLAW_SUPERVISOR_PROBE_TIMEOUT": "0.5",
}


def _port_refuses(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


class TunnelHarness(SupervisedHome):
    """One short home, its supervisor (through the CLI), and every pid worth cleaning up."""

    def tunnels(self) -> dict[str, dict[str, Any]]:
        return self.rows("tunnel", "list", "--json")


@pytest.fixture
def th() -> Iterator[TunnelHarness]:
    with supervised_home(TunnelHarness, "oct-", POLICY) as harness:
        yield harness


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    server = start_sshd()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def remote_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """The gateway "on the server": token auth, its own home (not the supervisor's)."""
    gw_home = tmp_path / "remote-home"
    gw_home.mkdir()
    env = {"OPENCLAW_PROFILE": "remote", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    gw = start_gateway(gw_home, "remote", "--auth", "token", env_extra=env)
    try:
        yield gw
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
        gw.proc.wait(timeout=10)


def _start_args(sshd: Sshd, name: str, *extra: str, key: Path | None = None) -> list[str]:
    return [
        "tunnel",
        "start",
        name,
        "--ssh",
        sshd.destination,
        "--identity",
        str(key or sshd.user_key),
        *extra,
    ]


def _ssh_processes(local_port: int) -> list[psutil.Process]:
    """ssh processes forwarding ``local_port`` (to check nothing is left behind)."""
    spec = f"127.0.0.1:{local_port}:"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if argv and os.path.basename(argv[0]) == "ssh" and any(a.startswith(spec) for a in argv):
            found.append(proc)
    return found


def test_tunnel_reaches_the_remote_gateway_heals_and_stops(
    th: TunnelHarness, sshd: Sshd, remote_gateway: GatewayProcess
) -> None:
    started = time.monotonic()
    result = th.run(*_start_args(sshd, "office", "--remote-port", str(remote_gateway.port)))
    start_s = time.monotonic() - started
    assert result.returncode == 0, f"{result.stderr}\n{th.log()[-3000:]}\n{sshd.log()[-2000:]}"
    assert result.stdout.startswith("office: running (pid ")
    row = th.tunnels()["office"]
    assert (row["state"], row["health"], row["desired"]) == ("RUNNING", "ok", True)
    assert row["remotePort"] == remote_gateway.port
    assert row["ssh"] == sshd.destination
    assert row["strictHostKeys"] is False
    local = row["localPort"]
    first_pid = row["pid"]
    print(f"tunnel start to healthy: {start_s:.2f}s (CLI round trip, supervisor autostart)")

    # Files: definitions 0600 in the 0700 supervisor dir, known_hosts learned (accept-new).
    sup = supervisor_dir(th.home)
    defs = sup / "tunnels.json"
    assert stat.S_IMODE(defs.stat().st_mode) == 0o600
    stored = json.loads(defs.read_text())["tunnels"]["office"]
    assert stored["localPort"] == local and stored["desired"] is True
    known = Path(row["knownHosts"])
    assert known.parent == sup / "tunnels"
    host_key = (sshd.directory / "host_ed25519.pub").read_text().split()[1]
    assert host_key in known.read_text()  # recorded on the first connection (maybe hashed)
    assert stat.S_IMODE((sup / "tunnels").stat().st_mode) == 0o700
    # Never a secret on ssh's command line; BatchMode and the forward are there.
    argv = psutil.Process(first_pid).cmdline()
    assert os.path.basename(argv[0]) == "ssh"
    assert "BatchMode=yes" in argv and "ExitOnForwardFailure=yes" in argv
    assert f"127.0.0.1:{local}:127.0.0.1:{remote_gateway.port}" in argv
    assert TOKEN not in " ".join(argv)

    # The remote gateway, through the tunnel: explicit credentials are required.
    health = th.run("health", "--tunnel", "office", "--token", TOKEN, "--timeout", "5")
    assert health.returncode == 0, health.stderr
    assert "OK" in health.stdout
    health_json = th.run("health", "--tunnel", "office", "--token", TOKEN, "--json")
    assert json.loads(health_json.stdout)["pid"] == remote_gateway.pid
    no_creds = th.run("health", "--tunnel", "office")
    assert no_creds.returncode == 1
    assert "--tunnel requires explicit credentials" in no_creds.stderr
    wrong = th.run("health", "--tunnel", "office", "--token", "nope", "--timeout", "5")
    assert wrong.returncode == 1
    # --profile P: P's gateway.remote credentials, never its own gateway.auth secret.
    for profile, gateway in (
        ("viaremote", {"auth": {"token": "local-only"}, "remote": {"token": TOKEN}}),
        ("localonly", {"auth": {"mode": "token", "token": TOKEN}}),
    ):
        state = th.home / f".openclaw-{profile}"
        state.mkdir(mode=0o700)
        (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))
    via = th.run("--profile", "viaremote", "health", "--tunnel", "office", "--timeout", "5")
    assert via.returncode == 0, via.stderr
    local_only = th.run("--profile", "localonly", "health", "--tunnel", "office")
    assert local_only.returncode == 1
    assert "profile localonly has neither" in local_only.stderr

    # profiles list shows the tunnel too (a section under the profile table).
    listing = th.run("profiles", "list")
    assert "tunnels:" in listing.stdout and "office" in listing.stdout, listing.stdout

    # Kill the sshd session serving the tunnel: the supervisor reconnects.
    assert sshd.sessions(), "no sshd session for the tunnel"
    killed_at = time.monotonic()
    assert sshd.kill_sessions()

    def healed() -> dict[str, Any] | None:
        row = th.tunnels()["office"]
        ok = row["state"] == "RUNNING" and row["health"] == "ok" and row["pid"] != first_pid
        return row if ok else None

    try:
        healed_row = wait_until(healed, 5.0, "the tunnel to come back healthy")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{th.log()[-4000:]}") from None
    heal_s = time.monotonic() - killed_at
    print(f"session killed to tunnel healthy again: {heal_s:.2f}s (seen through the CLI)")
    print("\n".join(line for line in th.log().splitlines() if "tunnel office" in line))
    assert isinstance(healed_row, dict)
    assert healed_row["restarts"] >= 1
    assert not alive(first_pid, None)
    health = th.run("health", "--tunnel", "office", "--token", TOKEN, "--timeout", "5")
    assert health.returncode == 0, health.stderr

    # A supervisor restart adopts the running ssh instead of starting a second one.
    ssh_pid = healed_row["pid"]
    reply = th.client.request(Shutdown(stop_gateways=False), timeout=20, autostart=False)
    assert reply.ok
    wait_until(lambda: not th.client.is_running(), 10, "the supervisor to exit")
    assert alive(ssh_pid, th.pids.get(ssh_pid))
    row = th.tunnels()  # supervisor not running: definitions only
    assert row["office"]["state"] == "STOPPED" and row["office"]["supervised"] is False
    result = th.run("tunnel", "start", "office")  # autostarts, adopts, already running
    assert result.returncode == 0, result.stderr
    assert th.tunnels()["office"]["pid"] == ssh_pid

    # Stop: ssh ends (no orphan), the local port is free, the definition stays.
    result = th.run("tunnel", "stop", "office")
    assert result.returncode == 0, result.stderr
    assert not alive(ssh_pid, th.pids.get(ssh_pid))
    assert _port_refuses(local)
    assert not _ssh_processes(local)
    row = th.tunnels()["office"]
    assert (row["state"], row["desired"], row["pid"]) == ("STOPPED", False, None)
    assert json.loads(defs.read_text())["tunnels"]["office"]["desired"] is False

    logs = th.run("tunnel", "logs", "office", "-n", "200")
    assert logs.returncode == 0
    assert "openclaw-tunnel: " in logs.stdout and " starting: " in logs.stdout

    result = th.run("tunnel", "rm", "office")
    assert result.returncode == 0, result.stderr
    assert th.tunnels() == {}
    assert not known.exists()


def test_refused_key_fails_fast_with_a_clear_error(th: TunnelHarness, sshd: Sshd) -> None:
    started = time.monotonic()
    result = th.run(*_start_args(sshd, "denied", key=sshd.stranger_key), timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "refused the key" in result.stderr and "Permission denied" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert elapsed < 10, f"took {elapsed:.1f}s"
    print(f"refused key reported in {elapsed:.2f}s (CLI, supervisor autostart included)")
    row = th.tunnels()["denied"]
    assert row["state"] == "FATAL" and row["pid"] is None
    assert "Permission denied (publickey" in row["lastError"]
    assert not _ssh_processes(row["localPort"])
    # FATAL sticks: no retry loop behind our back.
    assert row["restarts"] == 0

    # A host key that is not the one in a strict --known-hosts file is refused as well.
    wrong_hosts = th.home / "wrong_known_hosts"
    other = th.home / "other_host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
        check=True,
        capture_output=True,
    )
    key_text = other.with_suffix(".pub").read_text().split()
    wrong_hosts.write_text(f"[127.0.0.1]:{sshd.port} {key_text[0]} {key_text[1]}\n")
    result = th.run(*_start_args(sshd, "mitm", "--known-hosts", str(wrong_hosts)), timeout=30)
    assert result.returncode == 1
    assert "host key" in result.stderr.lower(), result.stderr
    assert th.tunnels()["mitm"]["state"] == "FATAL"


def test_forward_failures_are_reported(
    th: TunnelHarness, sshd: Sshd, remote_gateway: GatewayProcess
) -> None:
    # The local port is taken (by a socket this test holds).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = th.run(
            *_start_args(
                sshd, "busy", "--local-port", str(taken), "--remote-port", str(remote_gateway.port)
            ),
            timeout=30,
        )
        assert result.returncode == 1
        assert f"local port {taken} is already in use" in result.stderr, result.stderr
        assert f"pid {os.getpid()}" in result.stderr
        row = th.tunnels()["busy"]
        assert row["state"] == "FATAL"
        assert not _ssh_processes(taken)

    # Nothing listens on the remote port: ssh is up, the server cannot reach the gateway.
    closed = free_port()
    started = time.monotonic()
    result = th.run(*_start_args(sshd, "closed", "--remote-port", str(closed)), timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"could not reach 127.0.0.1:{closed}" in result.stderr, result.stderr
    assert "open failed" in result.stderr
    assert elapsed < 8, f"took {elapsed:.1f}s"
    print(f"closed remote port reported in {elapsed:.2f}s (CLI)")
    row = th.tunnels()["closed"]
    assert row["state"] in ("BACKOFF", "STARTING", "EXITED")  # retrying with backoff
    assert row["desired"] is True
    result = th.run("tunnel", "stop", "closed")
    assert result.returncode == 0, result.stderr
    row = th.tunnels()["closed"]
    assert row["state"] == "STOPPED"
    assert not _ssh_processes(row["localPort"])


def test_bad_input_is_refused_before_anything_runs(th: TunnelHarness) -> None:
    for args in (
        ["tunnel", "start", "bad.name", "--ssh", "u@h"],
        ["tunnel", "start", "ok", "--ssh", "-oProxyCommand=x"],
        ["tunnel", "start", "ok", "--ssh", "u@h:99999"],
        ["tunnel", "start", "ok", "--ssh", "u@h", "--local-port", "0"],
        ["tunnel", "start", "ok", "--ssh", "u@h", "--identity", "/nonexistent/key"],
    ):
        result = th.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ")
    assert not th.client.is_running()  # refused before a supervisor was needed
    result = th.run("tunnel", "start", "undefined")
    assert result.returncode == 1
    assert "give --ssh" in result.stderr
