"""Nodes against a real gateway process (docs/protocol.md, Nodes): catalog and node.invoke.

Nodes here are device-signed ``role:"node"`` connects (the device paired on the spot:
loopback, local auto-approval on; its command surface then approved by an operator with
``node.pair.approve``, as node_pairing.py requires); the test plays the node host's side of
the invoke round trip. Approval itself: test_node_pairing.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import next_event, operator, start_profile
from agent_helpers import node as connect_node
from conftest import GatewayProcess
from device_key import Key
from wire import Wire

pytestmark = pytest.mark.e2e
COMMANDS = ["test.echo", "system.which"]


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start_profile(home, gateway_factory, profile="nodes")


def node(
    port: int, key: Key | None = None, commands: list[str] = COMMANDS, *, approve: bool = True
) -> tuple[Key, Wire]:
    """A node connection (declaring permissions too); ``approve``: an operator approves its
    declared surface."""
    return connect_node(
        port, commands, key=key, approve=approve, permissions={"accessibility": False}
    )


def invoke(wire: Wire, node_id: str, command: str, params: Any = None, **extra: Any) -> str:
    call = {"nodeId": node_id, "command": command, "idempotencyKey": str(uuid.uuid4()), **extra}
    if params is not None:
        call["params"] = params
    return wire.request("node.invoke", call)


def test_list_describe_and_rename(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    assert op.call("node.list")["payload"]["nodes"] == []
    key, nd = node(gw.port)

    nodes = op.call("node.list")["payload"]["nodes"]
    assert len(nodes) == 1
    entry = nodes[0]
    assert entry["nodeId"] == key.device_id
    assert entry["displayName"] == "Build box" and entry["platform"] == "linux"
    assert entry["version"] == "2026.9.6" and entry["deviceFamily"] is None
    assert entry["clientId"] == "node-host" and entry["clientMode"] == "node"
    assert entry["caps"] == ["system", "test"] and entry["commands"] == sorted(COMMANDS)
    assert entry["approvalState"] == "approved" and entry["permissions"] == {"accessibility": False}
    assert entry["paired"] is True and entry["connected"] is True

    described = op.call("node.describe", {"nodeId": key.device_id})["payload"]
    assert {k: v for k, v in described.items() if k != "ts"} == entry
    unknown = op.call("node.describe", {"nodeId": "nope"})
    assert unknown["ok"] is False and unknown["error"]["code"] == "INVALID_REQUEST"
    assert unknown["error"]["message"] == "unknown nodeId"

    renamed = op.call("node.rename", {"nodeId": key.device_id, "displayName": " Renamed "})
    assert renamed["payload"] == {"nodeId": key.device_id, "displayName": "Renamed"}
    assert op.call("node.describe", {"nodeId": key.device_id})["payload"]["displayName"] == (
        "Renamed"
    )

    nd.close()
    op.call("health")  # a round trip after the close; the socket's close may still be landing
    deadline = time.monotonic() + 5
    while op.call("node.list")["payload"]["nodes"][0]["connected"]:
        assert time.monotonic() < deadline, "node still listed as connected"
    offline = op.call("node.list")["payload"]["nodes"][0]
    # offline: the approved surface, when it was last here
    assert offline["paired"] is True and offline["commands"] == sorted(COMMANDS)
    assert offline["lastDisconnectedAtMs"] >= offline["lastConnectedAtMs"]
    op.close()


def test_invoke_round_trip(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    req = invoke(op, key.device_id, "test.echo", {"text": "hi"}, timeoutMs=5000)
    request = next_event(nd, "node.invoke.request")
    assert request["nodeId"] == key.device_id and request["command"] == "test.echo"
    assert json.loads(request["paramsJSON"]) == {"text": "hi"}
    assert request["timeoutMs"] == 5000 and request["idempotencyKey"]
    answer = {"text": "hi back"}
    ack = nd.call(
        "node.invoke.result",
        {
            "id": request["id"],
            "nodeId": key.device_id,
            "ok": True,
            "payloadJSON": json.dumps(answer),
        },
    )
    assert ack["ok"] is True and ack["payload"] == {"ok": True}
    res = op.response(req)
    assert res["ok"] is True, res
    assert res["payload"] == {
        "ok": True,
        "nodeId": key.device_id,
        "command": "test.echo",
        "payload": answer,
        "payloadJSON": json.dumps(answer),
    }
    # the same id again is late: acknowledged and ignored
    late = nd.call("node.invoke.result", {"id": request["id"], "nodeId": key.device_id, "ok": True})
    assert late["payload"] == {"ok": True, "ignored": True}
    # what the real node host publishes after connecting is acknowledged
    skills = nd.call("node.skills.update", {"skills": []})
    assert skills["payload"] == {"nodeId": key.device_id, "skills": []}
    tools = nd.call("node.pluginTools.update", {"tools": []})
    assert tools["payload"] == {"nodeId": key.device_id, "tools": []}
    inventory = {
        "protocolFeatures": ["node-worker-supervisor-v6"],
        "workerHost": {"enabled": False},
    }
    assert nd.call("node.runnerInventory.update", inventory)["payload"] == {"nodeId": key.device_id}
    bad = nd.call("node.runnerInventory.update", {"workerHost": {}})
    assert bad["ok"] is False and bad["error"]["code"] == "INVALID_REQUEST"
    # a node's own events are accepted
    assert nd.call("node.event", {"event": "test.ping", "payloadJSON": "{}"})["payload"] == {
        "ok": True
    }
    op.close()
    nd.close()


def test_node_error_is_unavailable_with_details(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    req = invoke(op, key.device_id, "system.which", {"bins": ["sh"]})
    request = next_event(nd, "node.invoke.request")
    error = {"code": "INVALID_REQUEST", "message": "bins required"}
    nd.call(
        "node.invoke.result",
        {"id": request["id"], "nodeId": key.device_id, "ok": False, "error": error},
    )
    res = op.response(req)
    assert res["ok"] is False
    assert res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == "INVALID_REQUEST: bins required"
    assert res["error"]["details"] == {"nodeError": error, "nodeCommandDispatched": True}
    op.close()
    nd.close()


def test_timeout_cancels_on_the_node(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    req = invoke(op, key.device_id, "test.echo", {}, timeoutMs=300)
    request = next_event(nd, "node.invoke.request")
    res = op.response(req)
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == "TIMEOUT: node invoke timed out"
    assert res["error"]["details"]["nodeCommandDispatched"] is True
    assert res["error"]["details"]["nodeError"]["code"] == "TIMEOUT"
    cancel = next_event(nd, "node.invoke.cancel")
    assert cancel == {"invokeId": request["id"], "nodeId": key.device_id}
    op.close()
    nd.close()


def test_node_disconnect_mid_call(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    req = invoke(op, key.device_id, "test.echo", {})
    next_event(nd, "node.invoke.request")
    nd.close()
    res = op.response(req)
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == "DISCONNECTED: node disconnected (test.echo)"
    assert res["error"]["details"]["nodeCommandDispatched"] is True
    op.close()


def test_caller_disconnect_cancels_on_the_node(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    invoke(op, key.device_id, "test.echo", {})
    request = next_event(nd, "node.invoke.request")
    op.close()
    cancel = next_event(nd, "node.invoke.cancel")
    assert cancel == {"invokeId": request["id"], "nodeId": key.device_id}
    nd.close()


def test_refusals(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)

    res = op.response(invoke(op, key.device_id, "system.run", {"command": ["true"]}))
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == (
        'node command not allowed: the node (platform: linux) does not support "system.run"'
    )

    res = op.response(invoke(op, "no-such-node", "test.echo"))
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["retryable"] is True
    assert res["error"]["message"] == "node not connected"
    assert res["error"]["details"]["nodeCommandDispatched"] is False

    missing = op.call("node.invoke", {"nodeId": key.device_id, "command": "test.echo"})
    assert missing["ok"] is False and missing["error"]["code"] == "INVALID_REQUEST"

    reader = operator(gw.port, scopes=["operator.read"])
    res = reader.response(invoke(reader, key.device_id, "test.echo"))
    assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN"
    assert reader.call("node.list")["ok"] is True
    res = reader.call("node.rename", {"nodeId": key.device_id, "displayName": "x"})
    assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN"

    # node-only methods refuse operators, as the reference's role check does
    res = op.call("node.invoke.result", {"id": "x", "nodeId": key.device_id, "ok": True})
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == "unauthorized role: operator"
    # and a node cannot answer for another node
    res = nd.call("node.invoke.result", {"id": "x", "nodeId": "other", "ok": True})
    assert res["ok"] is False and res["error"]["message"] == "nodeId mismatch"
    reader.close()
    op.close()
    nd.close()
