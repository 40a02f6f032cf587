"""The run registry in process (gateway/agent/runs.py): order, idempotency, failures, abort.

A scripted backend stands in for a model; events go to a list; the store is a real file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from openclaw_multi.gateway.agent.backend import BackendError, RunSink, Turn
from openclaw_multi.gateway.agent.runs import RunRegistry
from openclaw_multi.gateway.agent.transcript import MAX_STORED_BYTES, PlannedCall
from openclaw_multi.gateway.sessions import SessionStore

KEY = "agent:main:main"


class ScriptedBackend:
    """Replies with ``reply:<message>`` unless a gate or a failure is set for the message."""

    name = "scripted"

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.fail: dict[str, BaseException] = {}

    def gate(self, message: str) -> asyncio.Event:
        self.entered[message] = asyncio.Event()
        gate = self.gates[message] = asyncio.Event()
        return gate

    async def reply(self, turn: Turn, tools: Any, sink: RunSink) -> str:
        self.turns.append(turn)
        if turn.message in self.entered:
            self.entered[turn.message].set()
        if turn.message in self.gates:
            await self.gates[turn.message].wait()
        if turn.message in self.fail:
            sink.delta("partial ")
            raise self.fail[turn.message]
        if turn.message == "use tools":
            return await self.use_tools(sink)
        sink.delta("reply:")
        sink.delta(turn.message)
        return f"reply:{turn.message}"

    async def use_tools(self, sink: RunSink) -> str:
        """Two calls in one model message (one fails, one answers 20 KiB), then text."""
        sink.delta("Checking. ")
        sink.tool_calls(
            [
                PlannedCall("c1", "system_run", {"command": ["ls"]}),
                PlannedCall("c2", "test_echo", {}),
            ]
        )
        sink.tool_start("c1", "system_run", {"command": ["ls"]})
        sink.tool_result("c1", "system_run", {"stdout": "é" * 10_240}, is_error=False)
        sink.tool_start("c2", "test_echo", {})
        sink.tool_result(
            "c2", "test_echo", {"code": "UNAVAILABLE", "message": "gone"}, is_error=True
        )
        sink.delta("Done.")
        return "Done."


def run_with_registry(
    tmp_path: Path,
    body: Callable[
        [RunRegistry, ScriptedBackend, list[tuple[str, dict[str, Any]]]], Awaitable[None]
    ],
    *,
    run_timeout_ms: int = 10_000,
) -> None:
    async def main() -> None:
        store = SessionStore.open(tmp_path)
        backend = ScriptedBackend()
        events: list[tuple[str, dict[str, Any]]] = []
        registry = RunRegistry(
            store,
            backend,
            lambda key: None,  # type: ignore[arg-type,return-value]
            lambda event, payload: events.append((event, payload)),
            run_timeout_ms=run_timeout_ms,
            system_prompt="be brief",
        )
        try:
            async with asyncio.timeout(20):
                await body(registry, backend, events)
        finally:
            store.close()

    asyncio.run(main())


def test_a_run_streams_and_stores_both_messages(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        run, new = registry.start("r1", KEY, "main", "hello", channel="telegram", sender="42")
        assert new and run.status == "queued"
        await run.done
        assert run.status == "ok" and run.text == "reply:hello"
        assert backend.turns[0].system_prompt == "be brief" and backend.turns[0].history == []
        agent = [p for e, p in events if e == "agent"]
        assert [p["stream"] for p in agent] == ["lifecycle", "assistant", "assistant", "lifecycle"]
        assert [p["seq"] for p in agent] == [1, 2, 3, 4]
        assert agent[2]["data"] == {"text": "reply:hello", "delta": "hello"}
        assert agent[3]["data"]["phase"] == "end"
        chat = [p for e, p in events if e == "chat"]
        assert [p["state"] for p in chat] == ["delta", "delta", "final"]
        assert chat[1]["deltaText"] == "reply:hello"
        assert chat[2]["message"]["content"] == [{"type": "text", "text": "reply:hello"}]
        history = registry.store.history(KEY, 10)
        assert [(m["role"], m["content"][0]["text"]) for m in history] == [
            ("user", "hello"),
            ("assistant", "reply:hello"),
        ]
        assert history[0]["channel"] == "telegram" and history[0]["sender"] == "42"
        # the next run gets the earlier turns as context
        second, _ = registry.start("r2", KEY, "main", "again")
        await second.done
        assert backend.turns[1].history == [("user", "hello"), ("assistant", "reply:hello")]

    run_with_registry(tmp_path, body)


def test_same_run_id_is_the_same_run(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        first, new = registry.start("same", KEY, "main", "once")
        again, new_again = registry.start("same", KEY, "main", "twice?")
        assert new and not new_again and again is first
        await first.done
        after, new_after = registry.start("same", KEY, "main", "thrice?")
        assert after is first and not new_after
        assert [t.message for t in backend.turns] == ["once"]
        assert len(registry.store.history(KEY, 10)) == 2

    run_with_registry(tmp_path, body)


def test_runs_of_one_session_go_one_at_a_time(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        gate = backend.gate("first")
        registry.start("a", KEY, "main", "first")
        second, _ = registry.start("b", KEY, "main", "second")
        other, _ = registry.start("c", "agent:main:other", "main", "elsewhere")
        await other.done  # another session is not held up
        await backend.entered["first"].wait()
        assert second.status == "queued" and [t.message for t in backend.turns] == [
            "first",
            "elsewhere",
        ]
        gate.set()
        await second.done
        assert [t.message for t in backend.turns] == ["first", "elsewhere", "second"]
        texts = [m["content"][0]["text"] for m in registry.store.history(KEY, 10)]
        assert texts == ["first", "reply:first", "second", "reply:second"]
        assert registry._locks == {}  # locks are dropped once nobody uses them

    run_with_registry(tmp_path, body)


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (BackendError("model endpoint failed (HTTP 500): boom"), "UNAVAILABLE", "HTTP 500"),
        (BackendError("rate limited", "RATE_LIMITED"), "RATE_LIMITED", "rate limited"),
        (RuntimeError("a bug"), "UNAVAILABLE", "internal error: RuntimeError"),
    ],
)
def test_a_failure_is_an_error_outcome_and_the_user_message_is_kept(
    tmp_path: Path, failure: BaseException, code: str, message: str
) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        backend.fail["doomed"] = failure
        run, _ = registry.start("x", KEY, "main", "doomed")
        await run.done
        assert run.status == "error" and run.error_code == code and message in (run.error or "")
        assert run.wait_result()["status"] == "error"
        history = registry.store.history(KEY, 10)
        assert history[0]["role"] == "user" and history[0]["content"][0]["text"] == "doomed"
        assert history[1]["stopReason"] == "error" and message in history[1]["errorMessage"]
        assert history[1]["content"][0]["text"] == "partial "  # what streamed before
        chat = [p for e, p in events if e == "chat"]
        assert chat[-1]["state"] == "error" and message in chat[-1]["errorMessage"]
        lifecycle = [p["data"] for e, p in events if e == "agent" and p["stream"] == "lifecycle"]
        assert lifecycle[-1]["phase"] == "error"
        # the session goes on: the next run works and gets no error in its context
        ok, _ = registry.start("y", KEY, "main", "fine")
        await ok.done
        assert ok.status == "ok" and backend.turns[-1].history == [("user", "doomed")]

    run_with_registry(tmp_path, body)


def test_a_run_past_its_time_bound_is_an_agent_timeout(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        backend.gate("slow")  # never opened
        run, _ = registry.start("t", KEY, "main", "slow")
        await run.done
        assert run.status == "error" and run.error_code == "AGENT_TIMEOUT"
        assert run.error == "agent run timed out after 0.2s"
        assert [m["role"] for m in registry.store.history(KEY, 10)] == ["user", "assistant"]

    run_with_registry(tmp_path, body, run_timeout_ms=200)


def test_abort_running_and_queued_runs(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        backend.gate("busy")
        running, _ = registry.start("r", KEY, "main", "busy")
        queued, _ = registry.start("q", KEY, "main", "waiting")
        await backend.entered["busy"].wait()
        assert [r.run_id for r in registry.session_runs(KEY)] == ["r", "q"]
        assert registry.abort(running) and registry.abort(queued)  # chat.abort's order
        assert not registry.abort(running)  # already aborting
        await asyncio.gather(running.done, queued.done)
        assert running.status == queued.status == "aborted"
        assert running.wait_result()["status"] == "timeout"
        assert running.wait_result()["stopReason"] == "rpc"
        assert not registry.abort(running)
        # both user messages are kept, each followed by its abort
        history = registry.store.history(KEY, 10)
        assert [(m["role"], m.get("stopReason")) for m in history] == [
            ("user", None),
            ("assistant", "aborted"),
            ("user", None),
            ("assistant", "aborted"),
        ]
        assert [m["content"][0]["text"] for m in history if m["role"] == "user"] == [
            "busy",
            "waiting",
        ]
        assert "waiting" not in [t.message for t in backend.turns]
        states = [p["state"] for e, p in events if e == "chat"]
        assert states.count("aborted") == 2

    run_with_registry(tmp_path, body)


def test_wait_for_a_run_that_starts_later_or_never(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        assert await registry.wait("ghost", 0.05) is None
        assert registry._appear == {}
        waiting = asyncio.ensure_future(registry.wait("later", 10))
        await asyncio.sleep(0)  # one loop turn (FIFO): the waiter registers first
        registry.start("later", KEY, "main", "hi")
        run = await waiting
        assert run is not None and run.status == "ok"
        gate = backend.gate("held")
        held, _ = registry.start("held", KEY, "main", "held")
        still = await registry.wait("held", 0.05)
        assert still is held and still.wait_result() == {"runId": "held", "status": "timeout"}
        gate.set()
        await held.done

    run_with_registry(tmp_path, body)


def test_abort_all_for_shutdown(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        backend.gate("a")
        backend.gate("b")
        ra, _ = registry.start("ra", KEY, "main", "a")
        rb, _ = registry.start("rb", "agent:main:x", "main", "b")
        assert registry.abort_all("gateway stopping") == 2
        await asyncio.gather(ra.done, rb.done)
        assert ra.stop_reason == rb.stop_reason == "gateway stopping"
        assert registry.active == {} and set(registry.finished) == {"ra", "rb"}

    run_with_registry(tmp_path, body)


def test_tool_calls_and_results_are_stored_in_order_between_the_messages(
    tmp_path: Path,
) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        run, _ = registry.start("t1", KEY, "main", "use tools")
        await run.done
        assert run.status == "ok"
        history = registry.store.history(KEY, 10)
        assert [m["role"] for m in history] == [
            "user",
            "assistant",
            "toolResult",
            "toolResult",
            "assistant",
        ]
        # one assistant message: what was said before the calls, and both calls
        assert history[1]["content"] == [
            {"type": "text", "text": "Checking. "},
            {
                "type": "toolCall",
                "id": "c1",
                "name": "system_run",
                "arguments": {"command": ["ls"]},
            },
            {"type": "toolCall", "id": "c2", "name": "test_echo", "arguments": {}},
        ]
        big, failed = history[2], history[3]
        assert (big["toolCallId"], big["toolName"], big["isError"]) == ("c1", "system_run", False)
        [block] = big["content"]
        assert block["type"] == "text"
        assert len(block["text"].encode()) <= MAX_STORED_BYTES
        assert block["text"].startswith('{"stdout": "éé')
        original = len(json.dumps({"stdout": "é" * 10_240}, ensure_ascii=False).encode())
        assert big["details"] == {"truncated": True, "originalSizeBytes": original}
        assert (failed["toolCallId"], failed["isError"]) == ("c2", True)
        assert json.loads(failed["content"][0]["text"]) == {
            "code": "UNAVAILABLE",
            "message": "gone",
        }
        assert "details" not in failed and failed["runId"] == "t1"
        assert history[4]["content"] == [{"type": "text", "text": "Done."}]
        # the next run's context is the conversation, not the steps
        second, _ = registry.start("t2", KEY, "main", "again")
        await second.done
        assert backend.turns[1].history == [("user", "use tools"), ("assistant", "Done.")]

    run_with_registry(tmp_path, body)


def test_an_aborted_run_keeps_the_calls_it_made(tmp_path: Path) -> None:
    async def body(registry: RunRegistry, backend: ScriptedBackend, events: list[Any]) -> None:
        entered = asyncio.Event()
        release = asyncio.Event()

        class WaitingOnNode(ScriptedBackend):
            async def reply(self, turn: Turn, tools: Any, sink: RunSink) -> str:
                sink.delta("Let me look. ")
                sink.tool_start("c1", "test_echo", {"text": "hi"})
                entered.set()
                await release.wait()
                return "never"

        registry.backend = WaitingOnNode()
        run, _ = registry.start("a1", KEY, "main", "look")
        await entered.wait()
        assert registry.abort(run)
        await run.done
        history = registry.store.history(KEY, 10)
        assert [(m["role"], m.get("stopReason")) for m in history] == [
            ("user", None),
            ("assistant", None),
            ("assistant", "aborted"),
        ]
        assert history[1]["content"] == [
            {"type": "text", "text": "Let me look. "},
            {"type": "toolCall", "id": "c1", "name": "test_echo", "arguments": {"text": "hi"}},
        ]
        assert history[2]["content"] == []  # the text is in the step, not said twice

    run_with_registry(tmp_path, body)
