"""Node command approval against a real gateway process (docs/protocol.md, Nodes).

A node's declared surface waits for an operator (``node.pair.*``) even when its device was
paired silently on loopback, as in the reference; until approved its commands are refused
UNAVAILABLE (retryable) and are never sent to it. Approvals persist across a restart.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import NODE_CLIENT, TOKEN, approve_pending, next_event, operator
from conftest import GatewayProcess, free_port, wait_until
from device_key import Key, assert_refused
from test_gateway_nodes import COMMANDS, invoke, node
from wire import Wire

pytestmark = pytest.mark.e2e


def start(
    home: Path,
    factory: Callable[..., GatewayProcess],
    *,
    auto_approve: bool = True,
    port: int | None = None,
) -> GatewayProcess:
    state = home / ".openclaw-np"
    state.mkdir(exist_ok=True)
    config = {"auth": {"mode": "token"}, "nodes": {"pairing": {"autoApproveLocal": auto_approve}}}
    (state / "openclaw.json").write_text(json.dumps({"gateway": config}))
    env = {"OPENCLAW_PROFILE": "np", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return factory("np", env_extra=env, port=port or free_port())


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return start(home, gateway_factory)


def watcher(port: int) -> Wire:
    """An operator that only listens (``Wire.call`` skips the events it passes over)."""
    return operator(port)


def pending_of(op: Wire, node_id: str) -> list[dict[str, Any]]:
    return [p for p in op.call("node.pair.list")["payload"]["pending"] if p["nodeId"] == node_id]


def describe(op: Wire, node_id: str) -> dict[str, Any]:
    res = op.call("node.describe", {"nodeId": node_id})
    assert res["ok"] is True, res
    return res["payload"]  # type: ignore[no-any-return]


def answer(nd: Wire, node_id: str, text: str = "ok") -> None:
    request = next_event(nd, "node.invoke.request")
    payload = {"id": request["id"], "nodeId": node_id, "ok": True, "payloadJSON": '"' + text + '"'}
    assert nd.call("node.invoke.result", payload)["ok"] is True


def test_new_node_waits_for_approval_then_serves(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    events = watcher(gw.port)
    reader = operator(gw.port, scopes=["operator.read"])
    key, nd = node(gw.port, approve=False)

    requested = next_event(op, "node.pair.requested")
    assert requested["nodeId"] == key.device_id
    assert requested["clientId"] == "node-host" and requested["clientMode"] == "node"
    assert requested["displayName"] == "Build box" and requested["platform"] == "linux"
    assert requested["version"] == "2026.9.6"
    assert requested["caps"] == ["system", "test"] and requested["commands"] == sorted(COMMANDS)
    assert requested["permissions"] == {"accessibility": False}
    assert requested["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
    assert requested["silent"] is True  # its device was approved silently (loopback)
    assert isinstance(requested["ts"], int) and "devicePublicKey" not in requested
    request_id = requested["requestId"]

    entry = describe(op, key.device_id)
    assert entry["approvalState"] == "pending-approval" and entry["commands"] == []
    assert entry["caps"] == [] and entry["connected"] is True and entry["paired"] is True
    assert entry["pendingRequestId"] == request_id
    assert entry["pendingDeclaredCommands"] == sorted(COMMANDS)
    # who cannot approve does not see the pending surface
    seen = reader.call("node.list")["payload"]["nodes"][0]
    assert seen["approvalState"] == "pending-approval" and "pendingRequestId" not in seen

    res = op.response(invoke(op, key.device_id, "test.echo", {}))
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["retryable"] is True
    assert "awaiting operator approval" in res["error"]["message"]
    assert request_id in res["error"]["message"]
    assert res["error"]["details"] == {
        "code": "NODE_APPROVAL_PENDING",
        "requestId": request_id,
        "nodeCommandDispatched": False,
    }
    # an undeclared command is still "not allowed", pending or not
    res = op.response(invoke(op, key.device_id, "system.run", {}))
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"

    approved = op.call("node.pair.approve", {"requestId": request_id})
    assert approved["ok"] is True, approved
    record = approved["payload"]["node"]
    assert approved["payload"]["requestId"] == request_id
    assert record["nodeId"] == key.device_id and record["commands"] == sorted(COMMANDS)
    assert record["approvedAtMs"] >= record["createdAtMs"] and "devicePublicKey" not in record
    for wire in (events, nd):  # operators and the node itself hear the outcome
        resolved = next_event(wire, "node.pair.resolved")
        assert resolved["requestId"] == request_id and resolved["nodeId"] == key.device_id
        assert resolved["decision"] == "approved" and isinstance(resolved["ts"], int)

    entry = describe(op, key.device_id)
    assert entry["approvalState"] == "approved" and entry["commands"] == sorted(COMMANDS)
    assert "pendingRequestId" not in entry
    req = invoke(op, key.device_id, "test.echo", {})
    answer(nd, key.device_id, "served")
    assert op.response(req)["payload"]["payload"] == "served"

    again = op.call("node.pair.approve", {"requestId": request_id})
    assert again["ok"] is False and again["error"]["message"] == "unknown requestId"
    for wire in (op, events, reader, nd):
        wire.close()


def test_approval_needs_the_scopes_the_surface_asks_for(gw: GatewayProcess) -> None:
    pairing_only = operator(gw.port, scopes=["operator.pairing"])
    writer = operator(gw.port, scopes=["operator.pairing", "operator.write"])
    key, nd = node(gw.port, approve=False)  # declares system.which: takes admin
    (request,) = pending_of(pairing_only, key.device_id)
    for wire, missing in ((pairing_only, "operator.admin"), (writer, "operator.admin")):
        res = wire.call("node.pair.approve", {"requestId": request["requestId"]})
        assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN"
        assert res["error"]["message"] == f"missing scope: {missing}"
        assert res["error"]["details"] == {
            "code": "MISSING_SCOPE",
            "missingScope": missing,
            "requiredScopes": ["operator.pairing", missing],
        }
    assert pending_of(pairing_only, key.device_id) == [request]  # still there
    nd.close()

    key2, nd2 = node(gw.port, commands=["test.echo"], approve=False)
    (request2,) = pending_of(writer, key2.device_id)
    assert request2["requiredApproveScopes"] == ["operator.pairing", "operator.write"]
    res = pairing_only.call("node.pair.approve", {"requestId": request2["requestId"]})
    assert res["error"]["details"]["missingScope"] == "operator.write"
    assert writer.call("node.pair.approve", {"requestId": request2["requestId"]})["ok"] is True
    nd2.close()

    key3, nd3 = node(gw.port, commands=[], approve=False)
    (request3,) = pending_of(writer, key3.device_id)
    assert request3["requiredApproveScopes"] == ["operator.pairing"]
    res = pairing_only.call("node.pair.approve", {"requestId": request3["requestId"]})
    assert res["ok"] is True, res

    reader = operator(gw.port, scopes=["operator.read"])
    for method, params in (
        ("node.pair.list", None),
        ("node.pair.approve", {"requestId": "x"}),
        ("node.pair.reject", {"requestId": "x"}),
        ("node.pair.remove", {"nodeId": "x"}),
    ):
        res = reader.call(method, params)
        assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", (method, res)
    bad = writer.call("node.pair.approve", {})
    assert bad["ok"] is False and bad["error"]["code"] == "INVALID_REQUEST"
    for wire in (pairing_only, writer, reader, nd3):
        wire.close()


def test_reject_leaves_the_surface_unapproved(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    events = watcher(gw.port)
    key, nd = node(gw.port, approve=False)
    (request,) = pending_of(op, key.device_id)
    res = op.call("node.pair.reject", {"requestId": request["requestId"]})
    assert res["payload"] == {"requestId": request["requestId"], "nodeId": key.device_id}
    for wire in (events, nd):
        assert next_event(wire, "node.pair.resolved")["decision"] == "rejected"
    assert describe(op, key.device_id)["approvalState"] == "unapproved"
    res = op.response(invoke(op, key.device_id, "test.echo", {}))
    assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"].startswith('node command not allowed: "test.echo"')
    unknown = op.call("node.pair.reject", {"requestId": request["requestId"]})
    assert unknown["ok"] is False and unknown["error"]["message"] == "unknown requestId"
    nd.close()

    # it asks again when it reconnects
    _, nd = node(gw.port, key, approve=False)
    (again,) = pending_of(op, key.device_id)
    assert again["requestId"] != request["requestId"]
    for wire in (op, events, nd):
        wire.close()


def test_reconnects_refresh_supersede_and_reapprove(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    events = watcher(gw.port)
    key, nd = node(gw.port, approve=False)
    (first,) = pending_of(op, key.device_id)
    nd.close()
    _, nd = node(gw.port, key, approve=False)  # same surface: the same request, refreshed
    (same,) = pending_of(op, key.device_id)
    assert same["requestId"] == first["requestId"] and same["ts"] >= first["ts"]
    nd.close()

    _, nd = node(gw.port, key, commands=["test.echo"], approve=False)  # another surface
    (replaced,) = pending_of(op, key.device_id)
    assert replaced["requestId"] != first["requestId"] and replaced["commands"] == ["test.echo"]
    superseded = next_event(events, "node.pair.resolved")
    assert superseded["requestId"] == first["requestId"]
    assert superseded["decision"] == "rejected"
    assert op.call("node.pair.approve", {"requestId": replaced["requestId"]})["ok"] is True
    nd.close()

    # within the approved surface: nothing to approve
    _, nd = node(gw.port, key, commands=["test.echo"], approve=False)
    assert pending_of(op, key.device_id) == []
    nd.close()

    # grown: the approved part keeps working, the new command waits
    _, nd = node(gw.port, key, commands=["test.echo", "test.more"], approve=False)
    (grown,) = pending_of(op, key.device_id)
    assert grown["commands"] == ["test.echo", "test.more"]
    entry = describe(op, key.device_id)
    assert entry["approvalState"] == "pending-reapproval" and entry["commands"] == ["test.echo"]
    res = op.response(invoke(op, key.device_id, "test.more", {}))
    assert res["ok"] is False and res["error"]["details"]["code"] == "NODE_APPROVAL_PENDING"
    req = invoke(op, key.device_id, "test.echo", {})
    answer(nd, key.device_id)
    assert op.response(req)["ok"] is True
    nd.close()

    # back within the approved surface: the stale request is dropped as rejected
    _, nd = node(gw.port, key, commands=["test.echo"], approve=False)
    assert pending_of(op, key.device_id) == []
    assert describe(op, key.device_id)["approvalState"] == "approved"
    for wire in (op, events, nd):
        wire.close()


def test_approval_persists_across_a_restart(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start(home, gateway_factory)
    key, nd = node(gw.port)  # approved
    op = operator(gw.port)
    assert op.call("node.rename", {"nodeId": key.device_id, "displayName": "Kept"})["ok"]
    blank = op.call("node.rename", {"nodeId": key.device_id, "displayName": "  "})
    assert blank["ok"] is False and blank["error"]["message"] == "displayName required"
    nd.close()
    op.close()
    assert gw.stop() == 0

    directory = gw.state_dir / "nodes"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("paired.json", "pending.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    stored = json.loads((directory / "paired.json").read_text())
    assert stored[key.device_id]["commands"] == sorted(COMMANDS)
    assert TOKEN not in json.dumps(stored)

    gw = start(home, gateway_factory)
    op = operator(gw.port)
    entry = op.call("node.list")["payload"]["nodes"][0]
    assert entry["nodeId"] == key.device_id and entry["connected"] is False
    assert entry["approvalState"] == "approved" and entry["displayName"] == "Kept"
    _, nd = node(gw.port, key, approve=False)
    assert pending_of(op, key.device_id) == []
    req = invoke(op, key.device_id, "system.which", {"bins": ["sh"]})
    answer(nd, key.device_id)
    assert op.response(req)["ok"] is True
    op.close()
    nd.close()


def test_last_seen_times_are_written_at_shutdown(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """Last-seen times wait in memory (no fsync per connect and close); a stopping gateway
    writes them, including the disconnect of the node its drain closed."""
    gw = start(home, gateway_factory)
    key, nd = node(gw.port)  # approved, still connected at the SIGTERM
    op = operator(gw.port)
    connected_at = describe(op, key.device_id)["lastConnectedAtMs"]
    op.close()
    assert gw.stop() == 0
    nd.close()
    stored = json.loads((gw.state_dir / "nodes" / "paired.json").read_text())[key.device_id]
    assert stored["lastConnectedAtMs"] == connected_at
    assert stored["lastDisconnectedAtMs"] >= connected_at


def test_remove_revokes_the_node(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    events = watcher(gw.port)  # after the approval's own resolution
    res = op.call("node.pair.remove", {"nodeId": key.device_id})
    assert res["ok"] is True and res["payload"] == {"nodeId": key.device_id}
    resolved = next_event(events, "node.pair.resolved")
    assert resolved == {**resolved, "requestId": "", "nodeId": key.device_id, "decision": "removed"}
    assert nd.closed_with()[0] == 1008
    paired = json.loads((gw.state_dir / "devices" / "paired.json").read_text())
    assert key.device_id not in paired  # a node-only device row goes
    wait_until(lambda: op.call("node.list")["payload"]["nodes"] == [], what="node gone")
    unknown = op.call("node.pair.remove", {"nodeId": key.device_id})
    assert unknown["ok"] is False and unknown["error"]["message"] == "unknown nodeId"
    res = op.call("node.rename", {"nodeId": key.device_id, "displayName": "x"})
    assert res["ok"] is False and res["error"]["message"] == "unknown nodeId"
    op.close()
    events.close()


def test_unpairing_the_device_voids_the_approval(gw: GatewayProcess) -> None:
    op = operator(gw.port)
    key, nd = node(gw.port)
    assert op.call("device.pair.remove", {"deviceId": key.device_id})["ok"] is True
    nd.closed_with()
    # re-paired (silently, loopback): the old approval does not carry over
    _, nd = node(gw.port, key, approve=False)
    assert describe(op, key.device_id)["approvalState"] == "pending-approval"
    assert len(pending_of(op, key.device_id)) == 1
    op.close()
    nd.close()


def test_operator_paired_device_surface_is_not_silent(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = start(home, gateway_factory, auto_approve=False)
    op = operator(gw.port)
    key = Key()
    params = {
        "auth": {"token": TOKEN},
        "role": "node",
        "scopes": [],
        "client": dict(NODE_CLIENT),
        "commands": ["test.echo"],
    }
    wire, res = key.connect(gw.port, **params)
    device_request = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    assert op.call("device.pair.approve", {"requestId": device_request})["ok"] is True
    wire, res = key.connect(gw.port, **params)
    assert res["ok"] is True, res
    (request,) = pending_of(op, key.device_id)
    assert "silent" not in request  # omitted when false, as the reference's JSON
    approve_pending(gw.port, key.device_id)
    op.close()
    wire.close()


def test_presence_health_and_status(gw: GatewayProcess) -> None:
    op = operator(gw.port, scopes=["operator.read"])
    key, nd = node(gw.port, approve=False)
    came = next_event(op, "node.presence")
    assert came["nodeId"] == key.device_id and came["connected"] is True
    assert came["reason"] == "connect" and came["displayName"] == "Build box"
    assert came["approvalState"] == "pending-approval" and isinstance(came["ts"], int)

    health = op.call("health", {"probe": True})["payload"]
    (state,) = health["nodes"]
    assert state["nodeId"] == key.device_id and state["connected"] is True
    assert state["approvalState"] == "pending-approval" and state["commands"] == 0
    status = op.call("status")["payload"]
    assert status["nodes"] == {"known": 1, "connected": 1, "approved": 0, "pendingApproval": 1}

    approve_pending(gw.port, key.device_id)
    (state,) = op.call("health")["payload"]["nodes"]  # the cached snapshot was dropped
    assert state["approvalState"] == "approved" and state["commands"] == len(COMMANDS)
    status = op.call("status")["payload"]
    assert status["nodes"] == {"known": 1, "connected": 1, "approved": 1, "pendingApproval": 0}

    nd.close()
    went = next_event(op, "node.presence")
    assert went["nodeId"] == key.device_id and went["connected"] is False
    assert went["reason"] == "disconnect" and went["approvalState"] == "approved"
    status = op.call("status")["payload"]
    assert status["nodes"]["connected"] == 0 and status["nodes"]["known"] == 1
    op.close()


def test_nothing_reaches_a_pending_node(gw: GatewayProcess) -> None:
    """No ``node.invoke.request`` reaches a pending node, however often it is asked."""
    op = operator(gw.port)
    key, nd = node(gw.port, approve=False)
    for _ in range(3):
        res = op.response(invoke(op, key.device_id, "test.echo", {}, idempotencyKey="same"))
        assert res["error"]["code"] == "UNAVAILABLE"
    approve_pending(gw.port, key.device_id)
    # everything the node got up to the resolution: no invoke among it
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while "node.pair.resolved" not in seen:
        assert time.monotonic() < deadline, seen
        seen.append(nd.recv(max(0.05, deadline - time.monotonic())).get("event", ""))
    assert "node.invoke.request" not in seen, seen
    op.close()
    nd.close()


def test_internal_callers_are_refused_too(tmp_path: Path) -> None:
    """``NodeRegistry.invoke`` itself (what agent runs call) refuses a pending node."""
    from types import SimpleNamespace

    from node_fakes import node_conn, node_device, registry_for

    from openclaw_multi.gateway.methods import MethodError

    registry = registry_for(tmp_path, SimpleNamespace(paired={"n1": node_device()}))
    sent: list[tuple[str, Any]] = []
    conn = node_conn(["test.echo"], sent)
    registry.node_connected(conn)  # type: ignore[arg-type]
    with pytest.raises(MethodError) as refused:
        registry.invoke("n1", "test.echo", {})
    assert refused.value.code == "UNAVAILABLE" and refused.value.retryable is True
    assert "awaiting operator approval" in refused.value.message
    assert sent == [] and registry.pending == {}


def test_unreadable_files_approve_nothing(tmp_path: Path) -> None:
    from openclaw_multi.gateway.node_pairing import NodePairingStore

    directory = tmp_path / "nodes"
    directory.mkdir()
    (directory / "paired.json").write_text("{not json")
    (directory / "pending.json").mkdir()  # unreadable as a file
    store = NodePairingStore(directory)
    assert store.paired == {} and store.pending == {}
    assert not (directory / "paired.json").exists()  # moved aside for a person to look at
    assert len(list(directory.glob("paired.corrupt-*.json"))) == 1
