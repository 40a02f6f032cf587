"""Paired devices: who may connect with a device key, the pending requests, device tokens.

Files (under the profile's state dir, each written atomically, mode 0600, dir 0700):

* ``devices/paired.json``: ``{deviceId: record}`` as the reference gateway's (pre-SQLite)
  ``paired.json`` keys it, a record being ``{deviceId, publicKey, displayName, platform,
  deviceFamily, clientId, clientMode, role, roles, scopes, remoteIp, approvedVia,
  createdAtMs, approvedAtMs, lastSeenAtMs, tokens}``. ``tokens`` is a list of
  ``{role, tokenHash, scopes, createdAtMs, lastUsedAtMs?, revokedAtMs?}``: only the SHA-256
  of a device token is ever written, never the token.
* ``devices/pending.json``: ``{requestId: request}``, the requests not yet approved
  (dropped after 5 minutes, as the reference does).

:class:`DeviceRegistry` is the gateway's side of it: :meth:`~DeviceRegistry.authorize`
finishes a ``connect`` that carries a ``device`` block (the decisions are the pure
functions of :mod:`openclaw_multi.protocol.device`), and the ``device.pair.*`` /
``device.token.revoke`` methods let an operator list, approve, reject and remove devices.

What must survive a restart is saved before it is answered: a device token issued (or
rotated) at connect is on disk before ``hello-ok`` carries it, and approvals, rejections,
removals and revocations before their response. Bookkeeping (``lastSeenAtMs``,
``remoteIp``, a token's ``lastUsedAtMs``, a refreshed request's ``ts``) is kept in memory
and written at most :data:`~.record_store.BOOKKEEPING_FLUSH_S` later in one write, and at
shutdown (:meth:`DeviceRegistry.flush`): no fsync on the event loop on every connect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..protocol import codes, scopes
from ..protocol import device as proto
from ..protocol.connect import ClientInfo, ConnectParams
from ..protocol.frames import ErrorShape, encoder
from ..protocol.handshake import Accepted, Rejected, negotiate_protocol
from .methods import Method, MethodError
from .record_store import PairingFiles, without

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Gateway

_LOG = logging.getLogger("openclaw.gateway")

EVENTS = ("device.pair.requested", "device.pair.resolved")
CLOSE_DEVICE_REMOVED = "device pairing removed"
CLOSE_TOKEN_REVOKED = "device token revoked"


class TokenEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One role's device token, as stored: its hash and what it allows."""

    role: str
    token_hash: str
    scopes: list[str]
    created_at_ms: int
    last_used_at_ms: int | None = None
    revoked_at_ms: int | None = None

    def summary(self) -> dict[str, Any]:
        """What ``device.pair.list`` shows (never the hash)."""
        out: dict[str, Any] = {
            "role": self.role,
            "scopes": self.scopes,
            "createdAtMs": self.created_at_ms,
        }
        if self.last_used_at_ms is not None:
            out["lastUsedAtMs"] = self.last_used_at_ms
        if self.revoked_at_ms is not None:
            out["revokedAtMs"] = self.revoked_at_ms
        return out


class PairedDevice(msgspec.Struct, rename="camel", omit_defaults=True):
    """A device an operator (or the local auto-approval) let in."""

    device_id: str
    public_key: str
    role: str
    roles: list[str]
    scopes: list[str]
    created_at_ms: int
    approved_at_ms: int
    display_name: str | None = None
    platform: str | None = None
    device_family: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None
    approved_via: str | None = None  # "owner" (an operator) or "silent" (local auto-approval)
    last_seen_at_ms: int | None = None
    tokens: list[TokenEntry] = []

    def token_for(self, role: str) -> TokenEntry | None:
        return next((t for t in self.tokens if t.role == role), None)

    def public(self, *, connected: bool | None = None) -> dict[str, Any]:
        """The record for operators: token hashes left out, token metadata summarized."""
        out = msgspec.to_builtins(self)
        out["tokens"] = [t.summary() for t in self.tokens]
        if connected is not None:
            out["connected"] = connected
        return out  # type: ignore[no-any-return]


class PendingRequest(msgspec.Struct, rename="camel", omit_defaults=True):
    """A device waiting for approval (the ``device.pair.requested`` payload)."""

    request_id: str
    device_id: str
    public_key: str
    role: str
    roles: list[str]
    scopes: list[str]
    ts: int
    display_name: str | None = None
    platform: str | None = None
    device_family: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None
    silent: bool = False
    is_repair: bool = False


