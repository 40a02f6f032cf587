"""The real OpenClaw CLI (2026.9.6) drives our ``agent`` and ``chat.*``: ``openclaw-ref gateway
call agent --expect-final`` waits past our ``accepted`` answer and prints our final one.

Skips without the reference client (``./scripts/setup-reference-client``); fails in CI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import TOKEN, start_profile
from conftest import GatewayProcess
from reference import client_env, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def ref(reference_cli: Path, tmp_path: Path) -> Callable[..., Any]:
    env = client_env(tmp_path / "client-home")

    def call(port: int, method: str, params: dict[str, Any], *flags: str) -> Any:
        args = ["gateway", "call", method, "--params", json.dumps(params), "--json", *flags]
        args += ["--url", f"ws://127.0.0.1:{port}", "--token", TOKEN]
        result = run(env, *args, timeout=90)
        assert result.returncode == 0, result
        return json.loads(result.stdout)

    return call


def test_reference_cli_runs_the_agent_and_reads_history(
    home: Path, gateway_factory: Callable[..., GatewayProcess], ref: Callable[..., Any]
) -> None:
    gw = start_profile(home, gateway_factory)
    final = ref(
        gw.port, "agent", {"message": "/nodes", "idempotencyKey": "ref-1"}, "--expect-final"
    )
    assert final["runId"] == "ref-1" and final["status"] == "ok"
    assert final["result"]["payloads"] == [{"text": "No nodes are connected."}]
    started = ref(
        gw.port, "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "c"}
    )
    assert started == {"runId": "c", "status": "started"}
    history = ref(gw.port, "chat.history", {"sessionKey": "main"})
    assert history["sessionKey"] == "agent:main:main"
    texts = [m["content"][0]["text"] for m in history["messages"] if m["role"] == "user"]
    assert texts[0] == "/nodes"
