"""Params of ``chat.send``/``chat.history``/``chat.abort`` and the session-key rule.

Session keys follow the reference's ``toAgentStoreSessionKey``: an empty key or ``main`` is
the agent's main session ``agent:<agentId>:main``; a key already of the form
``agent:<agentId>:<rest>`` is kept (the agent id lowercased); anything else (a channel's
``telegram:<chatId>``, a UI's ``webchat:xyz``) is scoped to the agent as
``agent:<agentId>:<key>``. So ``main``, ``agent:main:main`` and ``AGENT:Main:main`` are one
session.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .types import NonEmpty

DEFAULT_AGENT_ID: Final = "main"
MAIN_KEY: Final = "main"
HISTORY_DEFAULT_LIMIT: Final = 200
HISTORY_MAX_LIMIT: Final = 1000


class ChatSendParams(msgspec.Struct, frozen=True, rename="camel"):
    """``chat.send`` {sessionKey, message, idempotencyKey}."""

    session_key: str
    message: str
    idempotency_key: NonEmpty


class ChatHistoryParams(msgspec.Struct, frozen=True, rename="camel"):
    """``chat.history`` {sessionKey, limit?}."""

    session_key: str
    limit: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ChatAbortParams(msgspec.Struct, frozen=True, rename="camel"):
    """``chat.abort`` {sessionKey, runId?}."""

    session_key: str
    run_id: str | None = None


def normalize_agent_id(agent_id: str | None) -> str:
    """An agent id, trimmed and lowercased; ``main`` when absent."""
    value = (agent_id or "").strip().lower()
    return value or DEFAULT_AGENT_ID


def canonical_session_key(raw: str | None, agent_id: str | None = None) -> str:
    """The stored form of a session key (module docstring)."""
    key = (raw or "").strip()
    if not key or key.lower() == MAIN_KEY:
        return f"agent:{normalize_agent_id(agent_id)}:{MAIN_KEY}"
    parsed = parse_agent_session_key(key)
    if parsed is not None:
        return f"agent:{parsed[0]}:{parsed[1]}"
    return f"agent:{normalize_agent_id(agent_id)}:{key}"


def parse_agent_session_key(key: str) -> tuple[str, str] | None:
    """``(agentId, rest)`` of an ``agent:<id>:<rest>`` key, or None for any other form."""
    if key[:6].lower() != "agent:":
        return None
    agent_id, sep, rest = key[6:].partition(":")
    agent_id = agent_id.strip().lower()
    if not sep or not agent_id or not rest or rest.startswith(":"):
        return None
    return agent_id, rest


def history_limit(limit: int | None) -> int:
    """How many messages ``chat.history`` returns: default 200, at most 1000."""
    if limit is None:
        return HISTORY_DEFAULT_LIMIT
    return min(limit, HISTORY_MAX_LIMIT)
