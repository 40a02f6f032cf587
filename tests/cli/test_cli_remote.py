"""``openclaw remote ...``, ``openclaw security audit`` and a TLS profile under the supervisor.

Real processes in a temp home, loopback only; synchronisation by waiting on conditions.
Whatever a test starts is stopped in a finalizer (``supervisor stop --all``, then only the
gateway pids we recorded, after checking they are still those processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import GatewayProcess, free_port, wait_until
from openclaw_cli import openclaw as run_openclaw

from openclaw_multi.profiles.lock import identity_matches_process, read_identity
from openclaw_multi.protocol.tls import format_fingerprint

pytestmark = pytest.mark.e2e
TOKEN = "remote-" + uuid.uuid4().hex
PROBE_ENV = {
    "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "0.1",
    "OPENCLAW_SUPERVISOR_PROBE_FAILURES": "2",
    "OPENCLAW_SUPERVISOR_PROBE_TIMEOUT": "1.0",
}


def openclaw(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_openclaw(home, *args, timeout=timeout, **PROBE_ENV)


def write_config(home: Path, profile: str, text: str) -> Path:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state / "openclaw.json"
    path.write_text(text)
    path.chmod(0o600)
    return path


def cert_fingerprint(state_dir: Path) -> str:
    pem = (state_dir / "tls" / "gateway-cert.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.fixture
def remote_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    """The "remote" gateway: profile gw, token auth, TLS."""
    write_config(
        home,
        "gw",
        json.dumps(
            {"gateway": {"tls": {"enabled": True}, "auth": {"mode": "token", "token": TOKEN}}}
        ),
    )
    return gateway_factory("gw")


def test_remote_set_show_clear_round_trip(
    home: Path, tmp_path: Path, remote_gateway: GatewayProcess
) -> None:
    config = write_config(home, "laptop", '{\n  // my laptop\n  "gateway": {"port": 1234},\n}\n')
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    fp = format_fingerprint(cert_fingerprint(remote_gateway.state_dir))
    url = f"wss://127.0.0.1:{remote_gateway.port}/"
    result = openclaw(
        home, "--profile", "laptop", "remote", "set", "--url", url,
        "--token-file", str(token_file), "--tls-fingerprint", fp.lower().replace(":", ""),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("comments are not kept") == 1
    assert f"token: set (stored in {config}, 0600)" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())["gateway"]
    assert saved["mode"] == "remote" and saved["port"] == 1234
    assert saved["remote"] == {"url": url, "token": TOKEN, "tlsFingerprint": fp}

    shown = openclaw(home, "--profile", "laptop", "remote", "show")
    assert shown.returncode == 0 and TOKEN not in shown.stdout
    assert f"token: set (stored in {config}, 0600)" in shown.stdout
    assert f"tls pin: {fp}" in shown.stdout
    as_json = json.loads(openclaw(home, "remote", "show", "--json", "--profile", "laptop").stdout)
    assert as_json["auth"] == "token" and as_json["url"] == url and TOKEN not in str(as_json)

    # The profile's commands now reach the remote gateway by default, pinned.
    health = openclaw(home, "--profile", "laptop", "health")
    assert health.returncode == 0, health.stderr
    assert "Profile gw" in health.stdout
    status = openclaw(home, "--profile", "laptop", "gateway", "status", "--json")
    assert json.loads(status.stdout)["tls"]["fingerprintSha256"] == fp.replace(":", "").lower()
    call = openclaw(home, "--profile", "laptop", "gateway", "call", "system-presence")
    assert call.returncode == 0, call.stderr
    # --url still needs its own credentials: the remote defaults never go to another URL.
    other = openclaw(home, "--profile", "laptop", "health", "--url", url)
    assert other.returncode == 1
    assert "gateway url override requires explicit credentials" in other.stderr

    cleared = openclaw(home, "--profile", "laptop", "remote", "clear")
    assert cleared.returncode == 0, cleared.stderr
    saved = json.loads(config.read_text())["gateway"]
    assert saved == {"port": 1234, "mode": "local"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert openclaw(home, "--profile", "laptop", "health").returncode == 1  # nothing on 1234


def test_remote_set_wrong_pin_then_health_refuses(
    home: Path, remote_gateway: GatewayProcess
) -> None:
    url = f"wss://127.0.0.1:{remote_gateway.port}/"
    result = openclaw(
        home, "--profile", "laptop", "remote", "set", "--url", url, "--token", TOKEN,
        "--tls-fingerprint", "12" * 32,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "comments" not in result.stdout  # a fresh config has none to lose
    health = openclaw(home, "--profile", "laptop", "health")
    assert health.returncode == 1
    fp = format_fingerprint(cert_fingerprint(remote_gateway.state_dir))
    assert health.stderr.startswith(
        f"error: TLS fingerprint mismatch: expected {format_fingerprint('12' * 32)}, got {fp}"
    )
    log = (remote_gateway.state_dir / "logs" / "gateway.log").read_text()
    assert TOKEN not in log and "auth failed" not in log


@pytest.mark.parametrize(
    "args",
    [
        ("--url", "wss://127.0.0.1:1/"),  # no credential
        ("--url", "wss://127.0.0.1:1/", "--token", "a", "--token-file", "/dev/null"),
        ("--url", "http://x/", "--token", "a"),
        ("--url", "wss://127.0.0.1:1/", "--token", "a", "--tls-fingerprint", "zz"),
        ("--url", "ws://127.0.0.1:1/", "--token", "a", "--tls-fingerprint", "ab" * 32),
    ],
)
def test_remote_set_usage_errors(home: Path, args: tuple[str, ...]) -> None:
    result = openclaw(home, "--profile", "laptop", "remote", "set", *args)
    assert result.returncode == 2, result.stderr
    assert not (home / ".openclaw-laptop" / "openclaw.json").exists()


def test_remote_set_refuses_a_url_with_credentials_without_echoing_them(home: Path) -> None:
    url = "wss://me:hunter2@127.0.0.1:1/"
    result = openclaw(home, "--profile", "laptop", "remote", "set", "--url", url, "--token", "a")
    assert result.returncode == 2
    assert "***@127.0.0.1:1" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert not (home / ".openclaw-laptop" / "openclaw.json").exists()


# -- security audit ---------------------------------------------------------------------------
def _audit(home: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = openclaw(home, "security", "audit", "--json", *args)
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def test_audit_reports_each_finding(home: Path) -> None:
    weak = "short-token-1"
    config = write_config(
        home,
        "risky",
        json.dumps(
            {
                "gateway": {
                    "bind": "lan",
                    "auth": {"mode": "token", "token": weak, "allowTailscale": True},
                    "mode": "remote",
                    "remote": {"url": "ws://10.1.2.3:18789", "token": TOKEN},
                }
            }
        ),
    )
    config.chmod(0o644)
    code, report, raw = _audit(home, "--profile", "risky")
    assert code == 1
    ids = {f["id"]: f for f in report["profiles"][0]["findings"]}
    assert {
        "bind-non-loopback",
        "token-weak",
        "config-permissions",
        "tls-off-non-loopback",
        "tailscale-non-loopback",
        "remote-plaintext",
    } <= set(ids)
    assert (
        ids["token-weak"]["severity"] == "high" and ids["config-permissions"]["severity"] == "high"
    )
    for finding in ids.values():
        assert set(finding) == {"id", "severity", "what", "why", "fix"}
    assert weak not in raw and TOKEN not in raw
    assert report["summary"]["high"] >= 3

    write_config(
        home,
        "rem",
        json.dumps(
            {
                "gateway": {
                    "auth": {"mode": "none"},
                    "remote": {"url": "wss://203.0.113.9:443", "token": TOKEN},
                    "mode": "remote",
                }
            }
        ),
    )
    code, report, _ = _audit(home, "--profile", "rem")
    ids = {f["id"] for f in report["profiles"][0]["findings"]}
    assert {"auth-none", "remote-unpinned-ip"} <= ids
    assert code == 0  # both are medium


def test_audit_tls_key_permissions_and_clean_profile(
    home: Path, remote_gateway: GatewayProcess
) -> None:
    code, report, _ = _audit(home, "--profile", "gw")
    assert code == 0 and report["profiles"][0]["findings"] == [], report
    key = remote_gateway.state_dir / "tls" / "gateway-key.pem"
    key.chmod(0o640)
    code, report, _ = _audit(home, "--all")
    assert code == 1
    (gw,) = [p for p in report["profiles"] if p["profile"] == "gw"]
    assert [f["id"] for f in gw["findings"]] == ["tls-key-permissions"]
    human = openclaw(home, "security", "audit", "--profile", "gw")
    assert human.returncode == 1
    assert "HIGH    tls-key-permissions" in human.stdout and "fix: chmod 600" in human.stdout
    assert human.stderr.strip() == "error: 1 high-severity finding(s)"


# -- a TLS profile under the supervisor ---------------------------------------------------------
@pytest.fixture
def supervised(home: Path) -> Iterator[list[Any]]:
    seen: list[Any] = []
    yield seen
    openclaw(home, "supervisor", "stop", "--all", timeout=90)
    for identity in seen:
        if identity_matches_process(identity):
            os.kill(identity.pid, signal.SIGKILL)
    sup = home / ".openclaw-supervisor" / "supervisor.json"
    if sup.exists():
        try:
            proc = psutil.Process(json.loads(sup.read_text())["pid"])
            if "openclaw_multi.supervisor" in " ".join(proc.cmdline()):
                proc.kill()
        except (psutil.Error, OSError, ValueError, KeyError):
            pass


def test_tls_profile_is_healthy_under_the_supervisor(home: Path, supervised: list[Any]) -> None:
    port = free_port()
    created = openclaw(home, "profiles", "create", "sec", "--port", str(port), "--generate-token")
    assert created.returncode == 0, created.stderr
    config = home / ".openclaw-sec" / "openclaw.json"
    data = json.loads(config.read_text())
    secret = data["gateway"]["auth"]["token"]
    data["gateway"]["tls"] = {"enabled": True}
    config.write_text(json.dumps(data))
    started = openclaw(home, "profiles", "start", "sec", timeout=90)
    identity = read_identity(home / ".openclaw-sec" / "gateway.identity.json")
    if identity is not None:
        supervised.append(identity)
    assert started.returncode == 0, started.stderr
    assert identity is not None and identity.tls_fingerprint == cert_fingerprint(
        home / ".openclaw-sec"
    )

    def row() -> dict[str, Any]:
        listing = openclaw(home, "profiles", "list", "--json")
        rows: list[dict[str, Any]] = json.loads(listing.stdout)
        return next(r for r in rows if r["name"] == "sec")

    first = row()
    assert first["health"] == "ok" and first["pid"] == identity.pid, first
    # Probes every 0.1 s, two failures restart: after 2 s of uptime the same process still
    # runs, unrestarted, so the supervisor's HTTPS probes pass.
    wait_until(lambda: (row()["uptimeS"] or 0) >= 2.0, timeout=30, what="2 s of uptime")
    later = row()
    assert later["pid"] == identity.pid and later["restarts"] == 0 and later["health"] == "ok"
    sup_log = (home / ".openclaw-supervisor" / "supervisor.log").read_text()
    assert "health probe failed" not in sup_log
    # No secret in the supervised gateway's argv, its log, or the listing.
    argv = " ".join(psutil.Process(identity.pid).cmdline())
    log = (home / ".openclaw-sec" / "logs" / "gateway.log").read_text()
    listing = openclaw(home, "profiles", "list", "--json").stdout
    for text in (argv, log, sup_log, listing):
        assert secret not in text
    # The profile's own CLI finds it as wss:// with the pin from its identity file.
    health = openclaw(home, "--profile", "sec", "health")
    assert health.returncode == 0, health.stderr
    status = openclaw(home, "--profile", "sec", "gateway", "status")
    assert f"wss://127.0.0.1:{port}/" in status.stdout
    assert format_fingerprint(identity.tls_fingerprint) in status.stdout
