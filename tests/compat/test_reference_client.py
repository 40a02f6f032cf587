"""The real OpenClaw CLI (the reference client) against a real token gateway of ours.

The CLI (openclaw 2026.9.6, ``bin/openclaw-ref``) and how each call runs (a temp HOME and state
dir, update checks and telemetry off, its process group killed on timeout) are in
tests/reference.py; without it these tests skip, and fail in CI.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess
from reference import Result, client_env, run

pytestmark = pytest.mark.e2e

TOKEN = "ref-" + uuid.uuid4().hex
# What the reference client shows a local CLI whose token is wrong (the reference gateway's
# own wording, formatGatewayAuthFailureMessage).
MISMATCH = (
    "unauthorized: gateway token mismatch "
    "(use this gateway's gateway.auth.token or pair the device)"
)


@pytest.fixture
def compat_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    """A gateway for profile ``compat`` that requires the shared token."""
    state = home / ".openclaw-compat"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"gateway": {"auth": {"mode": "token"}}}))
    env = {"OPENCLAW_PROFILE": "compat", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("compat", env_extra=env)


@pytest.fixture
def run_cli(reference_cli: Path, tmp_path: Path) -> Callable[..., Result]:
    """Run ``openclaw-ref ARGS...`` as a user with an empty home would, bounded in time."""
    env = client_env(tmp_path / "client-home")
    return lambda *args: run(env, *args)


def call_args(gw: GatewayProcess, *args: str, token: str = TOKEN) -> tuple[str, ...]:
    return (*args, "--url", f"ws://127.0.0.1:{gw.port}", "--token", token)


def test_health(compat_gateway: GatewayProcess, run_cli: Callable[..., Result]) -> None:
    result = run_cli(*call_args(compat_gateway, "gateway", "health", "--json"))
    assert result.returncode == 0, result
    health = result.json()
    assert health["ok"] is True
    assert health["pid"] == compat_gateway.pid and health["port"] == compat_gateway.port
    assert health["profile"] == "compat"
    # The human form too: the CLI renders our payload.
    human = run_cli(*call_args(compat_gateway, "gateway", "health"))
    assert human.returncode == 0, human
    assert "Gateway Health" in human.stdout and "OK" in human.stdout


def test_status(compat_gateway: GatewayProcess, run_cli: Callable[..., Result]) -> None:
    result = run_cli(*call_args(compat_gateway, "gateway", "call", "status", "--json"))
    assert result.returncode == 0, result
    status = result.json()
    assert status["pid"] == compat_gateway.pid
    assert status["port"] == compat_gateway.port
    assert status["profile"] == "compat" and status["authMode"] == "token"
    assert status["stateDir"] == str(compat_gateway.state_dir)


def test_unknown_method(compat_gateway: GatewayProcess, run_cli: Callable[..., Result]) -> None:
    name = "nope." + uuid.uuid4().hex[:8]
    result = run_cli(*call_args(compat_gateway, "gateway", "call", name, "--json"))
    assert result.returncode != 0, result
    error = result.json()["error"]
    assert isinstance(error, dict)
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] == f"unknown method: {name}"
    human = run_cli(*call_args(compat_gateway, "gateway", "call", name))
    assert human.returncode != 0, human
    assert f"Gateway call failed: unknown method: {name}" in human.stderr
    # The socket stayed open after the error: the gateway is still serving.
    assert compat_gateway.proc.poll() is None


def test_token_mismatch_refused(
    compat_gateway: GatewayProcess, run_cli: Callable[..., Result]
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    result = run_cli(*call_args(compat_gateway, "gateway", "health", "--json", token=wrong))
    assert result.returncode != 0, result
    error = result.json()["error"]
    assert isinstance(error, dict)
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] == MISMATCH
    assert error["details"] == {"code": "AUTH_TOKEN_MISMATCH"}
    human = run_cli(*call_args(compat_gateway, "gateway", "health", token=wrong))
    assert human.returncode != 0, human
    assert human.stderr.strip().splitlines()[-1] == MISMATCH
    # A handshake refusal (logged by the gateway, secret not echoed), not a later error.
    assert "auth failed from 127.0.0.1 (client cli)" in compat_gateway.output()
    assert wrong not in compat_gateway.output()
    # The right token still works afterwards.
    ok = run_cli(*call_args(compat_gateway, "gateway", "health", "--json"))
    assert ok.returncode == 0, ok
