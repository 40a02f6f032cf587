"""The gateway's shared state: who is connected, presence, health, ticks, broadcasts.

One :class:`Gateway` per process. Connections report to it (opened, connected, closed);
it owns the method table, the cached health and heartbeat payloads (encoded once, reused by
every request until they change), the per-peer limits, and the graceful drain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..profiles.names import display_name
from ..protocol import PROTOCOL_VERSION, codes, limits, scopes
from ..protocol.connect import (
    Features,
    HelloAuth,
    HelloOk,
    Policy,
    ServerInfo,
    Snapshot,
)
from ..protocol.device import DeviceAccepted
from ..protocol.frames import StateVersion, encoder
from ..protocol.handshake import Accepted, Phase
from ..protocol.proxy import identify_proxy_user
from . import chat, device, devices, nodes
from .channels.registry import ChannelRegistry
from .channels.webchat import WebchatChannel
from .connection import Connection
from .methods import Method, MethodError, NoParams
from .presence import PresenceEntry
from .ws import WsPeer

if TYPE_CHECKING:
    from .settings import GatewaySettings

_LOG = logging.getLogger("openclaw.gateway")
EVENTS = (
    "connect.challenge",
    "tick",
    "health",
    "presence",
    "shutdown",
    *devices.EVENTS,
    *nodes.EVENTS,
    *chat.EVENTS,
)
PRESENCE_COALESCE_S = 0.05
FAN_OUT_SLICE = 64


class HealthParams(msgspec.Struct, frozen=True):
    probe: bool = False


class Gateway:
    """Process-wide gateway state and the core methods."""

    def __init__(self, settings: GatewaySettings, *, tls_fingerprint: str | None = None) -> None:
        self.settings = settings
        self.tls_fingerprint = tls_fingerprint
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.ready = False
        self.draining = False
        self.port = settings.port
        self.hostname = socket.gethostname()
        self.instance_id = os.urandom(8).hex()
        self.throttle = limits.FailedAuthThrottle()
        self.sockets: set[Connection] = set()
        self.clients: set[Connection] = set()
        self._pending_by_ip: Counter[str] = Counter()
        self.presence_version = 1
        self._presence_timer: asyncio.TimerHandle | None = None
        self.health_version = 1
        self._health: msgspec.Raw | None = None
        self._health_checks: dict[str, Any] = {}
        self._last_tick_ms = int(self.started_at * 1000)
        self._heartbeat: msgspec.Raw = self._encode_heartbeat()
        self.max_frame_size = settings.max_payload
        self.methods: dict[str, Method] = {
            "health": Method(self._health_method, None, HealthParams),
            "status": Method(self._status_method, scopes.READ),
            "system-presence": Method(self._presence_method, scopes.READ),
            "last-heartbeat": Method(self._last_heartbeat_method, scopes.READ),
            "gateway.identity.get": Method(self._identity_method, scopes.READ),
        }
        self.devices = devices.DeviceRegistry(
            self,
            settings.paths.state_dir,
            auto_approve_local=settings.config.gateway.nodes.pairing.auto_approve_local,
        )
        self.methods.update(self.devices.methods())
        self.nodes = nodes.NodeRegistry(self)
        self.methods.update(self.nodes.methods())
        self.chat = chat.ChatService(self)  # sessions, agent runs, chat.* (gateway/chat.py)
        self.methods.update(self.chat.methods())
        self.channels = ChannelRegistry(
            settings.config.channels,
            self.chat.respond,
            on_change=self.invalidate_health,
            state_dir=settings.paths.state_dir,
        )
        self.channels.add(WebchatChannel(self.chat.post))
        self.methods.update(self.channels.methods())  # send
        self.features = Features(methods=sorted(self.methods), events=list(EVENTS))

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._started_mono) * 1000)

    def mark_ready(self) -> None:
        self.ready = True
        self.refresh_health(probe=True)

    async def run_ticks(self) -> None:
        """Send ``tick`` to every client each tick interval and keep health fresh."""
        interval = self.settings.tick_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self._last_tick_ms = int(time.time() * 1000)
            self._heartbeat = self._encode_heartbeat()
            self.broadcast("tick", msgspec.Raw(b'{"ts":%d}' % self._last_tick_ms))
            self.refresh_health(probe=True)

    def drain(self, reason: str, restart_expected_ms: int | None = None) -> None:
        """Stop accepting connects, tell every client why, and close them with 1012."""
        self.ready = False
        self.draining = True
        self.chat.shutdown()  # runs in flight end as aborted, their messages stored
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        payload: dict[str, Any] = {"reason": reason}
        if restart_expected_ms is not None:
            payload["restartExpectedMs"] = restart_expected_ms
        for conn in list(self.sockets):
            if conn.phase is Phase.CONNECTED:
                conn.send_event("shutdown", payload)
            conn.close(codes.CLOSE_SERVICE_RESTART, "gateway shutting down")

    # -- connection bookkeeping ------------------------------------------------------------------
    def admit_websocket(
        self, transport: asyncio.Transport, headers: Mapping[str, str] | None = None
    ) -> WsPeer | None:
        """A peer for an upgrade request, or None when this address has too many pending.

        ``headers`` (names lowercased) are checked for a trusted proxy's identity headers
        (protocol/proxy.py); headers that do not count are logged with the peer and dropped.
        """
        peer_addr = transport.get_extra_info("peername")
        ip = str(peer_addr[0]) if peer_addr else "unknown"
        if self._pending_by_ip[ip] >= limits.MAX_UNAUTHENTICATED_PER_PEER:
            _LOG.warning("refusing upgrade from %s: too many unauthenticated sockets", ip)
            return None
        proxy_user = None
        if headers:
            verdict = identify_proxy_user(headers, ip, self.settings.auth.proxy)
            proxy_user = verdict.user
            if verdict.ignored:
                _LOG.warning(
                    "ignoring identity header(s) %s from %s: %s",
                    ", ".join(verdict.ignored),
                    ip,
                    verdict.reason,
                )
        # The browser Origin rule (protocol/origin.py) needs these once connect names the client.
        origin = (headers.get("origin"), headers.get("host")) if headers else (None, None)
        return WsPeer(
            lambda ws: Connection(self, ws, ip, proxy_user, origin=origin),
            limits.PRE_CONNECT_MAX_FRAME,
        )

    def socket_opened(self, conn: Connection) -> None:
        self.sockets.add(conn)
        self._pending_by_ip[conn.ip] += 1

    def client_connected(self, conn: Connection) -> None:
        self._release_pending(conn.ip)
        self.clients.add(conn)
        self.nodes.node_connected(conn)
        self._presence_changed()

    def socket_closed(self, conn: Connection) -> None:
        self.sockets.discard(conn)
        if conn in self.clients:
            self.clients.discard(conn)
            self.nodes.node_closed(conn)
            self._presence_changed()
        else:
            self._release_pending(conn.ip)

    def pending_count(self) -> int:
        return sum(self._pending_by_ip.values())

    def _release_pending(self, ip: str) -> None:
        left = self._pending_by_ip[ip] - 1
        if left > 0:
            self._pending_by_ip[ip] = left
        else:
            del self._pending_by_ip[ip]

    # -- broadcasts ------------------------------------------------------------------------------
    def broadcast(
        self, event: str, payload: Any, *, versioned: bool = False, scope: str | None = None
    ) -> None:
        """Send an event to every connected client; drop clients that stopped reading.

        With ``scope``, only operators holding it get the event (``agent``/``chat``: not
        nodes, not probes).

        The payload is encoded once; each client only gets its own ``seq`` wrapped around it.
        Large fan-outs go out in slices, one per loop turn, so requests from busy clients are
        not stuck behind a thousand socket writes.
        """
        if not isinstance(payload, msgspec.Raw):
            payload = msgspec.Raw(encoder.encode(payload))
        state_version = self.state_version() if versioned else msgspec.UNSET
        if scope is None:
            targets = list(self.clients)
        else:
            targets = [
                c
                for c in self.clients
                if c.role == "operator" and c.mode != "probe" and scopes.covers(c.scopes, scope)
            ]
        self._fan_out(targets, event, payload, state_version)

    def _fan_out(
        self,
        targets: list[Connection],
        event: str,
        payload: msgspec.Raw,
        state_version: StateVersion | msgspec.UnsetType,
    ) -> None:
        limit = self.settings.max_buffered_bytes
        for conn in targets[:FAN_OUT_SLICE]:
            if conn.phase is not Phase.CONNECTED:
                continue  # left (or is leaving) since the broadcast began
            if conn.peer.buffered_bytes() > limit:
                conn.close(codes.CLOSE_POLICY_VIOLATION, "slow consumer")
                continue
            conn.send_event(event, payload, state_version)
        if len(targets) > FAN_OUT_SLICE:
            asyncio.get_running_loop().call_soon(
                self._fan_out, targets[FAN_OUT_SLICE:], event, payload, state_version
            )

    def state_version(self) -> StateVersion:
        return StateVersion(presence=self.presence_version, health=self.health_version)

    def _presence_changed(self) -> None:
        self.presence_version += 1
        if self._presence_timer is None and not self.draining:
            # Coalesce: a burst of connects costs one broadcast, not one per connect
            # (each carries the whole list, so per-connect broadcasts would be O(n^2)).
            self._presence_timer = asyncio.get_running_loop().call_later(
                PRESENCE_COALESCE_S, self._broadcast_presence
            )

    def _broadcast_presence(self) -> None:
        self._presence_timer = None
        # The cached health carries connection counts: refresh it once per burst of
        # connects, here, rather than on every connect's path.
        self._health = None
        if not self.draining:
            self.broadcast("presence", {"presence": self.presence()}, versioned=True)

    # -- payloads ----------------------------------------------------------------------------------
    def hello(self, conn: Connection, accepted: Accepted) -> HelloOk:
        operator = accepted.role == "operator" and conn.mode != "probe"
        settings = self.settings
        return HelloOk(
            protocol=accepted.protocol,
            server=ServerInfo(
                version=settings.version,
                conn_id=conn.conn_id,
                host=self.hostname,
                profile=settings.paths.display_name,
            ),
            features=self.features,
            snapshot=Snapshot(
                presence=self.presence() if operator else [],
                health=self.health_payload(),
                state_version=self.state_version(),
                uptime_ms=self.uptime_ms,
                config_path=str(settings.paths.config_path) if operator else msgspec.UNSET,
                state_dir=str(settings.paths.state_dir) if operator else msgspec.UNSET,
                auth_mode=settings.auth.mode,
            ),
            auth=HelloAuth(
                role=accepted.role,
                scopes=sorted(accepted.scopes),
                method=accepted.method,
                **_issued_token(accepted),
            ),
            policy=Policy(
                max_payload=settings.max_payload,
                max_buffered_bytes=settings.max_buffered_bytes,
                tick_interval_ms=settings.tick_interval_ms,
            ),
        )

    def presence(self) -> list[PresenceEntry]:
        """The gateway itself, then one entry per connected client (built once at connect)."""
        entries = [
            PresenceEntry(
                instance_id=self.instance_id,
                mode="gateway",
                reason="self",
                ts=int(time.time() * 1000),
                host=self.hostname,
                version=self.settings.version,
                platform=sys.platform,
            )
        ]
        entries.extend(conn.presence for conn in self.clients if conn.presence is not None)
        return entries

    def connection_counts(self) -> dict[str, int]:
        nodes = sum(1 for c in self.clients if c.role == "node")
        return {
            "operators": len(self.clients) - nodes,
            "nodes": nodes,
            "pending": self.pending_count(),
        }

    def refresh_health(self, *, probe: bool) -> msgspec.Raw:
        """Recompute the health snapshot; ``probe`` also re-runs the checks that touch disk."""
        started = time.perf_counter()
        if probe or not self._health_checks:
            state_dir = self.settings.paths.state_dir
            self._health_checks = {
                "stateDirWritable": os.access(state_dir, os.W_OK),
                "ready": self.ready,
            }
        ok = all(self._health_checks.values())
        snapshot: dict[str, Any] = {
            "ok": ok,
            "status": "ok" if ok else "degraded",
            "ts": int(time.time() * 1000),
            "durationMs": 0,
            "profile": self.settings.paths.display_name,
            "port": self.port,
            "pid": os.getpid(),
            "version": self.settings.version,
            "uptimeMs": self.uptime_ms,
            "connections": self.connection_counts(),
            "checks": self._health_checks,
            "channels": self.channels.health(),
            "nodes": self.nodes.health(),
        }
        snapshot["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
        previous_ok = self._last_health_ok
        self._health = msgspec.Raw(encoder.encode(snapshot))
        if previous_ok is not None and previous_ok != ok:
            self.health_version += 1
            self.broadcast("health", self._health, versioned=True)
        self._last_health_ok = ok
        return self._health

    _last_health_ok: bool | None = None

    def invalidate_health(self) -> None:
        """Drop the cached health snapshot (node approvals changed); rebuilt on next ask."""
        self._health = None

    def health_payload(self) -> msgspec.Raw:
        return self._health if self._health is not None else self.refresh_health(probe=False)

    def _encode_heartbeat(self) -> msgspec.Raw:
        return msgspec.Raw(
            b'{"ts":%d,"status":"ok","intervalMs":%d}'
            % (self._last_tick_ms, self.settings.tick_interval_ms)
        )

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """The HTTP probe answers of protocol.md's table."""
        if path in ("/health", "/healthz"):
            return 200, {"ok": True, "status": "live"}
        if path in ("/ready", "/readyz"):
            if self.ready:
                # connections: what `openclaw profiles list` shows, at no extra round trip.
                return 200, {
                    "ready": True,
                    "failing": [],
                    "uptimeMs": self.uptime_ms,
                    "connections": self.connection_counts(),
                }
            return 503, {"ready": False, "failing": ["draining" if self.draining else "starting"]}
        if self.draining or not self.ready:
            status = "draining" if self.draining else "starting"
            return 503, {"ok": False, "status": status}
        return 200, {
            "ok": True,
            "status": "started",
            "version": self.settings.version,
            "uptimeMs": self.uptime_ms,
        }

    # -- core methods ------------------------------------------------------------------------------
    def _health_method(self, conn: Connection, params: HealthParams) -> msgspec.Raw:
        return self.refresh_health(probe=True) if params.probe else self.health_payload()

    def _status_method(self, conn: Connection, params: None) -> dict[str, Any]:
        settings = self.settings
        return {
            "ok": True,
            "profile": settings.paths.display_name,
            "pid": os.getpid(),
            "port": self.port,
            "bind": settings.bind,
            "hosts": list(settings.hosts),
            "version": settings.version,
            "protocol": PROTOCOL_VERSION,
            "startedAt": int(self.started_at * 1000),
            "uptimeMs": self.uptime_ms,
            "stateDir": str(settings.paths.state_dir),
            "configPath": str(settings.paths.config_path),
            "authMode": settings.auth.mode,
            "connections": self.connection_counts(),
            "nodes": self.nodes.counts(),
            "channels": self.channels.states(),
            "chat": self.chat.counts(),
            "memory": {"rssBytes": rss_bytes()},
            "tls": {
                "enabled": self.tls_fingerprint is not None,
                "fingerprintSha256": self.tls_fingerprint,
            },
        }

    def _presence_method(self, conn: Connection, params: None) -> list[PresenceEntry]:
        return self.presence()

    def _last_heartbeat_method(self, conn: Connection, params: None) -> msgspec.Raw:
        return self._heartbeat

    def _identity_method(self, conn: Connection, params: None) -> dict[str, Any]:
        try:
            ident = device.load_or_create(self.settings.paths.gateway_key_path)
        except OSError as err:
            message = f"device identity unavailable: {err.strerror}"
            raise MethodError(codes.UNAVAILABLE, message) from None
        return {
            "deviceId": ident.device_id,
            "publicKey": ident.public_key,
            "instanceId": self.instance_id,
            "profile": display_name(self.settings.paths.name),
            "host": self.hostname,
            "port": self.port,
            "version": self.settings.version,
        }


def _issued_token(accepted: Accepted) -> dict[str, Any]:
    """``deviceToken``/``issuedAtMs`` for hello-ok when the connect minted a device token."""
    if isinstance(accepted, DeviceAccepted) and accepted.device_token:
        return {"device_token": accepted.device_token, "issued_at_ms": accepted.issued_at_ms}
    return {}


def rss_bytes() -> int:
    """Resident set size of this process, from /proc when available."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


__all__ = ["Gateway", "NoParams"]
