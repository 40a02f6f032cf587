"""Chat: sessions people talk in, over the wire (``chat.*``) and from channels (``respond``).

:class:`ChatService` is ``gateway.chat``. It owns the session store, the agent backend and
the run registry (gateway/agent/), and serves ``chat.send``, ``chat.history``,
``chat.abort`` plus ``agent``/``agent.wait``. Every run, whoever started it, streams
``agent`` and ``chat`` events to operators with ``operator.read``.

Channels (Telegram, ...) call :meth:`ChatService.respond`; that docstring is their contract.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import OpenClawError
from ..profiles.config import AgentSection
from ..protocol import codes, scopes
from ..protocol.chat import ChatAbortParams, ChatHistoryParams, ChatSendParams, history_limit
from .agent.backend import Backend
from .agent.handlers import AgentMethods, resolve_session
from .agent.offline import OfflineBackend
from .agent.openai import OpenAIBackend
from .agent.runs import RunRegistry
from .agent.tools import ToolBox
from .http_client import origin
from .methods import Method, MethodError
from .sessions import SessionStore, SessionStoreError

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Gateway

_LOG = logging.getLogger("openclaw.gateway")
EVENTS = ("agent", "chat")
TOOL_TIMEOUT_MS = 30_000
"""How long one node command called by the agent may take."""


class ChatReplyFailed(OpenClawError):
    """An agent run for a channel message did not produce a reply.

    Attributes:
        code: ``UNAVAILABLE`` (backend or store failure), ``AGENT_TIMEOUT`` (the model or
            ``agent.runTimeoutMs`` ran out), ``RATE_LIMITED`` (HTTP 429 from the model) or
            ``ABORTED`` (``chat.abort``, or the gateway stopping).
        message: One line for a person; never contains a key.
        run_id: The run that failed.
    """

    def __init__(self, code: str, message: str, run_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.run_id = run_id


def make_backend(section: AgentSection) -> Backend:
    """The backend ``agent.backend`` names.

    Logged: the key's source, never the key, and only the origin of the base URL (a URL may
    carry credentials: ``user:pass@``, ``?api-key=``).
    """
    if section.backend == "openai":
        backend = OpenAIBackend(section.openai, os.environ)
        _LOG.info(
            "agent backend: openai-compatible, model %s at %s (key: %s)",
            section.openai.model,
            origin(section.openai.base_url),
            backend.key_source,
        )
        return backend
    return OfflineBackend()


class ChatService:
    """``gateway.chat`` (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        section = gateway.settings.config.agent
        self.store = SessionStore.open(gateway.settings.paths.state_dir)
        self.backend = make_backend(section)
        self.runs = RunRegistry(
            self.store,
            self.backend,
            lambda session_key: ToolBox(
                gateway.nodes, session_key=session_key, timeout_ms=TOOL_TIMEOUT_MS
            ),
            self._publish,
            run_timeout_ms=section.run_timeout_ms,
            system_prompt=section.system_prompt,
        )
        model = section.openai.model if section.backend == "openai" else None
        self.agent = AgentMethods(self.runs, backend_name=self.backend.name, model=model)

    def methods(self) -> dict[str, Method]:
        """``agent``, ``agent.wait`` and ``chat.*`` with the reference's scopes."""
        return {
            **self.agent.methods(),
            "chat.send": Method(self._send, scopes.WRITE, ChatSendParams),
            "chat.history": Method(self._history, scopes.READ, ChatHistoryParams),
            "chat.abort": Method(self._abort, scopes.WRITE, ChatAbortParams),
        }

    def _publish(self, event: str, payload: dict[str, Any]) -> None:
        self.gateway.broadcast(event, payload, scope=scopes.READ)

    # -- the channel contract --------------------------------------------------------------
    async def respond(
        self, session_key: str, message: str, *, channel: str, sender: str | None = None
    ) -> str:
        """Answer one inbound channel message with the agent; return the reply text.

        What happens, in order: the message joins the session's queue (runs of one session
        go one at a time, in arrival order; other sessions run concurrently); it is stored
        (role ``user``, with ``channel`` and ``sender``) before the backend is called; the
        agent runs (node commands available as tools), streaming ``agent``/``chat`` events
        to operators, so the Control UI watches channel conversations live; the reply is
        stored (role ``assistant``) and returned. On failure the error is stored in the
        session instead and :class:`ChatReplyFailed` is raised: the inbound message is
        never lost either way.

        Cancelling the caller's await does not cancel the run: it still finishes and
        stores its reply (``chat.abort`` on the session is how a run is stopped).

        Args:
            session_key: The conversation, e.g. ``telegram:<chatId>``; stored as
                ``agent:main:telegram:<chatId>`` (protocol/chat.py: ``main`` is the main
                session, ``agent:<id>:<rest>`` keys are kept). Use one key per chat.
            message: The person's text (must not be empty or blank).
            channel: The channel's name (``telegram``), stored with both messages.
            sender: Who sent it in the channel's terms (a user id or name), if known.

        Returns:
            The reply text (may be empty if the model said nothing).

        Raises:
            ChatReplyFailed: The run ended in error, timed out, or was aborted; ``code``
                and ``message`` say why.
            ValueError: ``message`` is blank.
        """
        if not message.strip():
            raise ValueError("message is blank")
        key, agent_id = resolve_session(session_key, None)
        run, _ = self.runs.start(
            str(uuid.uuid4()), key, agent_id, message, channel=channel, sender=sender
        )
        await asyncio.shield(run.done)
        if run.status == "ok":
            return run.text
        if run.status == "aborted":
            raise ChatReplyFailed("ABORTED", f"aborted ({run.stop_reason})", run.run_id)
        raise ChatReplyFailed(
            run.error_code or codes.UNAVAILABLE, run.error or "agent run failed", run.run_id
        )

    def post(self, session_key: str, text: str, *, channel: str, run_id: str) -> dict[str, Any]:
        """Store an assistant message that no run produced (``send`` to webchat); show it live.

        Operators watching the session get one ``chat`` event in ``final`` state carrying the
        stored message, as at the end of a run.

        Raises:
            SessionStoreError: The write failed; nothing was stored or shown.
        """
        key, agent_id = resolve_session(session_key, None)
        message = self.store.append(
            key, "assistant", text, agent_id=agent_id, run_id=run_id, channel=channel
        )
        self._publish(
            "chat",
            {
                "runId": run_id,
                "sessionKey": key,
                "agentId": agent_id,
                "seq": 1,
                "state": "final",
                "message": message,
            },
        )
        return message

    def counts(self) -> dict[str, int]:
        """What ``status`` shows of chat: stored sessions and messages, runs in flight."""
        return {**self.store.counts(), "runsInFlight": len(self.runs.active)}

    def shutdown(self) -> None:
        """Abort runs in flight (their messages and the abort are stored).

        Called once as the gateway drains; the aborted runs settle on the next loop turns
        (:meth:`settle`), then :meth:`close` closes the store.
        """
        count = self.runs.abort_all("gateway stopping")
        if count:
            _LOG.info("aborted %d agent run(s): gateway stopping", count)

    async def settle(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the runs in flight to end; how many did not."""
        done = [run.done for run in self.runs.active.values()]
        if not done:
            return 0
        _, unsettled = await asyncio.wait(done, timeout=timeout_s)
        return len(unsettled)

    def close(self) -> None:
        """Close the session store (after the runs settled): SQLite checkpoints the WAL."""
        self.store.close()
        _LOG.info("session store closed")

    # -- chat.* ----------------------------------------------------------------------------
    def _send(self, conn: Connection, params: ChatSendParams) -> dict[str, Any]:
        if not params.message.strip():
            raise MethodError(codes.INVALID_REQUEST, "invalid chat.send params: message required")
        key, agent_id = resolve_session(params.session_key, None)
        run, new = self.runs.start(params.idempotency_key, key, agent_id, params.message)
        if new or not run.finished:
            return {"runId": run.run_id, "status": "started" if new else "in_flight"}
        return {"runId": run.run_id, "status": run.wait_result()["status"]}

    def _history(self, conn: Connection, params: ChatHistoryParams) -> dict[str, Any]:
        key, _ = resolve_session(params.session_key, None)
        limit = history_limit(params.limit)
        try:
            session = self.store.session(key)
            messages = self.store.history(key, limit + 1)
        except SessionStoreError as err:
            _LOG.error("chat.history: %s", err)
            raise MethodError(codes.UNAVAILABLE, "session store unavailable") from None
        has_more = len(messages) > limit
        return {
            "sessionKey": key,
            "sessionId": session["sessionId"] if session else None,
            "messages": messages[-limit:],
            "hasMore": has_more,
            "inFlight": [run.run_id for run in self.runs.session_runs(key)],
        }

    def _abort(self, conn: Connection, params: ChatAbortParams) -> dict[str, Any]:
        key, _ = resolve_session(params.session_key, None)
        runs = self.runs.session_runs(key)
        if params.run_id:
            found = self.runs.get(params.run_id)
            if found is not None and found.session_key != key:
                raise MethodError(codes.INVALID_REQUEST, "runId does not match sessionKey")
            runs = [run for run in runs if run.run_id == params.run_id]
        aborted = [run.run_id for run in runs if self.runs.abort(run)]
        return {"ok": True, "aborted": bool(aborted), "runIds": aborted}
