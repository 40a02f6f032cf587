"""Nodes: the ``role:"node"`` connections, their catalog, and the ``node.invoke`` round trip.

A node is a connected, device-authenticated (and so paired, devices.py) ``role:"node"``
connection; its id is its device id, its command surface the ``caps``/``commands`` of its
connect. ``node.invoke`` sends ``node.invoke.request`` to the node and waits (bounded by
``timeoutMs``) for the node's ``node.invoke.result``; a timeout, the node leaving or the caller
leaving ends the wait (docs/protocol.md, Nodes).
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

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Gateway

_LOG = logging.getLogger("openclaw.gateway")
EVENTS = ("node.invoke.request", "node.invoke.cancel")


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

    def methods(self) -> dict[str, Method]:
        """Scopes as the reference's method table (method-scopes); node-only ones check role."""
        return {
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

    # -- connection bookkeeping (called by the hub) -----------------------------------------
    def node_connected(self, conn: Connection) -> None:
        if conn.role == "node" and conn.device_id:
            self.connected[conn.device_id] = conn  # a reconnect replaces the older socket

    def node_closed(self, conn: Connection) -> None:
        if conn.role != "node" or not conn.device_id:
            return
        if self.connected.get(conn.device_id) is conn:
            del self.connected[conn.device_id]
        for pending in list(self.pending.values()):
            if pending.node is conn and not pending.future.done():
                error = {
                    "code": "DISCONNECTED",
                    "message": f"node disconnected ({pending.command})",
                }
                pending.future.set_result(error)

    # -- catalog ---------------------------------------------------------------------------------
    def _entry(self, node_id: str) -> dict[str, Any] | None:
        live = self.connected.get(node_id)
        record = self.gateway.devices.store.paired.get(node_id)
        if record is not None and "node" not in record.roles and live is None:
            record = None
        if live is None and record is None:
            return None
        params = live.params if live is not None else None
        client = params.client if params is not None else None
        return {
            "nodeId": node_id,
            "displayName": (record.display_name if record else None)
            or (client.display_name if client else None),
            "platform": (client.platform if client else None)
            or (record.platform if record else None),
            "version": client.version if client else None,
            "clientId": (client.id if client else None) or (record.client_id if record else None),
            "clientMode": (client.mode if client else None)
            or (record.client_mode if record else None),
            "deviceFamily": (client.device_family if client else None)
            or (record.device_family if record else None),
            "caps": sorted(set(params.caps)) if params else [],
            "commands": sorted(set(params.commands)) if params else [],
            "permissions": dict(params.permissions) if params else None,
            "pathEnv": params.path_env if params else None,
            "connectedAtMs": int(live.connected_at * 1000) if live is not None else None,
            "approvedAtMs": record.approved_at_ms if record else None,
            # Node-command approval (node.pair.*) is not separate yet: a paired node's
            # declared surface counts as approved.
            "approvalState": "approved" if record else "unapproved",
            "paired": record is not None,
            "connected": live is not None,
        }

    def _entries(self) -> list[dict[str, Any]]:
        ids = set(self.connected)
        ids.update(d for d, r in self.gateway.devices.store.paired.items() if "node" in r.roles)
        entries = [e for e in map(self._entry, ids) if e is not None]
        entries.sort(key=lambda e: (not e["connected"], (e["displayName"] or e["nodeId"]).lower()))
        return entries

    def _list(self, conn: Connection, params: None) -> dict[str, Any]:
        return {"ts": _now_ms(), "nodes": self._entries()}

    def _describe(self, conn: Connection, params: proto.NodeIdParams) -> dict[str, Any]:
        entry = self._entry(params.node_id.strip())
        if entry is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        return {"ts": _now_ms(), **entry}

    def _rename(self, conn: Connection, params: proto.NodeRenameParams) -> dict[str, Any]:
        name = params.display_name.strip()
        if not name:
            raise MethodError(codes.INVALID_REQUEST, "displayName required")
        store = self.gateway.devices.store
        record = store.paired.get(params.node_id)
        if record is None or "node" not in record.roles:
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        record.display_name = name
        store.save_paired()
        return {"nodeId": record.device_id, "displayName": name}

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
        runs). Refusals before dispatch raise :class:`MethodError` here; failures after
        dispatch raise it from the awaitable.
        """
        node = self.connected.get(node_id)
        if node is None or node.phase is not Phase.CONNECTED:
            error = {"code": "NOT_CONNECTED", "message": "node not connected"}
            raise MethodError(
                codes.UNAVAILABLE,
                "node not connected",
                details={
                    "code": "NOT_CONNECTED",
                    "nodeError": error,
                    "nodeCommandDispatched": False,
                },
                retryable=True,
            )
        assert node.params is not None
        if command not in node.params.commands:
            message = proto.not_declared_message(command, node.params.client.platform)
            raise MethodError(codes.INVALID_REQUEST, message)
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
        pending = self.pending[request_id] = _Pending(node, node_id, command)
        node.send_event("node.invoke.request", request)
        return self._await_result(request_id, pending, timeout_ms)

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


def _require_node(conn: Connection) -> None:
    if conn.role != "node":
        raise MethodError(codes.INVALID_REQUEST, f"unauthorized role: {conn.role}")


def _uuid() -> str:
    return str(uuid.uuid4())


def _now_ms() -> int:
    return int(time.time() * 1000)
