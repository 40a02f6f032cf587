"""chat.make_backend: what the gateway log says about the model endpoint (no credentials)."""

from __future__ import annotations

import logging

import pytest

from openclaw_multi.gateway.chat import make_backend
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
