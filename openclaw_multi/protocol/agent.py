"""Params of ``agent`` and ``agent.wait`` (docs/protocol.md, Methods; docs/agent.md).

Shapes follow the reference gateway's ``AgentParamsSchema`` and ``AgentWaitParamsSchema``
(the keys this gateway acts on; unknown keys are ignored). ``runId`` is the
``idempotencyKey``: the same key again is the same run.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .types import NonEmpty

DEFAULT_WAIT_TIMEOUT_MS: Final = 30_000
"""``agent.wait`` without ``timeoutMs`` waits this long (the reference's default)."""


class AgentParams(msgspec.Struct, frozen=True, rename="camel"):
    """``agent`` {message, idempotencyKey, sessionKey?, agentId?}."""

    message: str
    idempotency_key: NonEmpty
    session_key: str | None = None
    agent_id: str | None = None


class AgentWaitParams(msgspec.Struct, frozen=True, rename="camel"):
    """``agent.wait`` {runId, timeoutMs?}."""

    run_id: NonEmpty
    timeout_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None
