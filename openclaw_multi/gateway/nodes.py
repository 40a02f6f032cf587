"""Nodes: the ``role:"node"`` connections, their catalog, and the ``node.invoke`` round trip.

A node is a connected, device-authenticated (and so paired, devices.py) ``role:"node"``
connection; its id is its device id, its declared surface the ``caps``/``commands``/
``permissions`` of its connect. What of that surface may be used is node_pairing.py's
operator approval: a command is invoked only if the node declares it *and* it is approved.
``node.invoke`` sends ``node.invoke.request`` to the node and waits (bounded by ``timeoutMs``)
for the node's ``node.invoke.result``; a timeout, the node leaving or the caller leaving ends
the wait. Operators with ``operator.read`` get ``node.presence`` when a node connects or
leaves (docs/protocol.md, Nodes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from ..protocol import codes, scopes
from ..protocol import nodes as proto
from ..protocol.frames import encoder
from ..protocol.handshake import Phase
from .methods import Method, MethodError
from .node_pairing import NodePairing

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Gateway

_LOG = logging.getLogger("openclaw.gateway")
EVENTS = (
    "node.invoke.request",
    "node.invoke.cancel",
    "node.pair.requested",
    "node.pair.resolved",
    "node.presence",
)


class _Pending:
    """One dispatched invoke waiting for its node's result."""

    __slots__ = ("command", "future", "node", "node_id")

    def __init__(self, node: Connection, node_id: str, command: str) -> None:
        self.node = node
        self.node_id = node_id
        self.command = command
        self.future: asyncio.Future[proto.NodeInvokeResultParams | dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )


