"""The supervisor's small parts without processes: files, options, notify parsing, env."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest

from openclaw_multi.client.control import SupervisorClient, supervisor_dir
from openclaw_multi.errors import ConfigError, SupervisorError
from openclaw_multi.protocol.control import Ping
from openclaw_multi.supervisor.child import gateway_argv, gateway_env
from openclaw_multi.supervisor.desired import load_desired, save_desired
from openclaw_multi.supervisor.home import home_from_env, supervisor_paths
from openclaw_multi.supervisor.options import parse_options
from openclaw_multi.supervisor.readiness import NotifyMessage, parse_notify
from openclaw_multi.supervisor.release import connect_host, lock_is_free


def test_supervisor_paths_live_under_home(home: Path) -> None:
    paths = supervisor_paths(home)
    assert paths.directory == home / ".openclaw-supervisor" == supervisor_dir(home)
    assert [p.name for p in (paths.socket_path, paths.lock_path, paths.identity_path)] == [
        "supervisor.sock",
        "supervisor.lock",
        "supervisor.json",
    ]
    paths.ensure_directory()
    assert stat.S_IMODE(paths.directory.stat().st_mode) == 0o700
    assert home_from_env({"HOME": "/h", "OPENCLAW_HOME": "/o"}) == Path("/o")
    assert home_from_env({"HOME": "/h"}) == Path("/h")


def test_a_too_long_socket_path_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    with pytest.raises(SupervisorError, match="unix socket limit"):
        supervisor_paths(deep).ensure_directory()
    with pytest.raises(SupervisorError, match="unix socket limit"):
        SupervisorClient(deep).request(Ping(), autostart=False)


def test_desired_state_round_trips_and_survives_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "desired.json"
    assert load_desired(path) == {}
    save_desired(path, {"work": True, "default": True})
    assert load_desired(path) == {"work": True, "default": True}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")
    assert load_desired(path) == {}
    path.write_text('{"profiles": {"ok": true, "bad/name": true, "DEFAULT": true}}')
    assert load_desired(path) == {"ok": True, "default": True}
    path.write_text("{nope")
    with caplog.at_level(logging.WARNING, logger="openclaw.supervisor"):
        assert load_desired(path) == {}
    assert "corrupt" in caplog.text


def test_options_flags_beat_env_and_bad_numbers_are_errors() -> None:
    env = {"OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "0.5", "OPENCLAW_SUPERVISOR_BURST_LIMIT": "7"}
    options = parse_options(["--probe-interval", "0.25", "--stop-gateways"], env)
    assert options.policy.probe_interval == 0.25
    assert options.policy.burst_limit == 7
    assert options.stop_gateways and not options.foreground
    assert parse_options([], {"OPENCLAW_SUPERVISOR_PROBE_FAILURES": "4"}).policy == (
        parse_options(["--probe-failures-before-restart", "4"], {}).policy
    )
    with pytest.raises(ConfigError, match="not a number"):
        parse_options([], {"OPENCLAW_SUPERVISOR_STOP_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="must be > 0"):
        parse_options(["--ready-timeout", "0"], {})


def test_notify_datagrams_parse() -> None:
    fields = parse_notify(b"READY=1\nSTATUS=listening on 127.0.0.1:1=2\nMAINPID=42\njunk\n")
    assert fields == {"READY": "1", "STATUS": "listening on 127.0.0.1:1=2", "MAINPID": "42"}
    message = NotifyMessage(7, parse_notify(b"STATUS=port 1 is already in use\nERRNO=78"))
    assert (message.ready, message.errno, message.status) == (
        False,
        78,
        "port 1 is already in use",
    )


def test_gateway_command_and_environment_carry_no_secrets(tmp_path: Path) -> None:
    assert gateway_argv("work") == [
        sys.executable,
        "-m",
        "openclaw_multi.gateway",
        "--profile",
        "work",
        "--quiet",
    ]
    assert "--profile" not in gateway_argv(None)
    base = {
        "PATH": "/bin",
        "OPENCLAW_GATEWAY_TOKEN": "secret",
        "OPENCLAW_STATE_DIR": "/elsewhere",
        "OPENCLAW_SUPERVISOR_PROBE_INTERVAL": "1",
        "NOTIFY_SOCKET": "/run/systemd/notify",
    }
    env = gateway_env("work", base, tmp_path, tmp_path / "n.sock")
    assert env == {
        "PATH": "/bin",
        "OPENCLAW_HOME": str(tmp_path),
        "OPENCLAW_PROFILE": "work",
        "NOTIFY_SOCKET": str(tmp_path / "n.sock"),
    }


def test_supervisor_start_environment_drops_gateway_secrets(home: Path) -> None:
    client = SupervisorClient(
        home,
        env={
            "PATH": "/bin",
            "OPENCLAW_GATEWAY_PASSWORD": "pw",
            "OPENCLAW_PROFILE": "work",
            "OPENCLAW_SUPERVISOR_BURST_LIMIT": "2",
            "NOTIFY_SOCKET": "/run/x",
        },
    )
    assert client._start_env() == {
        "PATH": "/bin",
        "OPENCLAW_SUPERVISOR_BURST_LIMIT": "2",
        "OPENCLAW_HOME": str(home),
    }
    assert not client.is_running()
    with pytest.raises(SupervisorError, match="not running"):
        client.request(Ping(), autostart=False)


def test_lock_probe_and_connect_host(tmp_path: Path) -> None:
    assert lock_is_free(tmp_path / "missing.lock")
    (tmp_path / "gateway.lock").touch()
    assert lock_is_free(tmp_path / "gateway.lock")
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("::1") == "::1"
    assert connect_host(None) == "127.0.0.1"
