"""One gateway per profile: lock, identity, port conflicts, bind safety, readiness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess, clean_env, free_port, wait_until
from wire import Wire

from openclaw_multi.profiles.lock import process_start_time, read_identity

pytestmark = pytest.mark.e2e


def run_gateway_once(
    home: Path, *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "openclaw_multi.gateway", *args]
    return subprocess.run(
        cmd, env=clean_env(home, **(env_extra or {})), capture_output=True, text=True, timeout=30
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_identity_file_describes_the_running_gateway(gateway: GatewayProcess) -> None:
    identity = read_identity(gateway.state_dir / "gateway.identity.json")
    assert identity is not None
    assert identity.pid == gateway.pid and identity.port == gateway.port
    assert identity.start_time == process_start_time(gateway.pid)
    assert (gateway.state_dir / "gateway.identity.json").stat().st_mode & 0o777 == 0o600
    assert any(f"MAINPID={gateway.pid}" in m for m in gateway.notify_messages)


def test_second_gateway_for_the_profile_exits_78_and_binds_nothing(gateway: GatewayProcess) -> None:
    other_port = free_port()
    done = run_gateway_once(gateway.home, "--profile", "work", "--port", str(other_port))
    assert done.returncode == 78
    assert done.stderr.strip() == (
        f"error: gateway already running for profile work (pid {gateway.pid}, port {gateway.port})"
    )
    assert port_is_free(other_port)
    assert Wire(gateway.port).hello()["ok"] is True


def test_same_state_dir_through_a_symlink_is_the_same_profile(gateway: GatewayProcess) -> None:
    alias = gateway.home / "alias-state"
    alias.symlink_to(gateway.state_dir)
    done = run_gateway_once(
        gateway.home, "--port", str(free_port()), env_extra={"OPENCLAW_STATE_DIR": str(alias)}
    )
    assert done.returncode == 78
    assert "gateway already running for profile" in done.stderr


def test_kill_9_then_start_again_reclaims_the_lock(
    gateway_factory: Callable[..., GatewayProcess],
) -> None:
    first = gateway_factory("work")
    first.proc.kill()
    first.proc.wait()
    # The stale identity file still names the dead pid: the next gateway reclaims silently.
    assert (first.state_dir / "gateway.identity.json").exists()
    second = gateway_factory("work", port=first.port)
    identity = read_identity(second.state_dir / "gateway.identity.json")
    assert identity is not None and identity.pid == second.pid


def test_port_held_by_another_process_is_named(home: Path) -> None:
    port = free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        done = run_gateway_once(home, "--profile", "work", "--port", str(port))
        assert done.returncode == 78
        message = done.stderr.strip()
        assert message.startswith(f"error: port {port} is already in use by pid {holder.pid} (")
        assert "python" in message
        assert not (home / ".openclaw-work" / "gateway.identity.json").exists()
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_port_held_by_another_profiles_gateway_names_it(
    gateway_factory: Callable[..., GatewayProcess], home: Path
) -> None:
    other = gateway_factory("personal")
    done = run_gateway_once(home, "--profile", "work", "--port", str(other.port))
    assert done.returncode == 78
    assert f"by pid {other.pid}" in done.stderr
    assert "profile personal" in done.stderr


@pytest.mark.parametrize("bind", ["lan", "custom"])
def test_non_loopback_bind_without_auth_refuses(home: Path, bind: str) -> None:
    state = home / ".openclaw-work"
    state.mkdir()
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"bind": bind, "customBindHost": "0.0.0.0"}})
    )
    port = free_port()
    done = run_gateway_once(home, "--profile", "work", "--port", str(port))
    assert done.returncode == 78
    assert "without auth" in done.stderr and done.stderr.count("\n") == 1
    assert port_is_free(port)


def test_lan_bind_with_token_serves(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    state = home / ".openclaw-lan"
    state.mkdir()
    (state / "openclaw.json").write_text(
        json.dumps({"gateway": {"bind": "lan", "auth": {"mode": "token", "token": "x" * 32}}})
    )
    gw = gateway_factory("lan")
    assert Wire(gw.port).hello(auth={"token": "x" * 32})["ok"] is True


def test_bad_port_and_bad_profile_are_usage_errors(home: Path) -> None:
    done = run_gateway_once(home, "--profile", "work", "--port", "70000")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: Invalid --port. Use a port number from 1 to 65535, for example 18789."
    )
    done = run_gateway_once(home, "--profile", "bad name!")
    assert done.returncode == 2
    assert done.stderr.strip() == 'error: Invalid --profile (use letters, numbers, "_", "-" only)'


def test_broken_config_exits_78_naming_the_place_and_leaves_the_file(home: Path) -> None:
    state = home / ".openclaw-work"
    state.mkdir()
    config = state / "openclaw.json"
    config.write_text('{\n  "gateway": {\n    "port": ,\n  }\n}\n')
    before = config.read_bytes()
    done = run_gateway_once(home, "--profile", "work")
    assert done.returncode == 78
    assert f"{config}:3:" in done.stderr
    assert config.read_bytes() == before


def test_exit_78_message_is_pushed_to_notify_socket(home: Path, tmp_path: Path) -> None:
    state = home / ".openclaw-work"
    state.mkdir()
    (state / "openclaw.json").write_text('{"gateway": {"bind": "lan"}}')
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    try:
        done = run_gateway_once(home, "--profile", "work", env_extra={"NOTIFY_SOCKET": str(path)})
        assert done.returncode == 78
        message = sock.recv(4096).decode()
    finally:
        sock.close()
    assert message.startswith("STATUS=refusing to bind") and "ERRNO=78" in message


def test_sigint_also_drains_and_exits_0(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    os.kill(gateway.pid, signal.SIGINT)
    assert wire.closed_with()[0] == 1012
    assert gateway.proc.wait(timeout=5) == 0
    wait_until(lambda: port_is_free(gateway.port), 5, "port freed")
