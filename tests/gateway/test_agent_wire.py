"""``agent`` and ``agent.wait`` against a real gateway, offline backend (docs/agent.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_helpers import (
    NODE_CLIENT,
    TOKEN,
    AgentCall,
    answer_invoke,
    next_event,
    node,
    operator,
    start_profile,
)
from conftest import GatewayProcess, wait_until
from device_key import Key

pytestmark = pytest.mark.e2e


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start_profile(home, gateway_factory)


def test_agent_answers_twice_with_events_between(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    call = AgentCall(op, {"message": "hello agent", "idempotencyKey": "run-1"})
    accepted, final = call.accepted, call.final
    assert accepted["id"] == final["id"] == call.req_id
    assert accepted["ok"] is True
    payload = accepted["payload"]
    assert payload["runId"] == "run-1" and payload["status"] == "accepted"
    assert payload["sessionKey"] == "agent:main:main" and payload["agentId"] == "main"
    assert isinstance(payload["acceptedAt"], int)

    assert final["ok"] is True
    result = final["payload"]
    assert result["runId"] == "run-1" and result["status"] == "ok"
    assert result["summary"] == "completed"
    text = result["result"]["payloads"][0]["text"]
    assert "offline agent" in text and text.endswith("You said: hello agent")
    assert result["result"]["meta"]["agentMeta"]["provider"] == "offline"

    agent = call.stream("agent")
    assert all(e["runId"] == "run-1" and e["sessionKey"] == "agent:main:main" for e in agent)
    assert [e["seq"] for e in agent] == list(range(1, len(agent) + 1))
    assert agent[0]["stream"] == "lifecycle" and agent[0]["data"]["phase"] == "start"
    assert agent[-1]["stream"] == "lifecycle" and agent[-1]["data"]["phase"] == "end"
    assistant = call.stream("agent", "assistant")
    assert len(assistant) > 1 and assistant[-1]["data"]["text"] == text
    assert "".join(e["data"]["delta"] for e in assistant) == text
    chat = call.stream("chat")
    assert [c["state"] for c in chat][-1] == "final"
    assert chat[-1]["message"]["content"] == [{"type": "text", "text": text}]

    wait = op.call("agent.wait", {"runId": "run-1"})["payload"]
    assert wait["runId"] == "run-1" and wait["status"] == "ok"
    assert wait["endedAt"] >= wait["startedAt"]
    op.close()


def test_the_same_idempotency_key_is_the_same_run(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    first = AgentCall(op, {"message": "once", "idempotencyKey": "same"})
    again = AgentCall(op, {"message": "twice", "idempotencyKey": "same"})
    assert again.accepted["payload"] == first.accepted["payload"]
    assert again.final["payload"] == first.final["payload"]
    assert again.stream("agent") == []  # nothing ran again
    history = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"][0]["text"] == "once"
    op.close()


def test_agent_wait_for_an_unknown_run_times_out(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    res = op.call("agent.wait", {"runId": "nobody", "timeoutMs": 50})
    assert res["payload"] == {"runId": "nobody", "status": "timeout"}
    op.close()


def test_params_missing_keys_are_named_and_unknown_keys_ignored(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    missing = AgentCall(op, {"message": "hi"})
    assert len(missing.responses) == 1 and missing.final["ok"] is False
    assert missing.final["error"]["code"] == "INVALID_REQUEST"
    assert "idempotencyKey" in missing.final["error"]["message"]
    blank = AgentCall(op, {"message": "  ", "idempotencyKey": "b"})
    assert blank.final["error"]["message"] == "invalid agent params: message required"
    res = op.call("agent.wait", {})
    assert res["ok"] is False and "runId" in res["error"]["message"]
    lenient = AgentCall(
        op, {"message": "hi", "idempotencyKey": "u", "thinking": "low", "deliver": False}
    )
    assert lenient.final["ok"] is True
    op.close()


def test_agent_needs_write_and_only_operators_see_runs(gw: GatewayProcess) -> None:
    reader = operator(gw.port, scopes=["operator.read"])
    res = reader.call("agent", {"message": "hi", "idempotencyKey": "r"})
    assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN"
    _key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    AgentCall(op, {"message": "hi", "idempotencyKey": "seen"})
    # the reader (operator.read) saw the run's events; the node saw none of them
    assert next_event(reader, "chat")["runId"] == "seen"
    # every event of the run went out before the final answer; whatever the node was sent
    # arrives before the answer to its own next request
    req_id = nd.request("node.event", {"event": "ping", "payloadJSON": "{}"})
    seen = []
    while (frame := nd.recv(10))["type"] != "res" or frame["id"] != req_id:
        seen.append(frame.get("event"))
    assert "agent" not in seen and "chat" not in seen
    op.close()
    reader.close()
    nd.close()


def test_offline_backend_lists_and_runs_node_commands(gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["system.which", "test.echo"])
    op = operator(gw.port)
    listed = AgentCall(op, {"message": "/nodes", "idempotencyKey": str(uuid.uuid4())})
    text = listed.final["payload"]["result"]["payloads"][0]["text"]
    assert text == f"Connected nodes:\n- Build box ({key.device_id[:12]}): system.which, test.echo"

    req_id = op.request(
        "agent", {"message": '/node build box test.echo {"text": "hi"}', "idempotencyKey": "n1"}
    )
    # a name with a space must be quoted: unquoted, only its first word names the node
    assert op.response(req_id)["payload"]["status"] == "accepted"
    final = op.response(req_id)
    assert final["payload"]["result"]["payloads"][0]["text"] == (
        "No connected node matches 'build'. Try /nodes."
    )
    quoted = op.request("agent", {"message": '/node "build BOX" test.echo', "idempotencyKey": "q"})
    assert json.loads(answer_invoke(nd, key.device_id, {})["paramsJSON"]) == {}
    op.response(quoted)
    assert op.response(quoted)["payload"]["status"] == "ok"

    req_id = op.request(
        "agent",
        {
            "message": f'/node {key.device_id[:10]} test.echo {{"text": "hi"}}',
            "idempotencyKey": "n2",
        },
    )
    request = answer_invoke(nd, key.device_id, {"echo": "hi"})
    assert request["command"] == "test.echo" and json.loads(request["paramsJSON"]) == {"text": "hi"}
    assert request["sessionKey"] == "agent:main:main"
    op.response(req_id)
    final = op.response(req_id)
    assert final["payload"]["result"]["payloads"][0]["text"] == (
        'test.echo on Build box: {"echo": "hi"}'
    )

    failing = op.request(
        "agent", {"message": f"/node {key.device_id} system.which", "idempotencyKey": "n3"}
    )
    answer_invoke(nd, key.device_id, error={"code": "INVALID_REQUEST", "message": "bins required"})
    op.response(failing)
    final = op.response(failing)
    assert final["payload"]["result"]["payloads"][0]["text"] == (
        "system.which on Build box failed: UNAVAILABLE: INVALID_REQUEST: bins required"
    )
    op.close()
    nd.close()


def test_offline_tool_events_and_an_undeclared_command(gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    call = AgentCall(
        op, {"message": f"/node {key.device_id} system.run {{}}", "idempotencyKey": "x"}
    )
    text = call.final["payload"]["result"]["payloads"][0]["text"]
    assert text.startswith(
        "system.run on Build box failed: INVALID_REQUEST: node command not allowed"
    )
    tool = call.stream("agent", "tool")
    assert [t["data"]["phase"] for t in tool] == ["start", "result"]
    assert tool[0]["data"]["name"] == "system.run" and tool[1]["data"]["isError"] is True
    items = call.stream("agent", "item")
    assert [i["data"]["status"] for i in items] == ["running", "failed"]
    bad = AgentCall(op, {"message": f"/node {key.device_id} test.echo [1]", "idempotencyKey": "y"})
    assert (
        bad.final["payload"]["result"]["payloads"][0]["text"] == "The params must be a JSON object."
    )
    op.close()
    nd.close()


def test_offline_backend_names_a_node_awaiting_approval(gw: GatewayProcess) -> None:
    """A connected node whose surface is not approved is named as such, never invoked."""
    key = Key()
    nd, res = key.connect(
        gw.port,
        auth={"token": TOKEN},
        role="node",
        scopes=[],
        client=dict(NODE_CLIENT),
        commands=["test.echo"],
    )
    assert res["ok"] is True, res
    op = operator(gw.port)
    listed = AgentCall(op, {"message": "/nodes", "idempotencyKey": "l"})
    assert listed.final["payload"]["result"]["payloads"][0]["text"] == (
        f"Connected nodes:\n- Build box ({key.device_id[:12]}): awaiting operator approval"
    )
    call = AgentCall(op, {"message": '/node "Build box" test.echo', "idempotencyKey": "p"})
    text = call.final["payload"]["result"]["payloads"][0]["text"]
    assert text.startswith("test.echo on Build box failed: UNAVAILABLE: ")
    assert "awaiting operator approval" in text and "openclaw nodes approve" in text
    # nothing was sent to the node: its next frame is the answer to its own request
    req_id = nd.request("node.event", {"event": "ping", "payloadJSON": "{}"})
    seen = []
    while (frame := nd.recv(10))["type"] != "res" or frame["id"] != req_id:
        seen.append(frame.get("event"))
    assert "node.invoke.request" not in seen
    op.close()
    nd.close()


def test_a_node_leaving_mid_call_ends_the_call_not_the_run(gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    req_id = op.request(
        "agent", {"message": f"/node {key.device_id} test.echo", "idempotencyKey": "gone"}
    )
    next_event(nd, "node.invoke.request")
    nd.close()  # the node leaves with the call in flight
    assert op.response(req_id)["payload"]["status"] == "accepted"
    final = op.response(req_id)
    assert final["ok"] is True
    text = final["payload"]["result"]["payloads"][0]["text"]
    assert text.startswith("test.echo on Build box failed: UNAVAILABLE: DISCONNECTED")
    assert op.call("health")["ok"] is True
    op.close()


def test_the_caller_leaving_does_not_stop_its_run(gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    req_id = op.request(
        "agent", {"message": f"/node {key.device_id} test.echo", "idempotencyKey": "left"}
    )
    assert op.response(req_id)["payload"]["status"] == "accepted"
    request = next_event(nd, "node.invoke.request")
    op.close()  # the caller goes away while the run waits on the node
    other = operator(gw.port)
    wait_until(
        lambda: other.call("status")["payload"]["connections"]["operators"] == 1,
        what="the gateway to see the caller leave",
    )
    ack = nd.call(
        "node.invoke.result",
        {"id": request["id"], "nodeId": key.device_id, "ok": True, "payloadJSON": "1"},
    )
    assert ack["payload"] == {"ok": True}  # the run was still waiting for it
    assert other.call("agent.wait", {"runId": "left"})["payload"]["status"] == "ok"
    messages = other.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert messages[-1]["content"][0]["text"] == "test.echo on Build box: 1"
    other.close()
    nd.close()
