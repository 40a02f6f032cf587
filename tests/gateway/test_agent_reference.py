"""The real OpenClaw CLI (2026.9.6) drives our ``agent`` and ``chat.*``: ``openclaw-ref gateway
call agent --expect-final`` waits past our ``accepted`` answer and prints our final one.

Skips without the reference client (``./scripts/setup-reference-client``); fails in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import TOKEN, start_profile
from conftest import GatewayProcess, clean_env

pytestmark = pytest.mark.e2e
WRAPPER = (
    Path(__file__).resolve().parents[2] / ".cache" / "reference-client" / "bin" / "openclaw-ref"
)
CLI_TIMEOUT = 90.0


@pytest.fixture
def ref(tmp_path: Path) -> Callable[..., Any]:
    if not os.access(WRAPPER, os.X_OK):
        message = f"reference client not installed ({WRAPPER} missing)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    client_home = tmp_path / "client-home"
    client_home.mkdir()
    env = clean_env(
        client_home,
        OPENCLAW_STATE_DIR=str(client_home / ".openclaw"),
        OPENCLAW_NO_AUTO_UPDATE="1",
        OPENCLAW_DISABLE_BONJOUR="1",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
    )

    def call(port: int, method: str, params: dict[str, Any], *flags: str) -> Any:
        args = ["gateway", "call", method, "--params", json.dumps(params), "--json", *flags]
        args += ["--url", f"ws://127.0.0.1:{port}", "--token", TOKEN]
        proc = subprocess.Popen(
            [str(WRAPPER), *args],
            env=env,
            cwd=client_home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the CLI respawns itself: kill its whole group
        )
        try:
            out, err = proc.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(
                f"openclaw-ref {method} still running after {CLI_TIMEOUT}s"
            ) from None
        assert proc.returncode == 0, (out, err)
        return json.loads(out)

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
