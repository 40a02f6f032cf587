"""Params of ``agent`` and ``agent.wait`` (docs/protocol.md, Methods; docs/agent.md).

Shapes follow the reference gateway's ``AgentParamsSchema`` and ``AgentWaitParamsSchema``
(the keys this gateway acts on; unknown keys are ignored). ``runId`` is the
``idempotencyKey``: the same key again is the same run.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .types import MAX_TIMER_MS, NonEmpty

DEFAULT_WAIT_TIMEOUT_MS: Final = 30_000
"""``agent.wait`` without ``timeoutMs`` waits this long (the reference's default)."""
MAX_WAIT_TIMEOUT_MS: Final = MAX_TIMER_MS


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


def wait_timeout_ms(requested: int | None) -> int:
    """How long ``agent.wait`` waits: 30 s unless asked, 0 as asked, clamped to a timer's range.

    A client may send any non-negative integer; without the clamp a huge ``timeoutMs`` parks
    the request (and its waiter) for what is in effect forever.
    """
    if requested is None:
        return DEFAULT_WAIT_TIMEOUT_MS
    return min(requested, MAX_WAIT_TIMEOUT_MS)
