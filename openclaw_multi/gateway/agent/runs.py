"""The run registry: every agent run, from acceptance to its final outcome.

Theory of operation. :meth:`RunRegistry.start` is idempotent on the run id (the caller's
``idempotencyKey``): the same id again returns the same :class:`Run`. A new run becomes a
task that first waits for its session's lock (runs of one session go one at a time, in
arrival order), then:

1. stores the user message (before the backend is called, so a failure never loses it),
2. calls the backend under ``agent.runTimeoutMs``, streaming ``agent`` and ``chat`` events,
3. stores what the agent did (an assistant message with its ``toolCall`` blocks, then one
   ``toolResult`` message per call: transcript.py), then the assistant reply, or the error,
   and settles the run's outcome.

Outcomes: ``ok``; ``error`` (backend failure, time bound, store failure); ``aborted``
(``chat.abort``, or the gateway stopping). A run aborted while still queued stores its user
message then, so what a person sent is kept whatever happens. Finished runs are remembered
(bounded) so ``agent.wait`` and re-sends of the same key still find them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from ...protocol import codes
from ..sessions import SessionStore, SessionStoreError
from .backend import Backend, BackendError, Turn
from .tools import ToolBox
from .transcript import PlannedCall, ToolSteps

_LOG = logging.getLogger("openclaw.gateway")
Status = Literal["queued", "running", "ok", "error", "aborted"]
Publish = Callable[[str, dict[str, Any]], None]
ToolBoxFactory = Callable[[str], ToolBox]

KEEP_FINISHED = 1000
"""Finished runs remembered for agent.wait and idempotent re-sends (oldest forgotten first)."""
HISTORY_TURNS = 40
"""Earlier user/assistant messages a backend is given as context."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Run:
    """One agent run; implements :class:`~.backend.RunSink` for its backend."""

    def __init__(
        self,
        registry: RunRegistry,
        run_id: str,
        session_key: str,
        agent_id: str,
        message: str,
        *,
        channel: str | None,
        sender: str | None,
    ) -> None:
        self.registry = registry
        self.run_id = run_id
        self.session_key = session_key
        self.agent_id = agent_id
        self.message = message
        self.channel = channel
        self.sender = sender
        self.status: Status = "queued"
        self.accepted_at = _now_ms()
        self.started_at: int | None = None
        self.ended_at: int | None = None
        self.text = ""
        self.error: str | None = None
        self.error_code: str | None = None
        self.stop_reason: str | None = None
        self.reply: dict[str, Any] | None = None  # the stored assistant message
        self.user_stored = False
        self.steps = ToolSteps()  # tool calls and results, stored before the reply
        self.steps_stored = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self._agent_seq = 0
        self._chat_seq = 0

    @property
    def finished(self) -> bool:
        return self.done.done()

    # -- RunSink ---------------------------------------------------------------------------
    def delta(self, text: str) -> None:
        if not text:
            return
        self.text += text
        self.emit_agent("assistant", {"text": self.text, "delta": text})
        self.emit_chat(
            "delta",
            deltaText=self.text,
            replace=True,
            message={"role": "assistant", "content": [{"type": "text", "text": self.text}]},
        )

    def tool_calls(self, calls: list[PlannedCall]) -> None:
        self.steps.calls(self.text, calls)

    def tool_start(self, call_id: str, name: str, args: Any) -> None:
        self.steps.started(self.text, call_id, name, args)
        self.emit_agent(
            "tool", {"phase": "start", "name": name, "toolCallId": call_id, "args": args}
        )
        self.emit_agent(
            "item",
            {
                "itemId": f"tool:{call_id}",
                "toolCallId": call_id,
                "kind": "tool",
                "name": name,
                "phase": "start",
                "status": "running",
                "title": name,
            },
        )

    def tool_result(self, call_id: str, name: str, result: Any, *, is_error: bool) -> None:
        self.steps.result(call_id, name, result, is_error=is_error)
        self.emit_agent(
            "tool",
            {
                "phase": "result",
                "name": name,
                "toolCallId": call_id,
                "isError": is_error,
                "result": result,
            },
        )
        self.emit_agent(
            "item",
            {
                "itemId": f"tool:{call_id}",
                "toolCallId": call_id,
                "kind": "tool",
                "name": name,
                "phase": "end",
                "status": "failed" if is_error else "completed",
                "title": name,
            },
        )

    def usage(self, usage: dict[str, Any]) -> None:
        self.emit_agent("usage", usage)

    # -- events ----------------------------------------------------------------------------
    def emit_agent(self, stream: str, data: Any) -> None:
        self._agent_seq += 1
        self.registry.publish(
            "agent",
            {
                "runId": self.run_id,
                "stream": stream,
                "data": data,
                "sessionKey": self.session_key,
                "agentId": self.agent_id,
                "seq": self._agent_seq,
                "ts": _now_ms(),
            },
        )

    def emit_chat(self, state: str, **fields: Any) -> None:
        self._chat_seq += 1
        payload = {
            "runId": self.run_id,
            "sessionKey": self.session_key,
            "agentId": self.agent_id,
            "seq": self._chat_seq,
            "state": state,
        }
        payload.update(fields)
        self.registry.publish("chat", payload)

    # -- outcome views -----------------------------------------------------------------------
    def wait_result(self) -> dict[str, Any]:
        """``agent.wait``'s answer for this run (the reference's field names)."""
        if not self.finished:
            return {"runId": self.run_id, "status": "timeout"}
        status = {"ok": "ok", "error": "error", "aborted": "timeout"}.get(self.status, "error")
        result: dict[str, Any] = {
            "runId": self.run_id,
            "status": status,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
        }
        if self.error is not None:
            result["error"] = self.error
        if self.stop_reason is not None:
            result["stopReason"] = self.stop_reason
        return result


