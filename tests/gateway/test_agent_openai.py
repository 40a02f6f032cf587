"""The OpenAI-compatible backend against a scripted chat-completions server (in process),
and ``gateway.chat.respond``, the channel contract, over both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from agent_helpers import AgentCall, answer_invoke, node, operator, start_profile
from conftest import GatewayProcess
from fakes.openai_server import (
    HANG,
    http_error,
    reply,
    serve,
    sse,
    text_chunks,
    tool_call,
    tool_call_chunks,
)

from openclaw_multi.gateway.agent.backend import BackendError, Turn
from openclaw_multi.gateway.agent.openai import OpenAIBackend, resolve_api_key
from openclaw_multi.gateway.agent.tools import NodeInfo, NodeTool
from openclaw_multi.gateway.chat import ChatReplyFailed, ChatService
from openclaw_multi.profiles.config import AgentOpenAI, AgentSection

KEY = "sk-test-" + "x" * 20


class FakeTools:
    """Two node tools; calls are recorded and answered from ``answers``."""

    def __init__(self) -> None:
        self.nodes = [NodeInfo("n" * 64, "Build box", ("system.which", "test.echo"))]
        self.tools = [
            NodeTool("system_which", "n" * 64, "Build box", "system.which"),
            NodeTool("test_echo", "n" * 64, "Build box", "test.echo"),
        ]
        self.calls: list[tuple[str, str, Any]] = []
        self.answers: list[tuple[bool, Any]] = [(True, {"bins": {"sh": "/bin/sh"}})]

    def tool(self, name: str) -> NodeTool | None:
        return next((t for t in self.tools if t.name == name), None)

    def find_node(self, ref: str) -> NodeInfo | None:
        return None

    async def call(self, node_id: str, command: str, params: Any) -> tuple[bool, Any]:
        self.calls.append((node_id, command, params))
        return self.answers.pop(0)


class Sink:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def delta(self, text: str) -> None:
        self.seen.append(("delta", text))

    def tool_calls(self, calls: list[Any]) -> None:
        self.seen.append(("calls", [c.call_id for c in calls]))

    def tool_start(self, call_id: str, name: str, args: Any) -> None:
        self.seen.append(("start", call_id, name, args))

    def tool_result(self, call_id: str, name: str, result: Any, *, is_error: bool) -> None:
        self.seen.append(("result", call_id, name, result, is_error))

    def usage(self, usage: dict[str, Any]) -> None:
        self.seen.append(("usage", usage["total_tokens"]))


def config(base_url: str, **overrides: Any) -> AgentOpenAI:
    raw = {"baseUrl": base_url, "model": "test-model", "apiKey": KEY, **overrides}
    return msgspec.convert(raw, AgentOpenAI)


TURN = Turn(
    run_id="r",
    session_key="agent:main:main",
    agent_id="main",
    message="which sh?",
    history=[("user", "hi"), ("assistant", "hello")],
    system_prompt="You run a gateway.",
)


def test_a_tool_call_then_the_final_answer() -> None:
    script = [tool_call("system_which", {"bins": ["sh"]}), reply("sh is /bin/sh")]
    tools, sink = FakeTools(), Sink()
    with serve(script) as fake:
        backend = OpenAIBackend(config(fake.base_url), env={})
        text = asyncio.run(backend.reply(TURN, tools, sink))  # type: ignore[arg-type]
    assert text == "sh is /bin/sh"
    assert tools.calls == [("n" * 64, "system.which", {"bins": ["sh"]})]
    first, second = fake.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["headers"]["content-type"] == "application/json"
    body = first["body"]
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "system", "content": "You run a gateway."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "which sh?"},
    ]
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["system_which", "test_echo"]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["bins"]
    assert "Build box" in body["tools"][0]["function"]["description"]
    # the second round carries the call and its result
    assert second["body"]["messages"][-2]["tool_calls"][0]["id"] == "call_1"
    assert second["body"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": json.dumps({"bins": {"sh": "/bin/sh"}}),
    }
    assert sink.seen == [
        ("calls", ["call_1"]),  # announced as one model message, before it runs
        ("start", "call_1", "system_which", {"bins": ["sh"]}),
        ("result", "call_1", "system_which", {"bins": {"sh": "/bin/sh"}}, False),
        ("usage", 18),
        ("delta", "sh is /bin/sh"),
    ]


def test_tool_failures_go_back_to_the_model() -> None:
    script = [
        tool_call("test_echo", {"text": "x"}, "c1"),
        tool_call("no_such_tool", {}, "c2"),
        reply("gave up"),
    ]
    tools, sink = FakeTools(), Sink()
    tools.answers = [(False, {"code": "UNAVAILABLE", "message": "TIMEOUT: node invoke timed out"})]
    with serve(script) as fake:
        backend = OpenAIBackend(config(fake.base_url), env={})
        assert asyncio.run(backend.reply(TURN, tools, sink)) == "gave up"  # type: ignore[arg-type]
    results = [json.loads(r["body"]["messages"][-1]["content"]) for r in fake.requests[1:]]
    assert results[0] == {
        "error": {"code": "UNAVAILABLE", "message": "TIMEOUT: node invoke timed out"}
    }
    assert results[1]["error"]["code"] == "UNKNOWN_TOOL"
    assert [s[4] for s in sink.seen if s[0] == "result"] == [True, True]


def test_a_streamed_answer_arrives_in_deltas_and_tool_calls_are_joined() -> None:
    script = [
        sse(tool_call_chunks("system_which", '{"bins": ["sh"]}')),
        sse(text_chunks("sh is ", "at /bin/sh")),
    ]
    tools, sink = FakeTools(), Sink()
    with serve(script) as fake:
        backend = OpenAIBackend(config(fake.base_url), env={})
        text = asyncio.run(backend.reply(TURN, tools, sink))  # type: ignore[arg-type]
    assert text == "sh is at /bin/sh"
    assert tools.calls == [("n" * 64, "system.which", {"bins": ["sh"]})]
    body = fake.requests[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert fake.requests[1]["body"]["messages"][-2]["tool_calls"] == [
        {
            "id": "call_s",
            "type": "function",
            "function": {"name": "system_which", "arguments": '{"bins": ["sh"]}'},
        }
    ]
    assert sink.seen[0] == ("calls", ["call_s"])
    assert sink.seen[3:] == [("delta", "sh is "), ("delta", "at /bin/sh"), ("usage", 8)]


def test_a_stream_cut_short_or_broken_is_handled() -> None:
    # no [DONE]: the text that came is the answer
    with serve([sse(text_chunks("partial", usage=False), done=False)]) as fake:
        backend = OpenAIBackend(config(fake.base_url), env={})
        assert asyncio.run(backend.reply(TURN, FakeTools(), Sink())) == "partial"  # type: ignore[arg-type]
    broken = sse([{"error": {"message": "overloaded"}}])
    with serve([broken]) as fake:
        backend = OpenAIBackend(config(fake.base_url), env={})
        with pytest.raises(BackendError, match="failed mid-stream: overloaded"):
            asyncio.run(backend.reply(TURN, FakeTools(), Sink()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("step", "code", "text"),
    [
        (http_error(500, f"upstream exploded for key {KEY}"), "UNAVAILABLE", "HTTP 500"),
        (http_error(429, "slow down"), "RATE_LIMITED", "rate limited (HTTP 429): slow down"),
        (HANG, "AGENT_TIMEOUT", "did not answer within 0.3s"),
    ],
)
def test_endpoint_failures_are_backend_errors_without_the_key(
    step: dict[str, Any], code: str, text: str
) -> None:
    with serve([step]) as fake:
        backend = OpenAIBackend(config(fake.base_url, timeoutMs=300), env={})
        with pytest.raises(BackendError) as caught:
            asyncio.run(backend.reply(TURN, FakeTools(), Sink()))  # type: ignore[arg-type]
    assert caught.value.code == code and text in caught.value.message
    assert KEY not in caught.value.message
    if step is not HANG:
        assert "***" in caught.value.message or code == "RATE_LIMITED"


def test_unreachable_endpoint_and_endless_tool_calls(tmp_path: Path) -> None:
    with serve([]) as fake:
        dead = fake.base_url
    backend = OpenAIBackend(config(dead), env={})
    with pytest.raises(BackendError, match="model endpoint unreachable: cannot connect"):
        asyncio.run(backend.reply(TURN, FakeTools(), Sink()))  # type: ignore[arg-type]
    script = [tool_call("test_echo", {}, f"c{i}") for i in range(3)]
    with serve(script) as fake:
        backend = OpenAIBackend(config(fake.base_url, maxToolRounds=2), env={})
        tools = FakeTools()
        tools.answers = [(True, {})] * 3
        with pytest.raises(BackendError, match="still asked for tools after 2 rounds"):
            asyncio.run(backend.reply(TURN, tools, Sink()))  # type: ignore[arg-type]
    assert len(fake.requests) == 3


def test_the_key_comes_from_config_or_the_named_variable() -> None:
    no_key = msgspec.convert({"apiKeyEnv": "MY_KEY"}, AgentOpenAI)
    assert resolve_api_key(no_key, {}) == (None, "none")
    assert resolve_api_key(no_key, {"MY_KEY": "k1"}) == ("k1", "$MY_KEY")
    with_key = msgspec.convert({"apiKey": "k2", "apiKeyEnv": "MY_KEY"}, AgentOpenAI)
    assert resolve_api_key(with_key, {"MY_KEY": "k1"}) == ("k2", "agent.openai.apiKey")
    with serve([reply("ok")]) as fake:
        backend = OpenAIBackend(config(fake.base_url, apiKey=None, apiKeyEnv=None), env={})
        asyncio.run(backend.reply(TURN, FakeTools(), Sink()))  # type: ignore[arg-type]
    assert "authorization" not in fake.requests[0]["headers"]


# -- gateway.chat.respond, the channel contract ---------------------------------------------


def chat_service(
    tmp_path: Path, agent: dict[str, Any] | None = None
) -> tuple[ChatService, list[Any]]:
    events: list[Any] = []
    section = msgspec.convert(agent or {}, AgentSection)
    nodes = SimpleNamespace(connected={}, pairing=SimpleNamespace(approved=lambda _: None))
    gateway = SimpleNamespace(
        settings=SimpleNamespace(
            config=SimpleNamespace(agent=section), paths=SimpleNamespace(state_dir=tmp_path)
        ),
        nodes=nodes,
        broadcast=lambda event, payload, scope=None: events.append((event, payload, scope)),
    )
    return ChatService(gateway), events  # type: ignore[arg-type]


def test_respond_stores_both_messages_and_returns_the_reply(tmp_path: Path) -> None:
    async def main() -> None:
        service, events = chat_service(tmp_path)
        answer = await service.respond("telegram:42", "/nodes", channel="telegram", sender="ann")
        assert answer == "No nodes are connected."
        history = service.store.history("agent:main:telegram:42", 10)
        assert [(m["role"], m["channel"]) for m in history] == [
            ("user", "telegram"),
            ("assistant", "telegram"),
        ]
        assert history[0]["sender"] == "ann"
        assert {e[0] for e in events} == {"agent", "chat"}
        assert {e[2] for e in events} == {"operator.read"}
        with pytest.raises(ValueError, match="blank"):
            await service.respond("telegram:42", "  ", channel="telegram")
        service.close()

    asyncio.run(main())


def test_respond_failure_raises_and_keeps_the_message(tmp_path: Path) -> None:
    async def main(base_url: str) -> None:
        agent = {"backend": "openai", "openai": {"baseUrl": base_url, "apiKey": KEY}}
        service, _ = chat_service(tmp_path, agent)
        with pytest.raises(ChatReplyFailed) as caught:
            await service.respond("telegram:7", "hello?", channel="telegram", sender="bob")
        assert caught.value.code == "UNAVAILABLE" and "HTTP 500" in caught.value.message
        assert KEY not in str(caught.value)
        history = service.store.history("agent:main:telegram:7", 10)
        assert history[0]["content"][0]["text"] == "hello?" and history[0]["sender"] == "bob"
        assert history[1]["stopReason"] == "error"
        # a caller that stops waiting does not stop the run: its reply is still stored
        waiting = asyncio.ensure_future(service.respond("telegram:7", "again", channel="telegram"))
        await asyncio.sleep(0)  # one loop turn (FIFO): the task's first step starts the run
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        run = next(iter(service.runs.active.values()))
        await run.done
        assert run.status == "ok" and run.text == "second time lucky"
        # an aborted run is ChatReplyFailed ABORTED
        aborted = asyncio.ensure_future(service.respond("telegram:7", "third", channel="telegram"))
        await asyncio.sleep(0)
        for active in service.runs.session_runs("agent:main:telegram:7"):
            service.runs.abort(active)
        with pytest.raises(ChatReplyFailed) as stopped:
            await aborted
        assert stopped.value.code == "ABORTED"
        service.close()

    with serve([http_error(500, "down"), reply("second time lucky")]) as fake:
        asyncio.run(main(fake.base_url))


# -- through a real gateway, with a real node connection -----------------------------------


@pytest.mark.e2e
def test_gateway_offers_node_commands_as_tools(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    script = [tool_call("test_echo", {"text": "hi"}), reply("the node said hi")]
    with serve(script) as fake:
        agent = {"backend": "openai", "openai": {"baseUrl": fake.base_url, "apiKeyEnv": "OC_KEY"}}
        gw = start_profile(home, gateway_factory, {"agent": agent}, env={"OC_KEY": KEY})
        key, nd = node(gw.port, ["system.which", "test.echo"])
        op = operator(gw.port)
        req_id = op.request("agent", {"message": "echo hi", "idempotencyKey": "o1"})
        request = answer_invoke(nd, key.device_id, {"text": "hi"})
        assert request["command"] == "test.echo" and json.loads(request["paramsJSON"]) == {
            "text": "hi"
        }
        assert op.response(req_id)["payload"]["status"] == "accepted"
        final = op.response(req_id)
        op.close()
        nd.close()
    assert final["ok"] is True
    assert final["payload"]["result"]["payloads"] == [{"text": "the node said hi"}]
    assert final["payload"]["result"]["meta"]["agentMeta"]["model"] == "gpt-4o-mini"
    first = fake.requests[0]
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert [t["function"]["name"] for t in first["body"]["tools"]] == ["system_which", "test_echo"]
    assert first["body"]["messages"][-1] == {"role": "user", "content": "echo hi"}
    assert json.loads(fake.requests[1]["body"]["messages"][-1]["content"]) == {"text": "hi"}
    assert "model gpt-4o-mini" in gw.output() and "(key: $OC_KEY)" in gw.output()
    assert KEY not in gw.output()


@pytest.mark.e2e
def test_gateway_reports_endpoint_failures_and_keeps_messages(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    script = [http_error(500, f"boom {KEY}"), http_error(429, "slow down"), HANG]
    with serve(script) as fake:
        openai = {"baseUrl": fake.base_url, "apiKey": KEY, "timeoutMs": 500}
        gw = start_profile(
            home, gateway_factory, {"agent": {"backend": "openai", "openai": openai}}
        )
        op = operator(gw.port)
        outcomes = [
            AgentCall(op, {"message": f"m{i}", "idempotencyKey": f"e{i}"}) for i in range(3)
        ]
        codes = [call.final["error"]["code"] for call in outcomes]
        assert codes == ["UNAVAILABLE", "RATE_LIMITED", "AGENT_TIMEOUT"]
        failed = outcomes[0].final
        assert failed["ok"] is False and failed["payload"]["status"] == "error"
        assert failed["payload"]["runId"] == "e0"
        assert failed["payload"]["summary"] == failed["error"]["message"]
        assert "HTTP 500" in failed["error"]["message"] and KEY not in json.dumps(failed)
        assert outcomes[0].stream("chat")[-1]["state"] == "error"
        assert op.call("agent.wait", {"runId": "e1"})["payload"]["status"] == "error"
        history = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
        assert [m["content"][0]["text"] for m in history if m["role"] == "user"] == [
            "m0",
            "m1",
            "m2",
        ]
        assert [m.get("stopReason") for m in history if m["role"] == "assistant"] == ["error"] * 3
        assert op.call("health")["ok"] is True  # the gateway is fine
        op.close()
    assert KEY not in gw.output()


@pytest.mark.e2e
def test_gateway_streams_a_streamed_answer_to_operators(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    with serve([sse(text_chunks("Hel", "lo ", "there"))]) as fake:
        agent = {"backend": "openai", "openai": {"baseUrl": fake.base_url}}
        gw = start_profile(home, gateway_factory, {"agent": agent})
        op = operator(gw.port)
        call = AgentCall(op, {"message": "hi", "idempotencyKey": "s1"})
        op.close()
    assert [e["data"]["delta"] for e in call.stream("agent", "assistant")] == [
        "Hel",
        "lo ",
        "there",
    ]
    assert [e["data"] for e in call.stream("agent", "usage")] == [
        {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    ]
    chat = call.stream("chat")
    assert [c.get("deltaText") for c in chat] == ["Hel", "Hello ", "Hello there", None]
    assert call.final["payload"]["result"]["payloads"] == [{"text": "Hello there"}]


@pytest.mark.e2e
def test_openai_tool_calls_are_in_the_history_after_a_restart(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    script = [tool_call("test_echo", {"text": "hi"}, call_id="call_7"), reply("it said hi")]
    with serve(script) as fake:
        agent = {"backend": "openai", "openai": {"baseUrl": fake.base_url, "apiKeyEnv": "OC_KEY"}}
        config = {"agent": agent}
        gw = start_profile(home, gateway_factory, config, env={"OC_KEY": KEY})
        key, nd = node(gw.port, ["test.echo"])
        op = operator(gw.port)
        req_id = op.request("agent", {"message": "echo hi", "idempotencyKey": "h1"})
        answer_invoke(nd, key.device_id, {"text": "hi"})
        assert op.response(req_id)["payload"]["status"] == "accepted"
        assert op.response(req_id)["ok"] is True
        op.close()
        nd.close()
        assert gw.stop() == 0

        gw = start_profile(home, gateway_factory, config, env={"OC_KEY": KEY})
        op = operator(gw.port)
        messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
        op.close()
    assert [m["role"] for m in messages] == ["user", "assistant", "toolResult", "assistant"]
    assert messages[1]["content"] == [
        {"type": "toolCall", "id": "call_7", "name": "test_echo", "arguments": {"text": "hi"}}
    ]
    assert messages[2]["toolCallId"] == "call_7" and messages[2]["toolName"] == "test_echo"
    assert messages[2]["isError"] is False
    assert json.loads(messages[2]["content"][0]["text"]) == {"text": "hi"}
    assert messages[3]["content"] == [{"type": "text", "text": "it said hi"}]
