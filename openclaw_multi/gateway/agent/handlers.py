"""``agent`` and ``agent.wait`` over the wire (docs/protocol.md, Methods; docs/agent.md).

``agent`` answers twice with the caller's request id: at once
``{runId, sessionKey, agentId, status:"accepted", acceptedAt}``, and when the run ends
``{runId, status:"ok", summary:"completed", result:{payloads, meta}}``, or ``ok:false`` with
the error and the payload ``{runId, status:"error", summary}``, or for an aborted run
``{runId, status:"timeout", summary:"aborted", stopReason}`` (the reference's shapes). A
re-send with the same ``idempotencyKey`` gets the same two answers for the same run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ...protocol import codes, scopes
from ...protocol.agent import AgentParams, AgentWaitParams, wait_timeout_ms
from ...protocol.chat import canonical_session_key, normalize_agent_id, parse_agent_session_key
from ...protocol.frames import ResponseFrame
from ..methods import Method, MethodError
from .runs import Run, RunRegistry

if TYPE_CHECKING:
    from ..connection import Connection


class AgentMethods:
    """The two methods, on top of a :class:`RunRegistry`."""

    def __init__(self, registry: RunRegistry, *, backend_name: str, model: str | None) -> None:
        self.registry = registry
        self.backend_name = backend_name
        self.model = model

    def methods(self) -> dict[str, Method]:
        """Scopes as the reference's method table: both need ``operator.write``."""
        return {
            "agent": Method(self._agent, scopes.WRITE, AgentParams, True, with_request_id=True),
            "agent.wait": Method(self._wait, scopes.WRITE, AgentWaitParams, True),
        }

    def _agent(
        self, conn: Connection, params: AgentParams, request_id: str
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        if not params.message.strip():
            raise MethodError(codes.INVALID_REQUEST, "invalid agent params: message required")
        session_key, agent_id = resolve_session(params.session_key, params.agent_id)
        run, _ = self.registry.start(params.idempotency_key, session_key, agent_id, params.message)
        accepted = {
            "runId": run.run_id,
            "sessionKey": run.session_key,
            "agentId": run.agent_id,
            "status": "accepted",
            "acceptedAt": run.accepted_at,
        }
        conn.send_response(ResponseFrame(id=request_id, ok=True, payload=accepted))
        return self._final(run)

    async def _final(self, run: Run) -> dict[str, Any]:
        # Shielded: the caller leaving cancels this wait, never the run itself.
        await asyncio.shield(run.done)
        if run.status == "ok":
            return {
                "runId": run.run_id,
                "status": "ok",
                "summary": "completed",
                "result": {
                    "payloads": [{"text": run.text}] if run.text else [],
                    "meta": {
                        "durationMs": (run.ended_at or 0) - (run.started_at or 0),
                        "agentMeta": {
                            "provider": self.backend_name,
                            "model": self.model,
                            "sessionKey": run.session_key,
                        },
                    },
                },
            }
        if run.status == "aborted":
            return {
                "runId": run.run_id,
                "status": "timeout",
                "summary": "aborted",
                "stopReason": run.stop_reason,
            }
        message = run.error or "agent run failed"
        raise MethodError(
            run.error_code or codes.UNAVAILABLE,
            message,
            payload={"runId": run.run_id, "status": "error", "summary": message},
        )

    async def _wait(self, conn: Connection, params: AgentWaitParams) -> dict[str, Any]:
        timeout_ms = wait_timeout_ms(params.timeout_ms)
        run = await self.registry.wait(params.run_id, timeout_ms / 1000)
        if run is None:
            return {"runId": params.run_id, "status": "timeout"}
        return run.wait_result()


def resolve_session(session_key: str | None, agent_id: str | None) -> tuple[str, str]:
    """``(canonical session key, agent id)``; an ``agent:<id>:...`` key names its agent."""
    key = canonical_session_key(session_key, agent_id)
    parsed = parse_agent_session_key(key)
    return key, parsed[0] if parsed else normalize_agent_id(agent_id)
