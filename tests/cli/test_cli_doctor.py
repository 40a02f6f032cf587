"""``openclaw doctor``: every finding from a real broken setup in a temp home, and ``--fix``.

Each test breaks a fresh home the way it happens for real (a gateway killed with -9, a
hand-edited config, a listener we hold on a profile's port, a supervisor that died) and runs
the real CLI. Whatever a test starts it ends, by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import clean_env, free_port, start_gateway, wait_until

from openclaw_multi.client.services import gateway_spec, render_launchd_plist
from openclaw_multi.profiles.lock import identity_matches_process, read_identity
from openclaw_multi.profiles.ports import PORT_BLOCK

CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]


@dataclass
class Home:
    root: Path
    ports: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self) -> dict[str, str]:
        return clean_env(
            self.home,
            OPENCLAW_SYSTEMD_DIR=str(self.root / "units"),
            OPENCLAW_SYSTEMD_SYSTEM_DIR=str(self.root / "system-units"),
            OPENCLAW_LAUNCHD_DIR=str(self.root / "agents"),
            OPENCLAW_SYSTEMCTL="",
            OPENCLAW_LAUNCHCTL="",
        )

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def doctor(self, *args: str) -> tuple[int, list[dict[str, object]]]:
        result = self.run("doctor", "--json", *args)
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, json.loads(result.stdout)

    def port(self) -> int:
        for _ in range(100):
            port = free_port()
            if all(abs(port - p) >= PORT_BLOCK for p in self.ports):
                self.ports.append(port)
                return port
        raise AssertionError("no free port block")

    def create(self, name: str, *extra: str, port: int | None = None) -> int:
        port = port or self.port()
        result = self.run("profiles", "create", name, "--port", str(port), *extra)
        assert result.returncode == 0, result.stderr
        return port

    def state(self, name: str) -> Path:
        return self.home / f".openclaw-{name}"


@pytest.fixture
def h() -> Iterator[Home]:
    # A short root: the supervisor's control socket path is limited to 107 bytes.
    home = Home(Path(tempfile.mkdtemp(prefix="ocdr-")))
    home.home.mkdir()
    yield home
    home.run("supervisor", "stop", "--all", timeout=90)
    for pid in home.pids:
        try:
            if "openclaw" in " ".join(psutil.Process(pid).cmdline()):
                os.kill(pid, signal.SIGKILL)
        except psutil.Error:
            pass
    shutil.rmtree(home.root, ignore_errors=True)


def _codes(findings: list[dict[str, object]]) -> list[str]:
    return sorted(str(f["code"]) for f in findings)


def test_clean_home_passes(h: Home) -> None:
    h.create("work", "--generate-token")
    code, findings = h.doctor()
    assert (code, findings) == (0, [])
    result = h.run("doctor")
    assert result.returncode == 0 and result.stdout.strip() == "no problems found"


def test_stale_identity_of_a_killed_gateway(h: Home) -> None:
    port = h.create("work")
    gw = start_gateway(h.home, "work", port=port)
    h.pids.append(gw.pid)
    identity = read_identity(h.state("work") / "gateway.identity.json")
    assert identity is not None and identity.pid == gw.pid
    # While it runs, nobody owns it.
    code, findings = h.doctor()
    assert (code, _codes(findings)) == (0, ["unowned-gateway"])
    assert findings[0]["severity"] == "warning" and findings[0]["profile"] == "work"
    gw.stop(signal.SIGKILL)  # our own process, by pid: leaves its identity file behind
    assert (h.state("work") / "gateway.identity.json").exists()
    code, findings = h.doctor()
    assert (code, _codes(findings)) == (0, ["stale-identity"])
    assert f"pid {gw.pid}" in str(findings[0]["what"]) and findings[0]["fixable"] is True
    fixed = h.run("doctor", "--fix")
    assert fixed.returncode == 0, fixed.stderr
    assert f"removed {h.state('work') / 'gateway.identity.json'}" in fixed.stdout
    assert not (h.state("work") / "gateway.identity.json").exists()
    assert h.doctor() == (0, [])


def test_overlapping_ports_are_reported_not_fixed(h: Home) -> None:
    port = h.create("work")
    # `create` refuses an overlapping block, so a person edits the config by hand.
    h.create("near", port=h.port())
    config = h.state("near") / "openclaw.json"
    before = config.read_text().replace(f'"port": {h.ports[-1]}', f'"port": {port + 5}')
    config.write_text(before)
    code, findings = h.doctor("--fix")
    assert code == 1
    assert _codes(findings) == ["port-overlap"]
    assert findings[0]["fixable"] is False and findings[0]["fixed"] is False
    assert config.read_text() == before
    human = h.run("doctor")
    assert human.returncode == 1
    assert human.stdout.startswith("errors (1):")
    assert "[port-overlap] profiles near" in human.stdout


def test_foreign_listener_on_a_profile_port(h: Home) -> None:
    port = h.create("work")
    with socket.socket() as listener:  # we hold it: a foreign process to the profile
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        code, findings = h.doctor()
        assert code == 1
        assert _codes(findings) == ["port-taken"]
        assert f"pid {os.getpid()}" in str(findings[0]["what"])
    assert h.doctor() == (0, [])


def test_world_readable_token_config_and_open_dirs_are_fixed(h: Home) -> None:
    h.create("work", "--generate-token")
    config = h.state("work") / "openclaw.json"
    config.chmod(0o644)
    h.state("work").chmod(0o755)
    keys = h.state("work") / "identity"
    keys.mkdir()
    (keys / "device.json").write_text("{}")
    (keys / "device.json").chmod(0o644)
    code, findings = h.doctor()
    assert code == 1
    assert _codes(findings) == ["secret-readable", "secret-readable", "state-dir-open"]
    content = config.read_bytes()
    fixed = h.run("doctor", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.startswith("fixed (3):")
    assert config.stat().st_mode & 0o777 == 0o600
    assert (keys / "device.json").stat().st_mode & 0o777 == 0o600
    assert h.state("work").stat().st_mode & 0o777 == 0o700
    assert config.read_bytes() == content
    assert h.doctor() == (0, [])


def test_corrupted_config_is_reported_and_never_touched(h: Home) -> None:
    h.create("work")
    config = h.state("work") / "openclaw.json"
    broken = b'{\n  "gateway": {\n    "port": 4,,\n  }\n}\n'
    config.write_bytes(broken)
    code, findings = h.doctor("--fix")
    assert code == 1
    assert _codes(findings) == ["config-invalid"]
    assert str(findings[0]["what"]).startswith(f"{config}:3:")
    assert config.read_bytes() == broken


def test_leftover_sockets_and_a_dead_supervisor(h: Home) -> None:
    sup = h.home / ".openclaw-supervisor"
    sup.mkdir(mode=0o700)
    for name in ("supervisor.sock", "notify.sock"):
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(sup / name))  # closed without unlinking: what a killed process leaves
    (sup / "supervisor.json").write_text('{"pid": 999999999, "startTime": 1, "version": "0"}')
    code, findings = h.doctor()
    assert code == 0
    assert _codes(findings) == ["leftover-socket", "leftover-socket", "stale-identity"]
    fixed = h.run("doctor", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert not (sup / "supervisor.sock").exists() and not (sup / "notify.sock").exists()
    assert not (sup / "supervisor.json").exists()
    assert h.doctor() == (0, [])


def test_supervisor_down_with_desired_profiles_is_started_by_fix(h: Home) -> None:
    h.create("work")
    started = h.run("profiles", "start", "work")
    assert started.returncode == 0, started.stderr
    identity = read_identity(h.state("work") / "gateway.identity.json")
    assert identity is not None
    h.pids.append(identity.pid)
    stopped = h.run("supervisor", "stop")  # the gateway keeps serving, still desired
    assert stopped.returncode == 0, stopped.stderr
    code, findings = h.doctor()
    assert code == 1
    assert _codes(findings) == ["supervisor-down"]
    assert "work" in str(findings[0]["what"])
    fixed = h.run("doctor", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "started the supervisor" in fixed.stdout
    assert h.run("supervisor", "status").returncode == 0
    assert identity_matches_process(identity)  # adopted, not replaced
    wait_until(lambda: h.doctor() == (0, []), timeout=15, what="a clean doctor")


def test_duplicate_owners(h: Home) -> None:
    h.create("work")
    assert h.run("profiles", "install", "work", "--no-start").returncode == 0
    agents = h.root / "agents"
    agents.mkdir()
    spec = gateway_spec("work", python=sys.executable, home=h.home, env={}, launchd=True)
    (agents / "ai.openclaw.work.plist").write_bytes(render_launchd_plist(spec))
    code, findings = h.doctor()
    assert code == 1
    assert _codes(findings) == ["duplicate-owner"]
    assert "2 owners" in str(findings[0]["what"])
