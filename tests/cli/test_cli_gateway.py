"""``openclaw health`` and ``openclaw gateway run|health|status|call`` as a person runs them:
the real console script in a subprocess with a clean environment, against real gateways."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GatewayProcess, NotifyListener, clean_env, free_port
from openclaw_cli import OPENCLAW, openclaw

from openclaw_multi.cli import gateway_cmds
from openclaw_multi.cli.main import cli
from openclaw_multi.client.target import Target

pytestmark = pytest.mark.e2e
TOKEN = "cli-test-token-" + uuid.uuid4().hex


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def write_config(home: Path, profile: str, text: str) -> Path:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "openclaw.json"
    path.write_text(text)
    return path


@pytest.fixture
def token_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    env = {"OPENCLAW_PROFILE": "tok", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("tok", "--auth", "token", env_extra=env)


# -- health / status / call ------------------------------------------------------------------
def test_health_human(home: Path, gateway: GatewayProcess) -> None:
    result = openclaw(home, "health", OPENCLAW_GATEWAY_PORT=str(gateway.port))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Gateway Health"
    assert lines[1].startswith("OK (") and lines[1].endswith("ms)")
    assert f"port {gateway.port}" in lines[2] and "work" in lines[2]
    assert result.stderr == ""


def test_health_json_is_exactly_the_payload(home: Path, gateway: GatewayProcess) -> None:
    for command in (["health"], ["gateway", "health"]):
        result = openclaw(home, *command, "--json", OPENCLAW_GATEWAY_PORT=str(gateway.port))
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("\n") == 1
        payload = json.loads(result.stdout)
        assert payload["ok"] is True and payload["pid"] == gateway.pid


def test_profile_with_config_port(home: Path, gateway: GatewayProcess) -> None:
    write_config(home, "work", f"{{gateway: {{port: {gateway.port}}}, // JSON5\n}}")
    result = openclaw(home, "--profile", "work", "gateway", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pid"] == gateway.pid
    assert status["stateDir"] == str(gateway.state_dir)


def test_status_human(home: Path, gateway: GatewayProcess) -> None:
    result = openclaw(home, "gateway", "status", OPENCLAW_GATEWAY_PORT=str(gateway.port))
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert rows["pid"].strip() == str(gateway.pid)
    assert rows["url"].strip() == gateway.url
    assert rows["profile"].strip() == "work"
    assert rows["rss"].strip().endswith("MB")
    assert {"version", "uptime", "connections", "state dir"} <= set(rows)


def test_call(home: Path, gateway: GatewayProcess) -> None:
    port = {"OPENCLAW_GATEWAY_PORT": str(gateway.port)}
    result = openclaw(home, "gateway", "call", "last-heartbeat", **port)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{\n") and json.loads(result.stdout)["status"] == "ok"
    result = openclaw(
        home, "gateway", "call", "health", "--params", '{"probe":true}', "--json", **port
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and json.loads(result.stdout)["ok"] is True


def test_call_unknown_method(home: Path, gateway: GatewayProcess) -> None:
    result = openclaw(home, "gateway", "call", "nope", OPENCLAW_GATEWAY_PORT=str(gateway.port))
    assert result.returncode == 1
    assert one_error_line(result) == "error: INVALID_REQUEST: unknown method: nope"
    assert result.stdout == ""


@pytest.mark.parametrize("params", ["notjson", "3", '"text"'])
def test_bad_params_is_usage(home: Path, params: str) -> None:
    result = openclaw(home, "gateway", "call", "health", "--params", params)
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: Invalid --params")


def test_unreachable(home: Path) -> None:
    port = free_port()
    result = openclaw(home, "health", OPENCLAW_GATEWAY_PORT=str(port))
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"error: cannot reach gateway at ws://127.0.0.1:{port}/: connection refused"
    )


# -- --url and credentials -------------------------------------------------------------------
def test_url_without_credentials_connects_nowhere(home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        env = {"OPENCLAW_GATEWAY_TOKEN": TOKEN, "OPENCLAW_GATEWAY_PASSWORD": TOKEN}
        for command in (["health"], ["gateway", "status"], ["gateway", "call", "health"]):
            result = openclaw(home, *command, "--url", f"ws://127.0.0.1:{port}/", **env)
            assert result.returncode == 1
            assert result.stderr == "error: gateway url override requires explicit credentials\n"
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_url_with_token(home: Path, token_gateway: GatewayProcess) -> None:
    result = openclaw(home, "health", "--url", token_gateway.url, "--token", TOKEN, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pid"] == token_gateway.pid


def test_wrong_token(home: Path, token_gateway: GatewayProcess) -> None:
    result = openclaw(home, "health", "--url", token_gateway.url, "--token", "nope")
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("error: INVALID_REQUEST: unauthorized: gateway token mismatch")
    assert "nope" not in line.removeprefix("error: INVALID_REQUEST: unauthorized")


def test_env_secret_never_printed(home: Path, token_gateway: GatewayProcess) -> None:
    env = {
        "OPENCLAW_PROFILE": "tok",
        "OPENCLAW_GATEWAY_TOKEN": TOKEN,
        "OPENCLAW_GATEWAY_PORT": str(token_gateway.port),
    }
    outputs = []
    for command in (
        ["health", "--json"],
        ["health"],
        ["gateway", "status", "--json"],
        ["gateway", "status"],
        ["gateway", "call", "status", "--json"],
        ["gateway", "call", "gateway.identity.get"],
        ["gateway", "call", "nope"],
    ):
        result = openclaw(home, *command, **env)
        assert result.returncode == (1 if "nope" in command else 0), result.stderr
        outputs += [result.stdout, result.stderr]
    assert json.loads(outputs[4])["authMode"] == "token"
    assert not any(TOKEN in text for text in outputs)


# -- usage and config errors -----------------------------------------------------------------
def test_invalid_profile(home: Path) -> None:
    result = openclaw(home, "--profile", "bad name!", "health")
    assert result.returncode == 2
    assert (
        one_error_line(result) == 'error: Invalid --profile (use letters, numbers, "_", "-" only)'
    )


def test_broken_config_names_file_line_col(home: Path) -> None:
    path = write_config(home, "work", '{\n  gateway: { port: 1234, },\n  "x": ]\n}\n')
    before = path.read_bytes()
    result = openclaw(home, "--profile", "work", "gateway", "status")
    assert result.returncode == 78
    assert one_error_line(result).startswith(f"error: {path}:3:8:")
    assert path.read_bytes() == before


# -- gateway run -----------------------------------------------------------------------------
def test_gateway_run_foreground(home: Path) -> None:
    port = free_port()
    notify_path = Path(tempfile.mkdtemp(prefix="ocn-")) / "notify.sock"
    listener = NotifyListener(notify_path)
    env = clean_env(home, NOTIFY_SOCKET=str(notify_path))
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [*OPENCLAW, "--profile", "work", "gateway", "run", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            listener.wait_for("READY=1", proc=proc)
            result = openclaw(home, "health", "--json", OPENCLAW_GATEWAY_PORT=str(port))
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["pid"] == proc.pid
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - started < 1.0
        finally:
            listener.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_second_gateway_run_exits_78(home: Path, gateway: GatewayProcess) -> None:
    result = openclaw(home, "--profile", "work", "gateway", "run", "--port", str(free_port()))
    assert result.returncode == 78
    assert one_error_line(result) == (
        f"error: gateway already running for profile work (pid {gateway.pid}, port {gateway.port})"
    )


def test_gateway_run_password_flags_conflict(home: Path, tmp_path: Path) -> None:
    result = openclaw(
        home, "gateway", "run", "--password", "p", "--password-file", str(tmp_path / "pw")
    )
    assert result.returncode == 2
    one_error_line(result)


# -- in-process: what a real gateway will not easily do --------------------------------------
def test_degraded_health_exits_1(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    payload = b'{"ok":false,"status":"degraded","checks":{"stateDirWritable":false,"ready":true}}'
    monkeypatch.setattr(gateway_cmds, "_with_client", lambda *args: (payload, 3.2))
    runner = CliRunner()
    env = {"HOME": str(home)}
    result = runner.invoke(cli, ["health"], env=env)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "Gateway Health",
        "DEGRADED (failing stateDirWritable; 3ms)",
    ]
    assert result.stderr == "error: gateway reports unhealthy: failing stateDirWritable\n"
    result = runner.invoke(cli, ["health", "--json"], env=env)
    assert result.exit_code == 1 and result.stdout == payload.decode() + "\n"


def test_format_helpers() -> None:
    target = Target("ws://127.0.0.1:5/", profile_display="work", port=5)
    text = gateway_cmds.format_status(
        {
            "profile": "work",
            "pid": 42,
            "version": "1.2.3",
            "uptimeMs": 3_723_000,
            "connections": {"operators": 1, "nodes": 2, "pending": 0},
            "memory": {"rssBytes": 50 * 1024 * 1024},
            "stateDir": "/s",
        },
        target,
    )
    assert text.splitlines() == [
        "profile:     work",
        "url:         ws://127.0.0.1:5/",
        "pid:         42",
        "version:     1.2.3",
        "uptime:      1h 2m",
        "connections: 1 operator, 2 nodes, 0 pending",
        "rss:         50.0 MB",
        "state dir:   /s",
    ]
    assert [gateway_cmds.human_duration(s) for s in (5, 65, 90061)] == ["5s", "1m 5s", "1d 1h"]
    assert gateway_cmds.parse_params(None) is None
    assert gateway_cmds.parse_params("[1]") == [1]


def test_profile_flag_after_the_command(home: Path, gateway: GatewayProcess) -> None:
    """`openclaw health --profile work` means the same as `openclaw --profile work health`."""
    write_config(home, "work", json.dumps({"gateway": {"port": gateway.port}}))
    after = openclaw(home, "gateway", "status", "--profile", "work", "--json")
    before = openclaw(home, "--profile", "work", "gateway", "status", "--json")
    assert after.returncode == before.returncode == 0, after.stderr + before.stderr
    assert json.loads(after.stdout)["pid"] == json.loads(before.stdout)["pid"] == gateway.pid
    wrong = openclaw(home, "health", "--profile", "bad name!")
    assert wrong.returncode == 2
    assert one_error_line(wrong) == 'error: Invalid --profile (use letters, numbers, "_", "-" only)'
    both = openclaw(home, "health", "--profile", "work", "--dev")
    assert both.returncode == 2
    assert one_error_line(both) == "error: --dev cannot be combined with --profile"