class PairingStore(PairingFiles[PairedDevice, PendingRequest]):
    """The two files, loaded once and rewritten whole (atomically) on every change."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, PairedDevice, PendingRequest, what="device pairing")

    def prune(self, now_ms: int) -> None:
        """Forget pending requests older than the pairing TTL."""
        stale = [rid for rid, r in self.pending.items() if now_ms - r.ts > proto.PENDING_TTL_MS]
        for rid in stale:
            del self.pending[rid]
        if stale:
            self.save_pending_soon()  # an expired request is dropped again after a restart


def client_fields(client: ClientInfo, remote_ip: str) -> dict[str, Any]:
    """What a pairing request keeps of the connecting client (keyword arguments)."""
    return {
        "display_name": client.display_name,
        "platform": client.platform,
        "device_family": client.device_family,
        "client_id": client.id,
        "client_mode": client.mode,
        "remote_ip": remote_ip,
    }


def _save_failed(err: OSError) -> MethodError:
    """UNAVAILABLE (retryable) for a decision that could not be saved: nothing changed."""
    _LOG.error("cannot save device pairing: %s", err)
    reason = err.strerror or str(err) or type(err).__name__
    return MethodError(codes.UNAVAILABLE, f"cannot save device pairing: {reason}", retryable=True)


def _connect_unsaved(err: OSError) -> Rejected:
    """The device token issued at connect could not be saved: refuse (retryable) rather
    than hand out a token a restart would forget."""
    _LOG.error("cannot save device pairing: %s", err)
    reason = err.strerror or str(err) or type(err).__name__
    return Rejected(
        ErrorShape(
            code=codes.UNAVAILABLE,
            message=f"cannot save device pairing: {reason}",
            retryable=True,
        ),
        codes.CLOSE_TRY_AGAIN_LATER,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _known_scopes(requested: list[str]) -> list[str]:
    return sorted({s for s in requested if s in scopes.KNOWN})


class RequestIdParams(msgspec.Struct, frozen=True, rename="camel"):
    request_id: str


class DeviceIdParams(msgspec.Struct, frozen=True, rename="camel"):
    device_id: str


class TokenRevokeParams(msgspec.Struct, frozen=True, rename="camel"):
    device_id: str
    role: str = "operator"


class DeviceRegistry:
    """Device pairing for one gateway: connect-time checks, operator methods, events."""

    def __init__(self, gateway: Gateway, state_dir: Path, *, auto_approve_local: bool) -> None:
        self.gateway = gateway
        self.store = PairingStore(state_dir / "devices")
        self.auto_approve_local = auto_approve_local

    def methods(self) -> dict[str, Method]:
        """The operator methods (scope ``operator.pairing``, as in the reference)."""
        return {
            "device.pair.list": Method(self._list, scopes.PAIRING),
            "device.pair.approve": Method(self._approve, scopes.PAIRING, RequestIdParams),
            "device.pair.reject": Method(self._reject, scopes.PAIRING, RequestIdParams),
            "device.pair.remove": Method(self._remove, scopes.PAIRING, DeviceIdParams),
            "device.token.revoke": Method(self._revoke, scopes.PAIRING, TokenRevokeParams),
        }

    def flush(self) -> None:
        """At shutdown: write the bookkeeping still in memory (last-seen times)."""
        self.store.flush()

    # -- connect ---------------------------------------------------------------------------------
    def authorize(
        self,
        conn: Connection,
        params: ConnectParams,
        base: Accepted | Rejected,
        *,
        nonce: str,
        local: bool,
    ) -> Accepted | Rejected:
        """Finish a ``connect`` with a device block, given the shared-secret verdict ``base``.

        Order (the reference's): refusals that come before auth stand; then the device proof;
        then, if the shared secret did not do it, the device token (``auth.deviceToken``, or
        ``auth.token`` tried as one); then pairing; then a fresh device token for a device
        that authenticated with the shared secret.
        """
        if isinstance(base, Rejected) and not base.auth_failure:
            return base  # not ready, protocol mismatch: nothing to do with the device
        now = _now_ms()
        proof = proto.verify_device_proof(params, nonce=nonce, now_ms=now)
        if isinstance(proof, Rejected):
            return proof
        store = self.store
        store.prune(now)
        role = params.role
        if isinstance(base, Accepted):
            method, protocol, granted = base.method, base.protocol, base.scopes
        else:
            outcome = self._device_token_auth(params, proof, base, local, now)
            if isinstance(outcome, Rejected):
                return outcome
            method, granted = "device-token", outcome
            protocol = negotiate_protocol(params) or 4
        record = store.paired.get(proof.device_id)
        reason = proto.pairing_reason(
            paired_public_key=record.public_key if record else None,
            paired_roles=record.roles if record else (),
            paired_scopes=record.scopes if record else (),
            public_key=proof.public_key,
            role=role,
            requested_scopes=params.scopes,
        )
        if reason is not None:
            approved = self._require_pairing(conn, params, proof, reason, method, local, now)
            if isinstance(approved, Rejected):
                return approved
            record = approved
        assert record is not None
        record.last_seen_at_ms = now
        record.remote_ip = conn.ip
        if params.client.display_name:
            record.display_name = params.client.display_name
        token: str | None = None
        if method == "device-token":
            store.save_paired_soon()  # only bookkeeping changed
        else:
            token = proto.b64url(secrets.token_bytes(32))  # 256 random bits, as the reference
            try:
                self._commit_token(record, role, token, now)
            except OSError as err:
                return _connect_unsaved(err)
        return proto.DeviceAccepted(
            protocol=protocol,
            role=role,
            scopes=granted,
            method=method,
            device_id=proof.device_id,
            device_token=token,
            issued_at_ms=now if token else None,
        )

    def _device_token_auth(
        self,
        params: ConnectParams,
        proof: proto.DeviceProof,
        base: Rejected,
        local: bool,
        now: int,
    ) -> frozenset[str] | Rejected:
        auth = params.auth
        explicit = auth.device_token
        candidate = explicit or auth.token
        if not candidate:
            if auth.password or auth.bootstrap_token:
                return base
            kind = self.gateway.settings.auth.secret_kind or "token"
            return proto.secret_missing(kind, params, local)
        record = self.store.paired.get(proof.device_id)
        entry = record.token_for(params.role) if record else None
        if (
            record is None
            or record.public_key != proof.public_key
            or entry is None
            or entry.revoked_at_ms is not None
            or not proto.token_matches(candidate, entry.token_hash)
        ):
            # ``auth.token`` that is neither the shared token nor this device's token stays
            # a plain token mismatch, as in the reference.
            return proto.device_token_mismatch() if explicit else base
        requested = params.scopes if params.role == "operator" else []
        if not proto.approved_scopes_cover(entry.scopes, requested):
            return proto.device_token_scope_mismatch()
        entry.last_used_at_ms = now
        if params.role != "operator":
            return frozenset()
        return scopes.grant(params.scopes, probe=params.client.mode == "probe")

    def _require_pairing(
        self,
        conn: Connection,
        params: ConnectParams,
        proof: proto.DeviceProof,
        reason: proto.PairingReason,
        method: str,
        local: bool,
        now: int,
    ) -> PairedDevice | Rejected:
        origin = conn.origin[0]
        silent = proto.allow_silent_approval(
            reason,
            local=local,
            auto_approve_local=self.auto_approve_local,
            method=method,
            # A web page's connect (its upgrade carried an Origin) pairs silently only as
            # the Control UI or webchat, as the reference rules.
            browser_origin=bool(origin and origin.strip()),
            ui_client=proto.is_ui_or_webchat_client(params.client.id, params.client.mode),
        )
        request, created = self._request(conn, params, proof, silent, now)
        if silent:
            record = self._commit_approval(request, via="silent", now=now)
            _LOG.info(
                "device pairing auto-approved device=%s role=%s", record.device_id, record.role
            )
            self._broadcast_resolved(request, "approved", now)
            return record
        if created:
            _LOG.info(
                "device pairing requested device=%s role=%s from %s (%s)",
                proof.device_id,
                params.role,
                conn.ip,
                reason,
            )
            self._broadcast("device.pair.requested", request)
        return proto.pairing_required(
            reason,
            request_id=request.request_id,
            device_id=proof.device_id,
            role=params.role,
            requested_scopes=list(params.scopes),
        )

    def _request(
        self,
        conn: Connection,
        params: ConnectParams,
        proof: proto.DeviceProof,
        silent: bool,
        now: int,
    ) -> tuple[PendingRequest, bool]:
        """Create a pending request, or refresh the one this device already has."""
        store = self.store
        role = params.role
        wanted = _known_scopes(params.scopes) if role == "operator" else []
        mine = [r for r in store.pending.values() if r.device_id == proof.device_id]
        for existing in mine:
            same_key = existing.public_key == proof.public_key
            covered = role in existing.roles and set(wanted) <= set(existing.scopes)
            if same_key and covered:
                existing.ts = now
                existing.remote_ip = conn.ip
                existing.silent = existing.silent and silent
                store.save_pending_soon()
                return existing, False
        roles = sorted({role, *(r for e in mine for r in e.roles)})
        merged = sorted({*wanted, *(s for e in mine for s in e.scopes)})
        client = params.client
        request = PendingRequest(
            request_id=str(uuid.uuid4()),
            device_id=proof.device_id,
            public_key=proof.public_key,
            role=role,
            roles=roles,
            scopes=merged,
            ts=now,
            silent=silent,
            is_repair=proof.device_id in store.paired,
            **client_fields(client, conn.ip),
        )
        for superseded in mine:
            del store.pending[superseded.request_id]
            self._broadcast_resolved(superseded, "rejected", now)
        store.pending[request.request_id] = request
        store.save_pending()
        return request, True

    def _commit_approval(self, request: PendingRequest, *, via: str, now: int) -> PairedDevice:
        """Save the approved record, then put it in effect (OSError: nothing changed)."""
        store = self.store
        existing = store.paired.get(request.device_id)
        same_key = existing is not None and existing.public_key == request.public_key
        keep = existing if same_key else None
        record = PairedDevice(
            device_id=request.device_id,
            public_key=request.public_key,
            role=request.role,
            roles=sorted({*request.roles, *(keep.roles if keep else ())}),
            scopes=sorted({*request.scopes, *(keep.scopes if keep else ())}),
            created_at_ms=keep.created_at_ms if keep else now,
            approved_at_ms=now,
            display_name=request.display_name,
            platform=request.platform,
            device_family=request.device_family,
            client_id=request.client_id,
            client_mode=request.client_mode,
            remote_ip=request.remote_ip,
            approved_via=via,
            last_seen_at_ms=keep.last_seen_at_ms if keep else None,
            tokens=list(keep.tokens) if keep else [],
        )
        store.commit_paired({**store.paired, record.device_id: record})
        try:  # the approval is saved: a request left behind is only stale
            store.commit_pending(without(store.pending, {request.request_id}))
        except OSError as err:
            _LOG.error("cannot save device pairing state: %s", err)
        return record

    def _commit_token(self, record: PairedDevice, role: str, token: str, now: int) -> None:
        """Save ``record`` with a new ``role`` token, then put it in effect (OSError: the
        device keeps its previous token, in memory as on disk)."""
        previous = record.token_for(role)
        entry = TokenEntry(
            role=role,
            token_hash=proto.hash_token(token),
            scopes=list(record.scopes) if role == "operator" else [],
            created_at_ms=now,
            last_used_at_ms=previous.last_used_at_ms if previous else None,
        )
        tokens = [t for t in record.tokens if t.role != role] + [entry]
        updated = msgspec.structs.replace(record, tokens=tokens)
        self.store.commit_paired({**self.store.paired, record.device_id: updated})

    # -- events ------------------------------------------------------------------------------------
    def _broadcast(self, event: str, payload: Any) -> None:
        """Send to operators allowed to act on pairing (``operator.pairing`` or admin)."""
        targets = [
            c
            for c in self.gateway.clients
            if c.role == "operator" and scopes.covers(c.scopes, scopes.PAIRING)
        ]
        if targets:
            raw = msgspec.Raw(encoder.encode(payload))
            self.gateway._fan_out(targets, event, raw, msgspec.UNSET)

    def _broadcast_resolved(self, request: PendingRequest, decision: str, now: int) -> None:
        self._broadcast(
            "device.pair.resolved",
            {
                "requestId": request.request_id,
                "deviceId": request.device_id,
                "decision": decision,
                "ts": now,
            },
        )

    def _connections_of(self, device_id: str, role: str | None = None) -> list[Connection]:
        return [
            c
            for c in self.gateway.clients
            if c.device_id == device_id and (role is None or c.role == role)
        ]

    # -- methods -----------------------------------------------------------------------------------
    def _list(self, conn: Connection, params: None) -> dict[str, Any]:
        self.store.prune(_now_ms())
        connected = {c.device_id for c in self.gateway.clients if c.device_id}
        pending = sorted(self.store.pending.values(), key=lambda r: r.ts)
        paired = sorted(self.store.paired.values(), key=lambda d: d.approved_at_ms)
        return {
            "pending": pending,
            "paired": [d.public(connected=d.device_id in connected) for d in paired],
        }

    def _approve(self, conn: Connection, params: RequestIdParams) -> dict[str, Any]:
        now = _now_ms()
        self.store.prune(now)
        request_id = params.request_id.strip()
        request = self.store.pending.get(request_id)
        if request is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown requestId")
        if "operator" in request.roles:
            # The approver must hold every scope it hands out (caller-missing-scope).
            for scope in request.scopes:
                if not scopes.covers(conn.scopes, scope):
                    raise MethodError(codes.INVALID_REQUEST, f"missing scope: {scope}")
        try:
            record = self._commit_approval(request, via="owner", now=now)
        except OSError as err:
            raise _save_failed(err) from None
        _LOG.info("device pairing approved device=%s role=%s", record.device_id, record.role)
        self._broadcast_resolved(request, "approved", now)
        return {"requestId": request_id, "device": record.public()}

    def _reject(self, conn: Connection, params: RequestIdParams) -> dict[str, Any]:
        now = _now_ms()
        self.store.prune(now)
        request_id = params.request_id.strip()
        request = self.store.pending.get(request_id)
        if request is None:
            raise MethodError(codes.INVALID_REQUEST, "unknown requestId")
        try:
            self.store.commit_pending(without(self.store.pending, {request_id}))
        except OSError as err:
            raise _save_failed(err) from None
        _LOG.info("device pairing rejected device=%s", request.device_id)
        self._broadcast_resolved(request, "rejected", now)
        return {"requestId": request_id, "deviceId": request.device_id}

    def _remove(self, conn: Connection, params: DeviceIdParams) -> dict[str, Any]:
        device_id = params.device_id.strip()
        store = self.store
        if device_id not in store.paired:
            raise MethodError(codes.INVALID_REQUEST, "unknown deviceId")
        try:
            store.commit_paired(without(store.paired, {device_id}))
        except OSError as err:
            raise _save_failed(err) from None
        requests = {r.request_id for r in store.pending.values() if r.device_id == device_id}
        if requests:
            try:  # the removal is saved; a request left behind asks again, no more
                store.commit_pending(without(store.pending, requests))
            except OSError as err:
                _LOG.error("cannot save device pairing state: %s", err)
        _LOG.info("device pairing removed device=%s", device_id)
        self._disconnect_later(self._connections_of(device_id), CLOSE_DEVICE_REMOVED)
        return {"deviceId": device_id}

    def _revoke(self, conn: Connection, params: TokenRevokeParams) -> dict[str, Any]:
        device_id = params.device_id.strip()
        role = params.role.strip()
        record = self.store.paired.get(device_id)
        entry = record.token_for(role) if record else None
        if record is None or entry is None:
            raise MethodError(codes.INVALID_REQUEST, "device token revocation denied")
        now = _now_ms()
        # nothing left that a token could match; in effect only once saved
        revoked = msgspec.structs.replace(entry, token_hash="", revoked_at_ms=now)
        tokens = [revoked if t is entry else t for t in record.tokens]
        try:
            self.store.commit_paired(
                {**self.store.paired, device_id: msgspec.structs.replace(record, tokens=tokens)}
            )
        except OSError as err:
            raise _save_failed(err) from None
        _LOG.info("device token revoked device=%s role=%s", device_id, role)
        self._disconnect_later(self._connections_of(device_id, role), CLOSE_TOKEN_REVOKED)
        return {"deviceId": device_id, "role": role, "revokedAtMs": now}

    def _disconnect_later(self, targets: list[Connection], reason: str) -> None:
        # After the response is on its way (the caller may be one of them).
        def close_all() -> None:
            for target in targets:
                target.close(codes.CLOSE_POLICY_VIOLATION, reason)

        if targets:
            asyncio.get_running_loop().call_soon(close_all)
