"""gateway/chat.py in-process: the backend log line (no credentials), settling at shutdown."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from openclaw_multi.gateway.chat import ChatService, make_backend
from openclaw_multi.profiles.config import AgentOpenAI, AgentSection


def test_the_backend_log_line_shows_the_origin_never_credentials_in_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "https://alice:hunter2@models.example:8443/v1?api-key=sk-query-secret"
    section = AgentSection(backend="openai", openai=AgentOpenAI(base_url=url, model="m1"))
    with caplog.at_level(logging.INFO, logger="openclaw.gateway"):
        backend = make_backend(section)
    assert backend.name == "openai"
    line = next(r.getMessage() for r in caplog.records if "agent backend" in r.getMessage())
    assert "model m1 at https://models.example:8443 " in line
    for secret in ("alice", "hunter2", "sk-query-secret", "api-key"):
        assert secret not in caplog.text


def test_settle_waits_for_runs_in_flight_and_bounds_the_wait() -> None:
    """What server.py waits on before it closes the session store at shutdown."""

    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        ending, stuck = loop.create_future(), loop.create_future()
        service = ChatService.__new__(ChatService)  # only ``runs`` is used
        service.runs = SimpleNamespace(active={})  # type: ignore[assignment]
        none = await service.settle(10.0)
        service.runs.active = {"a": SimpleNamespace(done=ending)}
        loop.call_later(0.01, ending.set_result, None)
        settled = await service.settle(10.0)
        service.runs.active = {"b": SimpleNamespace(done=stuck)}
        bounded = await service.settle(0.05)
        return none, settled, bounded

    assert asyncio.run(main()) == (0, 0, 1)
