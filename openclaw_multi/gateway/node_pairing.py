"""Node command approval: which commands, caps and permissions of a node an operator allowed.

Device pairing (devices.py) decides who may connect; this decides what a connected node may be
asked to do, as the reference gateway's ``node.pair.*`` does. A node whose declared surface is
new, or grows past what was approved, raises a pending request (``node.pair.requested`` to
operators with ``operator.pairing``); until an operator approves it (``node.pair.approve``,
with the scopes :func:`~openclaw_multi.protocol.nodes.approve_scopes` names), invokes of the
unapproved commands are refused. Local auto-approval of *devices* never approves a surface
(the reference's rule: only an operator, or enrollment this gateway does not have, does); a
surface raised by a silently paired device is only marked ``silent``.

Files (under the profile's state dir, written atomically, mode 0600, dir 0700; they hold no
secret, but they say what may run on a machine):

* ``nodes/paired.json``: ``{nodeId: approved surface}``, each bound to the device record it
  was approved for (its public key and ``createdAtMs``): unpairing the device, or pairing a
  new key under the id, voids the approval.
* ``nodes/pending.json``: ``{requestId: request}``, at most one per node; pending surfaces do
  not expire with time (the reference's rule), a reconnect replaces or refreshes them.

Decisions (approve, reject, remove, rename) are saved before they take effect. Bookkeeping
(last-seen times, a refreshed request's time) is kept in memory and written at most
:data:`~.record_store.BOOKKEEPING_FLUSH_S` later, and at shutdown: no fsync on every node
connect and close.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..protocol import codes, scopes
from ..protocol import nodes as proto
from ..protocol.frames import encoder
from ..protocol.handshake import Phase
from .devices import client_fields
from .methods import Method, MethodError
from .record_store import PairingFiles, without

if TYPE_CHECKING:
    from .connection import Connection
    from .devices import PairedDevice
    from .hub import Gateway

_LOG = logging.getLogger("openclaw.gateway")
EVENTS = ("node.pair.requested", "node.pair.resolved")
CLOSE_NODE_REMOVED = "node pairing removed"


class ApprovedNode(msgspec.Struct, rename="camel", omit_defaults=True):
    """A node's approved command surface, as stored."""

    node_id: str
    device_public_key: str
    device_created_at_ms: int
    caps: list[str]
    commands: list[str]
    created_at_ms: int
    approved_at_ms: int
    permissions: dict[str, bool] | None = None
    display_name: str | None = None
    platform: str | None = None
    version: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None
    last_connected_at_ms: int | None = None
    last_disconnected_at_ms: int | None = None

    def public(self) -> dict[str, Any]:
        """The reference's paired-node shape (the device binding left out)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        del out["devicePublicKey"], out["deviceCreatedAtMs"]
        return out


class PendingSurface(msgspec.Struct, rename="camel", omit_defaults=True):
    """A surface waiting for an operator."""

    request_id: str
    node_id: str
    device_public_key: str
    device_created_at_ms: int
    caps: list[str]
    commands: list[str]
    ts: int
    permissions: dict[str, bool] | None = None
    display_name: str | None = None
    platform: str | None = None
    version: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None
    silent: bool = False

    def surface(self) -> tuple[list[str], list[str], dict[str, bool] | None]:
        return self.caps, self.commands, self.permissions

    def public(self) -> dict[str, Any]:
        """The ``node.pair.requested`` payload (and a ``node.pair.list`` pending entry)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        del out["devicePublicKey"], out["deviceCreatedAtMs"]
        out["requiredApproveScopes"] = proto.approve_scopes(self.commands)
        return out