class NodeRegistry:
    """Connected nodes by device id, and the invokes in flight to them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.connected: dict[str, Connection] = {}
        self.pending: dict[str, _Pending] = {}
        self.pairing = NodePairing(gateway, gateway.settings.paths.state_dir)

    def methods(self) -> dict[str, Method]:
        """Scopes as the reference's method table (method-scopes); node-only ones check role."""
        return {
            **self.pairing.methods(),
            "node.list": Method(self._list, scopes.READ),
            "node.describe": Method(self._describe, scopes.READ, proto.NodeIdParams),
            "node.rename": Method(self._rename, scopes.PAIRING, proto.NodeRenameParams),
            "node.invoke": Method(self._invoke, scopes.WRITE, proto.NodeInvokeParams, True),
            "node.invoke.result": Method(self._result, None, proto.NodeInvokeResultParams),
            "node.event": Method(self._event, None, proto.NodeEventParams),
            # What the real node host publishes after connecting: acknowledged as the
            # reference does, not used yet (no agent runs or worker hosts here).
            "node.skills.update": Method(self._skills, None, proto.NodeSkillsParams),
            "node.pluginTools.update": Method(self._tools, None, proto.NodePluginToolsParams),
            "node.runnerInventory.update": Method(
                self._inventory, None, proto.RunnerInventoryParams
            ),
        }

    def close(self) -> None:
        """At shutdown: write the node bookkeeping still held in memory (last-seen times)."""
        self.pairing.flush()

    # -- connection bookkeeping (called by the hub) -----------------------------------------
    def node_connected(self, conn: Connection) -> None:
        if conn.role == "node" and conn.device_id:
            self.connected[conn.device_id] = conn  # a reconnect replaces the older socket
            self.pairing.node_connected(conn)
            self._presence(conn.device_id, connected=True)

    def node_closed(self, conn: Connection) -> None:
        if conn.role != "node" or not conn.device_id:
            return
        for pending in list(self.pending.values()):  # first: callers must not wait it out
            if pending.node is conn and not pending.future.done():
                error = {
                    "code": "DISCONNECTED",
                    "message": f"node disconnected ({pending.command})",
                }
                pending.future.set_result(error)
        if self.connected.get(conn.device_id) is conn:
            del self.connected[conn.device_id]
            self.pairing.node_closed(conn.device_id)
            self._presence(conn.device_id, connected=False)

    # -- presence ------------------------------------------------------------------------------
    def _presence(self, node_id: str, *, connected: bool) -> None:
        """``node.presence`` to readers: the node came or went (docs/protocol.md, Nodes)."""
        entry = self._entry(node_id, pending_visible=False)
        payload = {
            "nodeId": node_id,
            "connected": connected,
            "reason": "connect" if connected else "disconnect",
            "displayName": entry["displayName"] if entry else None,
            "approvalState": entry["approvalState"] if entry else proto.UNAPPROVED,
            "ts": _now_ms(),
        }
        targets = [
            c
            for c in self.gateway.clients
            if c.role == "operator" and scopes.covers(c.scopes, scopes.READ)
        ]
        if targets:
            raw = msgspec.Raw(encoder.encode(payload))
            self.gateway._fan_out(targets, "node.presence", raw, msgspec.UNSET)

    # -- catalog ---------------------------------------------------------------------------------
    def _entry(self, node_id: str, *, pending_visible: bool) -> dict[str, Any] | None:
        """One node as ``node.list`` shows it (the reference's known-node projection).

        A connected node shows its *effective* surface (declared and approved), an offline
        one its approved surface. ``pending*`` fields only to callers who may approve.
        """
        live = self.connected.get(node_id)
        record = self.gateway.devices.store.paired.get(node_id)
        if record is not None and "node" not in record.roles:
            record = None
        approved = self.pairing.approved(node_id)
        pending = self.pairing.pending_for(node_id)
        if live is None and record is None and approved is None and pending is None:
            return None
        params = live.params if live is not None else None
        client = params.client if params is not None else None
        if params is not None:
            caps = _allowed(params.caps, approved.caps if approved else ())
            commands = _allowed(params.commands, approved.commands if approved else ())
            permissions = proto.effective_permissions(
                approved.permissions if approved else None, dict(params.permissions)
            )
        else:
            caps = list(approved.caps) if approved else []
            commands = list(approved.commands) if approved else []
            permissions = approved.permissions if approved else None
        entry: dict[str, Any] = {
            "nodeId": node_id,
            "displayName": _first(
                approved and approved.display_name,
                client and client.display_name,
                record and record.display_name,
                pending and pending.display_name,
            ),
            "platform": _first(
                client and client.platform,
                approved and approved.platform,
                record and record.platform,
                pending and pending.platform,
            ),
            "version": _first(
                client and client.version,
                approved and approved.version,
                pending and pending.version,
            ),
            "clientId": _first(
                client and client.id, record and record.client_id, pending and pending.client_id
            ),
            "clientMode": _first(
                client and client.mode,
                record and record.client_mode,
                pending and pending.client_mode,
            ),
            "deviceFamily": _first(
                client and client.device_family,
                approved and approved.device_family,
                pending and pending.device_family,
            ),
            "caps": caps,
            "commands": commands,
            "permissions": permissions,
            "pathEnv": params.path_env if params else None,
            "approvalState": proto.approval_state(
                pending=pending is not None, approved=approved is not None
            ),
            "connectedAtMs": int(live.connected_at * 1000) if live is not None else None,
            "lastConnectedAtMs": approved.last_connected_at_ms if approved else None,
            "lastDisconnectedAtMs": (
                approved.last_disconnected_at_ms if approved and live is None else None
            ),
            "approvedAtMs": (approved.approved_at_ms if approved else None)
            or (record.approved_at_ms if record else None),
            "paired": record is not None or approved is not None,
            "connected": live is not None,
        }
        if pending is not None and pending_visible:
            entry["pendingRequestId"] = pending.request_id
            entry["pendingDeclaredCaps"] = pending.caps
            entry["pendingDeclaredCommands"] = pending.commands
            entry["pendingDeclaredPermissions"] = pending.permissions
        return entry

    def _entries(self, *, pending_visible: bool) -> list[dict[str, Any]]:
        ids = set(self.connected) | self.pairing.known_ids()
        ids.update(d for d, r in self.gateway.devices.store.paired.items() if "node" in r.roles)
        entries = [e for e in (self._entry(i, pending_visible=pending_visible) for i in ids) if e]
        entries.sort(key=lambda e: (not e["connected"], (e["displayName"] or e["nodeId"]).lower()))
        return entries

    def health(self) -> list[dict[str, Any]]:
        """Per-node state for the health snapshot."""
        return [
            {
                "nodeId": e["nodeId"],
                "displayName": e["displayName"],
                "platform": e["platform"],
                "connected": e["connected"],
                "approvalState": e["approvalState"],
                "commands": len(e["commands"]),
                "connectedAtMs": e["connectedAtMs"],
                "lastConnectedAtMs": e["lastConnectedAtMs"],
            }
            for e in self._entries(pending_visible=False)
        ]

    def counts(self) -> dict[str, int]:
        """Node counts for ``status``: known, connected, approved, awaiting approval."""
        entries = self._entries(pending_visible=False)
        return {
            "known": len(entries),
            "connected": sum(1 for e in entries if e["connected"]),
            "approved": sum(1 for e in entries if e["approvalState"] == proto.APPROVED),
            "pendingApproval": sum(1 for e in entries if e["approvalState"].startswith("pending")),
        }

    def _list(self, conn: Connection, params: None) -> dict[str, Any]:
        visible = scopes.covers(conn.scopes, scopes.PAIRING)
        return {"ts": _now_ms(), "nodes": self._entries(pending_visible=visible)}

    def _describe(self, conn: Connection, params: proto.NodeIdParams) -> dict[str, Any]:
        visible = scopes.covers(conn.scopes, scopes.PAIRING)
        entry = self._entry(params.node_id.strip(), pending_visible=visible)
        if entry is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        return {"ts": _now_ms(), **entry}

    def _rename(self, conn: Connection, params: proto.NodeRenameParams) -> dict[str, Any]:
        name = params.display_name.strip()
        if not name:
            raise MethodError(codes.INVALID_REQUEST, "displayName required")
        record = self.pairing.approved(params.node_id.strip())
        if record is None:  # as the reference: only a node with an approved surface
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        renamed = msgspec.structs.replace(record, display_name=name)
        self.pairing.commit_approvals({**self.pairing.store.paired, record.node_id: renamed})
        return {"nodeId": record.node_id, "displayName": name}

    # -- invoke ----------------------------------------------------------------------------------
    def _invoke(self, conn: Connection, params: proto.NodeInvokeParams) -> Any:
        return self.invoke(
            params.node_id,
            params.command,
            params.params,
            timeout_ms=params.timeout_ms,
            idempotency_key=params.idempotency_key,
            session_key=params.session_key,
        )

    def invoke(
        self,
        node_id: str,
        command: str,
        params: Any = msgspec.UNSET,
        *,
        timeout_ms: int | None = None,
        idempotency_key: str | None = None,
        session_key: str | None = None,
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        """Send ``command`` to a connected node; the awaitable gives the operator's answer.

        The one path for operators' ``node.invoke`` and the gateway's own callers (agent
        runs). Refusals before dispatch raise :class:`MethodError` here; the request is sent
        when the awaitable starts (a node gone by then: UNAVAILABLE, not dispatched), and
        failures after dispatch raise from the awaitable.
        """
        node = self.connected.get(node_id)
        if node is None or node.phase is not Phase.CONNECTED:
            raise _not_connected()
        assert node.params is not None
        if command not in node.params.commands:
            message = proto.not_declared_message(command, node.params.client.platform)
            raise MethodError(codes.INVALID_REQUEST, message)
        approved = self.pairing.approved(node_id)
        if approved is None or command not in approved.commands:
            self._refuse_unapproved(node_id, command)
        timeout_ms = proto.invoke_timeout_ms(timeout_ms)
        if command == "system.run" and isinstance(params, dict):
            params = {**params, "runId": params.get("runId") or _uuid()}
        request_id = _uuid()
        request: dict[str, Any] = {
            "id": request_id,
            "nodeId": node_id,
            "command": command,
            "paramsJSON": None if params is msgspec.UNSET else encoder.encode(params).decode(),
            "timeoutMs": timeout_ms,
            "idempotencyKey": idempotency_key or request_id,
        }
        if session_key:
            request["sessionKey"] = session_key
        return self._dispatch(node, node_id, command, request, timeout_ms)

    async def _dispatch(
        self, node: Connection, node_id: str, command: str, request: dict[str, Any], timeout: int
    ) -> Any:
        # Sent in the awaitable's first step, not before: a call cancelled before it starts
        # (its caller's socket closed in the same turn) runs no finally, so it must neither
        # reach the node nor leave an entry in self.pending.
        if node.phase is not Phase.CONNECTED:  # left since invoke() checked
            raise _not_connected()
        pending = self.pending[request["id"]] = _Pending(node, node_id, command)
        node.send_event("node.invoke.request", request)
        return await self._await_result(request["id"], pending, timeout)

    def _refuse_unapproved(self, node_id: str, command: str) -> None:
        """Declared but not approved: wait for the operator (retryable), or not allowed."""
        pending = self.pairing.pending_for(node_id)
        if pending is not None:
            raise MethodError(
                codes.UNAVAILABLE,
                proto.awaiting_approval_message(pending.request_id),
                details={
                    "code": "NODE_APPROVAL_PENDING",
                    "requestId": pending.request_id,
                    "nodeCommandDispatched": False,
                },
                retryable=True,
            )
        raise MethodError(codes.INVALID_REQUEST, proto.not_approved_message(command))

    async def _await_result(self, request_id: str, pending: _Pending, timeout_ms: int) -> Any:
        try:
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    result = await pending.future
            except TimeoutError:
                self._cancel_on_node(request_id, pending)
                result = {"code": "TIMEOUT", "message": "node invoke timed out"}
            except asyncio.CancelledError:  # the caller left
                self._cancel_on_node(request_id, pending)
                raise
        finally:
            self.pending.pop(request_id, None)
        if isinstance(result, dict):
            code, message, details = proto.failure(result, dispatched=True)
            raise MethodError(code, message, details=details)
        if not result.ok:
            code, message, details = proto.failure(result.error, dispatched=True)
            raise MethodError(code, message, details=details)
        payload_json = result.payload_json if isinstance(result.payload_json, str) else None
        if payload_json is not None:
            try:
                payload = json.loads(payload_json)
            except ValueError:
                payload = None
        elif result.payload is not msgspec.UNSET:
            payload = result.payload
        else:  # a non-string payloadJSON counts as the payload (the reference's normalizing)
            payload = result.payload_json
        return {
            "ok": True,
            "nodeId": pending.node_id,
            "command": pending.command,
            "payload": payload,
            "payloadJSON": payload_json,
        }

    def _cancel_on_node(self, request_id: str, pending: _Pending) -> None:
        node = pending.node
        if node.phase is Phase.CONNECTED:
            node.send_event(
                "node.invoke.cancel", {"invokeId": request_id, "nodeId": pending.node_id}
            )

    def _result(self, conn: Connection, params: proto.NodeInvokeResultParams) -> dict[str, Any]:
        _require_node(conn)
        if conn.device_id and conn.device_id != params.node_id:
            raise MethodError(codes.INVALID_REQUEST, "nodeId mismatch")
        pending = self.pending.get(params.id)
        if pending is None or pending.node is not conn or pending.future.done():
            _LOG.debug("late invoke result ignored: id=%s node=%s", params.id, params.node_id)
            return {"ok": True, "ignored": True}
        pending.future.set_result(params)
        return {"ok": True}

    def _event(self, conn: Connection, params: proto.NodeEventParams) -> dict[str, Any]:
        _require_node(conn)
        # No node events are acted on yet (exec/chat/presence events come with agent runs).
        return {"ok": True}

    def _skills(self, conn: Connection, params: proto.NodeSkillsParams) -> dict[str, Any]:
        return {"nodeId": self._own_id(conn), "skills": params.skills}

    def _tools(self, conn: Connection, params: proto.NodePluginToolsParams) -> dict[str, Any]:
        return {"nodeId": self._own_id(conn), "tools": params.tools}

    def _inventory(self, conn: Connection, params: proto.RunnerInventoryParams) -> dict[str, Any]:
        return {"nodeId": self._own_id(conn)}

    def _own_id(self, conn: Connection) -> str:
        _require_node(conn)
        if not conn.device_id or self.connected.get(conn.device_id) is not conn:
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        return conn.device_id


def _not_connected() -> MethodError:
    error = {"code": "NOT_CONNECTED", "message": "node not connected"}
    return MethodError(
        codes.UNAVAILABLE,
        "node not connected",
        details={"code": "NOT_CONNECTED", "nodeError": error, "nodeCommandDispatched": False},
        retryable=True,
    )


def _require_node(conn: Connection) -> None:
    if conn.role != "node":
        raise MethodError(codes.INVALID_REQUEST, f"unauthorized role: {conn.role}")


def _allowed(declared: list[str], approved: list[str] | tuple[()]) -> list[str]:
    allowed = set(approved)
    return [v for v in proto.surface_list(declared) if v in allowed]


def _first(*values: object) -> str | None:
    """The first non-empty string (``a and a.name`` chains give None or the object too)."""
    return next((v for v in values if isinstance(v, str) and v), None)


def _uuid() -> str:
    return str(uuid.uuid4())


def _now_ms() -> int:
    return int(time.time() * 1000)