class RunRegistry:
    """All runs of this gateway (module docstring)."""

    def __init__(
        self,
        store: SessionStore,
        backend: Backend,
        toolbox: ToolBoxFactory,
        publish: Publish,
        *,
        run_timeout_ms: int,
        system_prompt: str | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.toolbox = toolbox
        self.publish = publish
        self.run_timeout_ms = run_timeout_ms
        self.system_prompt = system_prompt
        self.active: dict[str, Run] = {}
        self.finished: OrderedDict[str, Run] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._appear: dict[str, list[asyncio.Future[Run]]] = {}

    # -- starting and finding --------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        return self.active.get(run_id) or self.finished.get(run_id)

    def start(
        self,
        run_id: str,
        session_key: str,
        agent_id: str,
        message: str,
        *,
        channel: str | None = None,
        sender: str | None = None,
    ) -> tuple[Run, bool]:
        """The run for ``run_id``: ``(run, True)`` when started now, ``(run, False)`` if known."""
        known = self.get(run_id)
        if known is not None:
            return known, False
        run = Run(self, run_id, session_key, agent_id, message, channel=channel, sender=sender)
        try:  # durable before the caller acknowledges it, even if queued behind another run
            self.store.accept(
                run_id, session_key, message, agent_id=agent_id, channel=channel, sender=sender
            )
        except SessionStoreError as err:  # the run itself reports the store failing
            _LOG.error("agent run %s: %s", run_id, err)
        self.active[run_id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"agent-run-{run_id[:32]}")
        run.task.add_done_callback(lambda _: self._settle_unstarted(run))
        for waiter in self._appear.pop(run_id, ()):
            if not waiter.done():
                waiter.set_result(run)
        return run, True

    async def wait(self, run_id: str, timeout_s: float) -> Run | None:
        """Wait up to ``timeout_s`` for the run to finish (it may not have started yet).

        Returns the run (finished or not), or None if no run with this id appeared in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        run = self.get(run_id)
        if run is None:
            waiter: asyncio.Future[Run] = loop.create_future()
            self._appear.setdefault(run_id, []).append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    run = await waiter
            except TimeoutError:
                return None
            finally:
                waiters = self._appear.get(run_id)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._appear[run_id]
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(run.done)
        except TimeoutError:
            pass
        return run

    def session_runs(self, session_key: str) -> list[Run]:
        """The unfinished runs of a session, oldest first."""
        return [run for run in self.active.values() if run.session_key == session_key]

    # -- aborting --------------------------------------------------------------------------
    def abort(self, run: Run, reason: str = "rpc") -> bool:
        """Cancel an unfinished run; it settles as ``aborted``. False if already finished."""
        if run.finished or run.task is None or run.stop_reason is not None:
            return False
        run.stop_reason = reason
        run.task.cancel()
        return True

    def abort_all(self, reason: str) -> int:
        """Abort every unfinished run (the gateway is stopping); how many were aborted."""
        return sum(self.abort(run, reason) for run in list(self.active.values()))

    # -- one run -------------------------------------------------------------------------------
    async def _execute(self, run: Run) -> None:
        try:
            async with self._session_lock(run.session_key):
                await self._serve(run)
        except asyncio.CancelledError:
            if run.stop_reason is None:
                run.stop_reason = "cancelled"
            self._settle_aborted(run)
        except Exception as err:  # a bug must end this run, never the gateway
            _LOG.exception("agent run %s failed unexpectedly", run.run_id)
            self._settle_error(run, codes.UNAVAILABLE, f"internal error: {type(err).__name__}")

    def _settle_unstarted(self, run: Run) -> None:
        # A task cancelled before its first step never enters _execute's handlers.
        if not run.finished:
            if run.stop_reason is None:
                run.stop_reason = "cancelled"
            self._settle_aborted(run)

    async def _serve(self, run: Run) -> None:
        run.status = "running"
        run.started_at = _now_ms()
        run.emit_agent("lifecycle", {"phase": "start", "startedAt": run.started_at})
        try:
            history = self.store.transcript(run.session_key, HISTORY_TURNS)
            self._store_user(run)
        except SessionStoreError as err:
            _LOG.error("agent run %s: %s", run.run_id, err)
            self._settle_error(run, codes.UNAVAILABLE, "session store unavailable")
            return
        turn = Turn(
            run_id=run.run_id,
            session_key=run.session_key,
            agent_id=run.agent_id,
            message=run.message,
            history=history,
            system_prompt=self.system_prompt,
        )
        tools = self.toolbox(run.session_key)
        timeout_s = self.run_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                text = await self.backend.reply(turn, tools, run)
        except TimeoutError:
            self._settle_error(
                run, codes.AGENT_TIMEOUT, f"agent run timed out after {timeout_s:g}s"
            )
            return
        except BackendError as err:
            _LOG.warning("agent run %s: %s", run.run_id, err.message)
            self._settle_error(run, err.code, err.message)
            return
        if not run.text and text:
            run.delta(text)  # a backend that did not stream: one delta with the whole reply
        try:
            self._store_steps(run)
            run.reply = self.store.append(
                run.session_key,
                "assistant",
                text,
                agent_id=run.agent_id,
                run_id=run.run_id,
                channel=run.channel,
            )
        except SessionStoreError as err:
            _LOG.error("agent run %s: reply not stored: %s", run.run_id, err)
            self._settle_error(run, codes.UNAVAILABLE, "session store unavailable")
            return
        run.text = text
        run.status = "ok"
        run.ended_at = _now_ms()
        run.emit_agent(
            "lifecycle", {"phase": "end", "startedAt": run.started_at, "endedAt": run.ended_at}
        )
        run.emit_chat("final", message=run.reply)
        self._finish(run)

    def _store_user(self, run: Run) -> None:
        if run.user_stored:
            return
        self.store.append(
            run.session_key,
            "user",
            run.message,
            agent_id=run.agent_id,
            run_id=run.run_id,
            channel=run.channel,
            sender=run.sender,
        )
        run.user_stored = True

    def _store_steps(self, run: Run) -> None:
        """Store the run's tool calls and results not stored yet, in order."""
        steps = run.steps.steps
        while run.steps_stored < len(steps):
            step = steps[run.steps_stored]
            self.store.append(
                run.session_key,
                step.role,
                step.text,
                agent_id=run.agent_id,
                run_id=run.run_id,
                channel=run.channel,
                blocks=step.blocks,
                tool=step.tool,
            )
            run.steps_stored += 1

    def _store_outcome(self, run: Run, stop_reason: str, error: str) -> None:
        """Keep the user message, the steps taken and the failure in the transcript; a
        store failure is logged."""
        try:
            self._store_user(run)
            self._store_steps(run)
            run.reply = self.store.append(
                run.session_key,
                "assistant",
                run.steps.remaining_text(run.text),
                agent_id=run.agent_id,
                run_id=run.run_id,
                channel=run.channel,
                stop_reason=stop_reason,
                error=error,
            )
        except SessionStoreError as err:
            _LOG.error("agent run %s: outcome not stored: %s", run.run_id, err)

    def _settle_error(self, run: Run, code: str, message: str) -> None:
        run.status = "error"
        run.error = message
        run.error_code = code
        run.ended_at = _now_ms()
        self._store_outcome(run, "error", message)
        run.emit_agent("lifecycle", {"phase": "error", "error": message, "endedAt": run.ended_at})
        run.emit_chat("error", errorMessage=message)
        self._finish(run)

    def _settle_aborted(self, run: Run) -> None:
        run.status = "aborted"
        run.error = "aborted"
        run.error_code = codes.UNAVAILABLE
        run.ended_at = _now_ms()
        self._store_outcome(run, "aborted", f"aborted ({run.stop_reason})")
        run.emit_agent(
            "lifecycle",
            {
                "phase": "end",
                "aborted": True,
                "stopReason": run.stop_reason,
                "endedAt": run.ended_at,
            },
        )
        run.emit_chat("aborted", stopReason=run.stop_reason, message=run.reply)
        self._finish(run)

    def _finish(self, run: Run) -> None:
        self.active.pop(run.run_id, None)
        self.finished[run.run_id] = run
        while len(self.finished) > KEEP_FINISHED:
            self.finished.popitem(last=False)
        if not run.done.done():
            run.done.set_result(None)

    # -- per-session order ---------------------------------------------------------------------
    def _session_lock(self, session_key: str) -> _SessionLock:
        return _SessionLock(self._locks, session_key)


class _SessionLock:
    """The lock of one session, created on first use and dropped when nobody holds or waits."""

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        lock, users = self._locks.get(self._key) or (asyncio.Lock(), 0)
        self._locks[self._key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._release_user()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._locks[self._key][0].release()
        self._release_user()

    def _release_user(self) -> None:
        lock, users = self._locks[self._key]
        if users <= 1:
            del self._locks[self._key]
        else:
            self._locks[self._key] = (lock, users - 1)