class NodePairingStore(PairingFiles[ApprovedNode, PendingSurface]):
    """The two files, loaded once and rewritten whole (atomically) on every change."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, ApprovedNode, PendingSurface, what="node pairing")


def _save_failed(err: OSError) -> MethodError:
    _LOG.error("cannot save node approvals: %s", err)
    reason = err.strerror or str(err) or type(err).__name__
    return MethodError(codes.UNAVAILABLE, f"cannot save node approvals: {reason}", retryable=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bound_to(device: PairedDevice | None, key: str, created_at_ms: int) -> bool:
    return (
        device is not None
        and "node" in device.roles
        and device.public_key == key
        and device.created_at_ms == created_at_ms
    )


class NodePairing:
    """Approved and pending node surfaces for one gateway, and the ``node.pair.*`` methods."""

    def __init__(self, gateway: Gateway, state_dir: Path) -> None:
        self.gateway = gateway
        self.store = NodePairingStore(state_dir / "nodes")

    def methods(self) -> dict[str, Method]:
        """Scope ``operator.pairing``, as the reference's method table."""
        return {
            "node.pair.list": Method(self._list, scopes.PAIRING),
            "node.pair.approve": Method(self._approve, scopes.PAIRING, proto.NodePairRequestParams),
            "node.pair.reject": Method(self._reject, scopes.PAIRING, proto.NodePairRequestParams),
            "node.pair.remove": Method(self._remove, scopes.PAIRING, proto.NodePairRemoveParams),
        }

    # -- lookups (what nodes.py asks) -----------------------------------------------------------
    def _device(self, node_id: str) -> PairedDevice | None:
        return self.gateway.devices.store.paired.get(node_id)

    def approved(self, node_id: str) -> ApprovedNode | None:
        """The node's approved surface, if it still belongs to the paired device."""
        record = self.store.paired.get(node_id)
        if record is None:
            return None
        device = self._device(node_id)
        if not _bound_to(device, record.device_public_key, record.device_created_at_ms):
            return None
        return record

    def pending_for(self, node_id: str) -> PendingSurface | None:
        """The node's pending request, if it still belongs to the paired device."""
        for request in self.store.pending.values():
            if request.node_id == node_id:
                device = self._device(node_id)
                bound = _bound_to(device, request.device_public_key, request.device_created_at_ms)
                return request if bound else None
        return None

    def known_ids(self) -> set[str]:
        return {*self.store.paired, *(r.node_id for r in self.store.pending.values())}

    def _prune(self) -> None:
        """Forget surfaces whose device was unpaired (or re-paired with another key)."""
        stale = [n for n in self.store.paired if self.approved(n) is None]
        for node_id in stale:
            del self.store.paired[node_id]
        gone = [r for r, p in self.store.pending.items() if self.pending_for(p.node_id) is not p]
        for request_id in gone:
            del self.store.pending[request_id]
        if stale:
            self._save_quietly(self.store.save_paired)
        if gone:
            self._save_quietly(self.store.save_pending)

    # -- connect / close (called by NodeRegistry) ----------------------------------------------
    def node_connected(self, conn: Connection) -> None:
        """Check a node's declared surface against its approval; ask for what is new."""
        assert conn.params is not None and conn.device_id is not None
        node_id = conn.device_id
        device = self._device(node_id)
        if device is None:
            return  # cannot happen (a node is device-authenticated); nothing to bind to
        self._prune()
        params = conn.params
        caps = proto.surface_list(params.caps)
        commands = proto.surface_list(params.commands)
        permissions = dict(params.permissions) or None
        now = _now_ms()
        approved = self.approved(node_id)
        if approved is None:
            # A silently (locally) paired device's first surface is marked silent, no more.
            silent = device.approved_via == "silent"
            self._request(conn, device, (caps, commands, permissions), silent, now)
        elif proto.needs_approval(
            approved_caps=approved.caps,
            approved_commands=approved.commands,
            approved_permissions=approved.permissions,
            caps=caps,
            commands=commands,
            permissions=permissions or {},
        ):
            self._request(conn, device, (caps, commands, permissions), False, now)
        else:
            self._clear_pending(node_id, now)
        if approved is not None:
            approved.last_connected_at_ms = now
            approved.remote_ip = conn.ip
            approved.version = params.client.version or approved.version
            self.store.save_paired_soon()

    def node_closed(self, node_id: str) -> None:
        approved = self.approved(node_id)
        if approved is not None:
            approved.last_disconnected_at_ms = _now_ms()
            self.store.save_paired_soon()

    def flush(self) -> None:
        """At shutdown: write the bookkeeping still in memory (last-seen times)."""
        self.store.flush()

    def commit_approvals(self, paired: dict[str, ApprovedNode]) -> None:
        """Save ``paired`` as the approved surfaces, then put it in effect.

        Raises:
            MethodError: UNAVAILABLE ``cannot save node approvals: <reason>`` (retryable);
                nothing changed, in memory or on disk.
        """
        try:
            self.store.commit_paired(paired)
        except OSError as err:
            raise _save_failed(err) from None

    def _commit_pending_quietly(self, pending: dict[str, PendingSurface]) -> None:
        """Drop decided requests; after a durable decision a failed write is only logged (a
        stale request is cleared again when its node reconnects within the approval)."""
        try:
            self.store.commit_pending(pending)
        except OSError as err:
            _LOG.error("cannot save node pairing state: %s", err)

    @staticmethod
    def _save_quietly(save: Callable[[], None]) -> None:
        """Connect/close bookkeeping runs in socket callbacks: a failed write (disk full) is
        logged, never raised there, where it would skip presence and the close handling."""
        try:
            save()
        except OSError as err:
            _LOG.error("cannot save node pairing state: %s", err)

    def _request(
        self,
        conn: Connection,
        device: PairedDevice,
        surface: tuple[list[str], list[str], dict[str, bool] | None],
        silent: bool,
        now: int,
    ) -> None:
        """Create the node's pending request, or refresh the one with the same surface."""
        assert conn.params is not None
        client = conn.params.client
        existing = self.pending_for(device.device_id)
        if existing is not None and proto.same_surface(existing.surface(), surface):
            existing.ts = now
            existing.remote_ip = conn.ip
            existing.silent = existing.silent and silent
            self.store.save_pending_soon()
            return
        caps, commands, permissions = surface
        request = PendingSurface(
            request_id=str(uuid.uuid4()),
            node_id=device.device_id,
            device_public_key=device.public_key,
            device_created_at_ms=device.created_at_ms,
            caps=caps,
            commands=commands,
            permissions=permissions,
            ts=now,
            version=client.version,
            model_identifier=client.model_identifier,
            silent=silent,
            **client_fields(client, conn.ip),
        )
        if existing is not None:
            del self.store.pending[existing.request_id]
            self._resolved(existing, "rejected", now, to_node=False)
        self.store.pending[request.request_id] = request
        self._save_quietly(self.store.save_pending)
        _LOG.info(
            "node command approval requested node=%s commands=%s",
            device.device_id,
            ",".join(commands) or "<none>",
        )
        self._to_operators("node.pair.requested", request.public())
        self.gateway.invalidate_health()

    def _clear_pending(self, node_id: str, now: int) -> None:
        """A reconnect within the approved surface: a stale request is moot."""
        stale = [r for r in self.store.pending.values() if r.node_id == node_id]
        for request in stale:
            del self.store.pending[request.request_id]
            self._resolved(request, "rejected", now, to_node=False)
        if stale:
            self._save_quietly(self.store.save_pending)

    # -- events ------------------------------------------------------------------------------------
    def _to_operators(self, event: str, payload: Any) -> None:
        """Send to operators allowed to act on pairing (``operator.pairing`` or admin)."""
        targets = [
            c
            for c in self.gateway.clients
            if c.role == "operator" and scopes.covers(c.scopes, scopes.PAIRING)
        ]
        if targets:
            self.gateway._fan_out(
                targets, event, msgspec.Raw(encoder.encode(payload)), msgspec.UNSET
            )

    def _resolved(self, request: PendingSurface, decision: str, now: int, *, to_node: bool) -> None:
        payload = {
            "requestId": request.request_id,
            "nodeId": request.node_id,
            "decision": decision,
            "ts": now,
        }
        self._to_operators("node.pair.resolved", payload)
        node = self.gateway.nodes.connected.get(request.node_id)
        if to_node and node is not None and node.phase is Phase.CONNECTED:
            node.send_event("node.pair.resolved", payload)

    # -- methods -----------------------------------------------------------------------------------
    def _list(self, conn: Connection, params: None) -> dict[str, Any]:
        self._prune()
        pending = sorted(self.store.pending.values(), key=lambda r: r.ts, reverse=True)
        paired = sorted(self.store.paired.values(), key=lambda n: n.approved_at_ms, reverse=True)
        return {
            "pending": [r.public() for r in pending],
            "paired": [n.public() for n in paired],
        }

    def _approve(self, conn: Connection, params: proto.NodePairRequestParams) -> dict[str, Any]:
        self._prune()
        request_id = params.request_id.strip()
        request = self.store.pending.get(request_id)
        if request is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown requestId")
        missing = proto.missing_approve_scope(conn.scopes, request.commands)
        if missing is not None:
            required = [scopes.PAIRING] if missing == scopes.PAIRING else [scopes.PAIRING, missing]
            raise MethodError(
                codes.FORBIDDEN,
                f"missing scope: {missing}",
                details={
                    "code": "MISSING_SCOPE",
                    "missingScope": missing,
                    "requiredScopes": required,
                },
            )
        now = _now_ms()
        previous = self.approved(request.node_id)
        record = ApprovedNode(
            node_id=request.node_id,
            device_public_key=request.device_public_key,
            device_created_at_ms=request.device_created_at_ms,
            caps=request.caps,
            commands=request.commands,
            permissions=request.permissions,
            created_at_ms=previous.created_at_ms if previous else now,
            approved_at_ms=max(now, previous.approved_at_ms + 1) if previous else now,
            # an operator's rename outlives re-approvals
            display_name=(previous.display_name if previous else None) or request.display_name,
            platform=request.platform,
            version=request.version,
            device_family=request.device_family,
            model_identifier=request.model_identifier,
            client_id=request.client_id,
            client_mode=request.client_mode,
            remote_ip=request.remote_ip,
            last_connected_at_ms=previous.last_connected_at_ms if previous else None,
            last_disconnected_at_ms=previous.last_disconnected_at_ms if previous else None,
        )
        if request.node_id in self.gateway.nodes.connected:
            record.last_connected_at_ms = record.last_connected_at_ms or now
        self.commit_approvals({**self.store.paired, record.node_id: record})
        self._commit_pending_quietly(without(self.store.pending, {request_id}))
        _LOG.info(
            "node command approval approved node=%s commands=%s",
            record.node_id,
            ",".join(record.commands) or "<none>",
        )
        self._resolved(request, "approved", now, to_node=True)
        self.gateway.invalidate_health()
        return {"requestId": request_id, "node": record.public()}

    def _reject(self, conn: Connection, params: proto.NodePairRequestParams) -> dict[str, Any]:
        self._prune()
        request_id = params.request_id.strip()
        request = self.store.pending.get(request_id)
        if request is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown requestId")
        try:
            self.store.commit_pending(without(self.store.pending, {request_id}))
        except OSError as err:
            raise _save_failed(err) from None
        _LOG.info("node command approval rejected node=%s", request.node_id)
        self._resolved(request, "rejected", _now_ms(), to_node=True)
        self.gateway.invalidate_health()
        return {"requestId": request_id, "nodeId": request.node_id}

    def _remove(self, conn: Connection, params: proto.NodePairRemoveParams) -> dict[str, Any]:
        """Revoke the node role: surface approval gone, the device's node role dropped."""
        node_id = params.node_id.strip()
        devices = self.gateway.devices.store
        device = devices.paired.get(node_id)
        had_role = device is not None and "node" in device.roles
        if node_id not in self.store.paired and not had_role:
            raise MethodError(codes.INVALID_REQUEST, "unknown nodeId")
        # Each file saved, then swapped in: the approval first (invokes stop), then the
        # device's node role (it cannot connect as a node). A failure stops there with the
        # saved part in effect, so memory never claims what a restart would undo; the
        # operator's retry finishes the rest.
        if node_id in self.store.paired:
            self.commit_approvals(without(self.store.paired, {node_id}))
        if device is not None and had_role:
            # A node-only device row goes; a mixed-role device keeps its other roles.
            roles = [r for r in device.roles if r != "node"]
            remaining = without(devices.paired, {node_id})
            if roles:
                remaining[node_id] = msgspec.structs.replace(
                    device,
                    roles=roles,
                    role=device.role if device.role in roles else roles[0],
                    tokens=[t for t in device.tokens if t.role != "node"],
                )
            try:
                devices.commit_paired(remaining)
            except OSError as err:
                raise _save_failed(err) from None
        requests = {r.request_id for r in self.store.pending.values() if r.node_id == node_id}
        if requests:  # moot now (no longer bound to a node device): a failure is only logged
            self._commit_pending_quietly(without(self.store.pending, requests))
        _LOG.info("node pairing removed node=%s", node_id)
        now = _now_ms()
        self._to_operators(
            "node.pair.resolved",
            {"requestId": "", "nodeId": node_id, "decision": "removed", "ts": now},
        )
        targets = [c for c in self.gateway.clients if c.device_id == node_id and c.role == "node"]
        if targets:
            # After the response is on its way.
            def close_all() -> None:
                for target in targets:
                    target.close(codes.CLOSE_POLICY_VIOLATION, CLOSE_NODE_REMOVED)

            asyncio.get_running_loop().call_soon(close_all)
        self.gateway.invalidate_health()
        return {"nodeId": node_id}
