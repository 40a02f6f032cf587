"""Pure rules of ``agent`` / ``agent.wait`` params (protocol/agent.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from openclaw_multi.gateway.agent.handlers import AgentMethods
from openclaw_multi.protocol import agent


def test_wait_timeout_default_zero_and_clamp() -> None:
    assert agent.wait_timeout_ms(None) == agent.DEFAULT_WAIT_TIMEOUT_MS
    assert agent.wait_timeout_ms(0) == 0  # "do not wait", as the reference keeps it
    assert agent.wait_timeout_ms(250) == 250
    assert agent.wait_timeout_ms(agent.MAX_WAIT_TIMEOUT_MS) == agent.MAX_WAIT_TIMEOUT_MS
    assert agent.wait_timeout_ms(10**18) == agent.MAX_WAIT_TIMEOUT_MS


def test_agent_wait_handler_waits_at_most_the_clamp() -> None:
    waited: list[float] = []

    class Registry:
        async def wait(self, run_id: str, timeout_s: float) -> Any:
            waited.append(timeout_s)
            return None

    methods = AgentMethods(Registry(), backend_name="offline", model=None)  # type: ignore[arg-type]
    params = msgspec.convert({"runId": "r", "timeoutMs": 10**18}, agent.AgentWaitParams)
    answer = asyncio.run(methods._wait(None, params))  # type: ignore[arg-type]
    assert answer == {"runId": "r", "status": "timeout"}
    assert waited == [agent.MAX_WAIT_TIMEOUT_MS / 1000]
