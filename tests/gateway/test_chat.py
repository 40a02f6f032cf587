"""``chat.send``/``chat.history``/``chat.abort`` against a real gateway (docs/agent.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import answer_invoke, next_event, node, operator, start_profile
from conftest import GatewayProcess
from wire import Wire

pytestmark = pytest.mark.e2e


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start_profile(home, gateway_factory)


def chat_events(wire: Wire, run_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ``chat`` events of one run, through its terminal one."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        payload = next_event(wire, "chat", max(0.05, deadline - time.monotonic()))
        if payload["runId"] == run_id:
            seen.append(payload)
            if payload["state"] != "delta":
                return seen


def test_send_streams_chat_events_and_history_keeps_both(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    res = op.call(
        "chat.send", {"sessionKey": "webchat:abc", "message": "hi", "idempotencyKey": "c1"}
    )
    assert res["ok"] is True and res["payload"] == {"runId": "c1", "status": "started"}
    events = chat_events(op, "c1")
    assert [e["state"] for e in events[:-1]] == ["delta"] * (len(events) - 1)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    final = events[-1]
    assert final["state"] == "final" and final["sessionKey"] == "agent:main:webchat:abc"
    text = final["message"]["content"][0]["text"]
    assert events[-2]["deltaText"] == text and text.endswith("You said: hi")

    again = op.call(
        "chat.send", {"sessionKey": "webchat:abc", "message": "x", "idempotencyKey": "c1"}
    )
    assert again["payload"] == {"runId": "c1", "status": "ok"}

    history = op.call("chat.history", {"sessionKey": "agent:main:webchat:abc"})["payload"]
    assert history["sessionKey"] == "agent:main:webchat:abc" and history["sessionId"]
    assert [(m["role"], m["content"][0]["text"]) for m in history["messages"]] == [
        ("user", "hi"),
        ("assistant", text),
    ]
    assert history["hasMore"] is False and history["inFlight"] == []
    limited = op.call("chat.history", {"sessionKey": "webchat:abc", "limit": 1})["payload"]
    assert limited["hasMore"] is True and limited["messages"][0]["role"] == "assistant"
    empty = op.call("chat.history", {"sessionKey": "never"})["payload"]
    assert empty["messages"] == [] and empty["sessionId"] is None
    op.close()


def test_params_are_checked(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    res = op.call("chat.send", {"message": "hi", "idempotencyKey": "k"})
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
    assert "sessionKey" in res["error"]["message"]
    blank = op.call("chat.send", {"sessionKey": "main", "message": " ", "idempotencyKey": "k"})
    assert blank["error"]["message"] == "invalid chat.send params: message required"
    assert op.call("chat.history", {})["error"]["code"] == "INVALID_REQUEST"
    assert op.call("chat.abort", {"runId": "x"})["error"]["code"] == "INVALID_REQUEST"
    extra = op.call("chat.history", {"sessionKey": "main", "includeTools": True})
    assert extra["ok"] is True
    reader = operator(gw.port, scopes=["operator.read"])
    assert reader.call("chat.history", {"sessionKey": "main"})["ok"] is True
    refused = reader.call(
        "chat.send", {"sessionKey": "main", "message": "x", "idempotencyKey": "r"}
    )
    assert refused["error"]["code"] == "FORBIDDEN"
    assert reader.call("chat.abort", {"sessionKey": "main"})["error"]["code"] == "FORBIDDEN"
    reader.close()
    op.close()


def test_abort_mid_run_keeps_the_message_and_cancels_the_node_call(gw: GatewayProcess) -> None:
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    message = f"/node {key.device_id} test.echo {{}}"
    op.call("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": "slow"})
    request = next_event(nd, "node.invoke.request")  # the run now waits on the node
    other = op.call("chat.abort", {"sessionKey": "elsewhere", "runId": "slow"})
    assert other["error"]["message"] == "runId does not match sessionKey"
    history = op.call("chat.history", {"sessionKey": "main"})["payload"]
    assert history["inFlight"] == ["slow"]
    res = op.call("chat.abort", {"sessionKey": "main"})
    assert res["payload"] == {"ok": True, "aborted": True, "runIds": ["slow"]}
    terminal = chat_events(op, "slow")[-1]
    assert terminal["state"] == "aborted" and terminal["stopReason"] == "rpc"
    cancel = next_event(nd, "node.invoke.cancel")
    assert cancel["invokeId"] == request["id"]
    messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [(m["role"], m.get("stopReason")) for m in messages] == [
        ("user", None),
        ("assistant", None),  # its toolCall, whose result never came
        ("assistant", "aborted"),
    ]
    assert messages[0]["content"][0]["text"] == message
    assert messages[1]["content"] == [
        {
            "type": "toolCall",
            "id": "call_test.echo",
            "name": "test.echo",
            "arguments": {"nodeId": key.device_id, "params": {}},
        }
    ]
    assert op.call("chat.abort", {"sessionKey": "main"})["payload"] == {
        "ok": True,
        "aborted": False,
        "runIds": [],
    }
    assert op.call("agent.wait", {"runId": "slow"})["payload"]["status"] == "timeout"
    op.close()
    nd.close()


def test_history_survives_a_gateway_restart(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start_profile(home, gateway_factory)
    op = operator(gw.port)
    op.call("chat.send", {"sessionKey": "main", "message": "remember me", "idempotencyKey": "m1"})
    chat_events(op, "m1")
    op.close()
    assert gw.stop() == 0
    gw2 = start_profile(home, gateway_factory)
    op = operator(gw2.port)
    messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"][0]["text"] == "remember me"
    op.close()


def test_a_run_in_flight_at_shutdown_is_stored_as_aborted(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start_profile(home, gateway_factory)
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    message = f"/node {key.device_id} test.echo {{}}"
    op.call("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": "cut"})
    next_event(nd, "node.invoke.request")
    assert gw.stop() == 0
    op.close()
    nd.close()
    gw2 = start_profile(home, gateway_factory)
    op = operator(gw2.port)
    messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [(m["role"], m.get("stopReason")) for m in messages] == [
        ("user", None),
        ("assistant", None),  # its toolCall, whose result never came
        ("assistant", "aborted"),
    ]
    assert messages[2]["errorMessage"] == "aborted (gateway stopping)"
    op.close()


def test_a_corrupt_store_is_moved_aside_and_the_gateway_runs(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    state = home / ".openclaw-agent"
    state.mkdir()
    (state / "sessions.sqlite3").write_bytes(b"garbage" * 1000)
    gw = start_profile(home, gateway_factory)
    op = operator(gw.port)
    op.call("chat.send", {"sessionKey": "main", "message": "still works", "idempotencyKey": "s"})
    assert chat_events(op, "s")[-1]["state"] == "final"
    op.close()
    assert len(list(state.glob("sessions.sqlite3.corrupt-*"))) == 1
    assert "moved aside" in gw.output()


def test_a_stopping_gateway_settles_aborted_runs_and_closes_the_store(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """SIGTERM with a run in flight: the run ends aborted with its messages stored, the
    session store is closed cleanly (no -wal file left), and the exit is 0, promptly."""
    gw = start_profile(home, gateway_factory)
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    message = f"/node {key.device_id} test.echo {{}}"
    op.call("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": "late"})
    next_event(nd, "node.invoke.request")  # the run now waits on the node
    wal = gw.state_dir / "sessions.sqlite3-wal"
    assert wal.exists()  # the store is open, its writes in the WAL
    started = time.monotonic()
    assert gw.stop() == 0
    assert time.monotonic() - started < 5.0
    op.close()
    nd.close()
    assert not wal.exists()
    assert "session store closed" in gw.output()

    gw = start_profile(home, gateway_factory)
    op = operator(gw.port)
    messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [(m["role"], m.get("stopReason")) for m in messages] == [
        ("user", None),
        ("assistant", None),  # its toolCall, whose result never came
        ("assistant", "aborted"),
    ]
    op.close()


def test_tool_calls_are_in_the_history_after_a_restart(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """The offline backend's node command: user, assistant with its toolCall, the toolResult,
    the final text, in that order, read back by a new gateway process."""
    gw = start_profile(home, gateway_factory)
    key, nd = node(gw.port, ["test.echo"])
    op = operator(gw.port)
    message = f'/node {key.device_id} test.echo {{"text": "hi"}}'
    op.call("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": "t1"})
    answer_invoke(nd, key.device_id, {"echo": "hi"})
    final = chat_events(op, "t1")[-1]
    assert final["state"] == "final"
    op.close()
    nd.close()
    assert gw.stop() == 0

    gw = start_profile(home, gateway_factory)
    op = operator(gw.port)
    messages = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    op.close()
    assert [m["role"] for m in messages] == ["user", "assistant", "toolResult", "assistant"]
    assert messages[1]["content"] == [
        {
            "type": "toolCall",
            "id": "call_test.echo",
            "name": "test.echo",
            "arguments": {"nodeId": key.device_id, "params": {"text": "hi"}},
        }
    ]
    result = messages[2]
    assert (result["toolCallId"], result["toolName"], result["isError"]) == (
        "call_test.echo",
        "test.echo",
        False,
    )
    assert json.loads(result["content"][0]["text"]) == {"echo": "hi"}
    assert messages[3]["content"] == final["message"]["content"]
    assert {m["runId"] for m in messages} == {"t1"}
