"""One WebSocket client of the gateway: its handshake, then its requests.

The hot path is :meth:`Connection.on_message` once connected: one msgspec decode of the
frame (params stay raw), one dict lookup in the method table, the handler, one encode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from ..protocol import codes, scopes
from ..protocol.connect import Challenge, ConnectParams
from ..protocol.device import DeviceAccepted
from ..protocol.frames import (
    DECODE_ERRORS,
    UNSET,
    ErrorShape,
    EventFrame,
    ResponseFrame,
    StateVersion,
    describe_validation,
    encoder,
    error_response,
    request_decoder,
)
from ..protocol.handshake import Accepted, Phase, Rejected, evaluate_connect
from ..protocol.origin import (
    ORIGIN_NOT_ALLOWED_CODE,
    ORIGIN_NOT_ALLOWED_MESSAGE,
    check_browser_origin,
    is_browser_client,
)
from ..protocol.proxy import ProxyUser
from .binding import ip_is_loopback
from .methods import MethodError
from .presence import PresenceEntry

if TYPE_CHECKING:
    from .hub import Gateway
    from .ws import WsPeer

_LOG = logging.getLogger("openclaw.gateway")
_connect_decoder = msgspec.json.Decoder(ConnectParams)


class Connection:
    """Per-socket session state; implements :class:`.ws.MessageSink`."""

    __slots__ = (
        "client_id",
        "conn_id",
        "connected_at",
        "device_id",
        "gateway",
        "ip",
        "mode",
        "nonce",
        "origin",
        "params",
        "peer",
        "phase",
        "presence",
        "proxy_user",
        "role",
        "scopes",
        "seq",
        "tasks",
        "timer",
    )

    def __init__(
        self,
        gateway: Gateway,
        peer: WsPeer,
        ip: str,
        proxy_user: ProxyUser | None = None,
        *,
        origin: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.gateway = gateway
        self.peer = peer
        self.ip = ip
        self.proxy_user = proxy_user  # who a trusted proxy vouched for on the upgrade
        self.origin = origin  # the upgrade's (Origin, Host) headers, for browser clients
        self.conn_id = os.urandom(16).hex()  # opaque; cheaper than a uuid4 per connect
        self.nonce = ""  # this socket's connect.challenge nonce, which a device signs
        self.device_id: str | None = None
        self.phase = Phase.AWAITING_CONNECT
        self.scopes: frozenset[str] = frozenset()
        self.role = ""
        self.client_id = ""
        self.mode = ""
        self.params: ConnectParams | None = None
        self.presence: PresenceEntry | None = None
        self.connected_at = 0.0
        self.seq = 0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Future[Any]] | None = None

    # -- MessageSink -----------------------------------------------------------------------
    def on_open(self) -> None:
        self.gateway.socket_opened(self)
        challenge = Challenge(nonce=str(uuid.uuid4()), ts=int(time.time() * 1000))
        self.nonce = challenge.nonce
        self.peer.send_text(
            encoder.encode(EventFrame(event="connect.challenge", payload=challenge))
        )
        self.timer = asyncio.get_running_loop().call_later(
            self.gateway.settings.handshake_timeout, self._handshake_timed_out
        )

    def on_message(self, data: bytes) -> None:
        if self.phase is Phase.CONNECTED:
            self._on_request(data)
        elif self.phase is Phase.AWAITING_CONNECT:
            self._on_connect(data)

    def on_closed(self) -> None:
        self.phase = Phase.CLOSING
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.tasks:
            for task in self.tasks:
                task.cancel()
        self.gateway.socket_closed(self)

    # -- sending -----------------------------------------------------------------------------
    def send_event(
        self, event: str, payload: Any, state_version: StateVersion | msgspec.UnsetType = UNSET
    ) -> None:
        """Send an event with this connection's next sequence number."""
        self.seq += 1
        self.peer.send_text(
            encoder.encode(
                EventFrame(event=event, payload=payload, seq=self.seq, state_version=state_version)
            )
        )

    def send_response(self, frame: ResponseFrame) -> None:
        self.peer.send_text(encoder.encode(frame))

    def close(self, code: int, reason: str = "") -> None:
        self.phase = Phase.CLOSING
        self.peer.close(code, reason)

    # -- handshake ---------------------------------------------------------------------------
    def _on_connect(self, data: bytes) -> None:
        try:
            request = request_decoder.decode(data)
        except DECODE_ERRORS:
            self.close(codes.CLOSE_POLICY_VIOLATION, "invalid handshake")
            return
        if request.method != "connect":
            self._reject(
                error_response(
                    request.id,
                    codes.INVALID_REQUEST,
                    "invalid handshake: first request must be connect",
                ),
                codes.CLOSE_POLICY_VIOLATION,
            )
            return
        try:
            params = _connect_decoder.decode(request.params)
        except RecursionError:
            self.close(codes.CLOSE_POLICY_VIOLATION, "invalid handshake")
            return
        except msgspec.ValidationError as err:
            self._reject(
                error_response(
                    request.id,
                    codes.INVALID_REQUEST,
                    f"invalid connect params: {describe_validation(err)}",
                ),
                codes.CLOSE_POLICY_VIOLATION,
            )
            return
        gateway = self.gateway
        if self.origin[0] or is_browser_client(params.client.id, params.client.mode):
            # Before any credential is looked at, as the reference does (protocol/origin.py).
            # Any client whose upgrade carries an Origin is a browser page, whatever client id
            # it claims: else any web site could drive a loopback gateway as "cli" (CSWSH).
            reason = check_browser_origin(
                self.origin[0],
                self.origin[1],
                local=ip_is_loopback(self.ip) and self.proxy_user is None,
                allowed=gateway.settings.config.gateway.control_ui.allowed_origins,
            )
            if reason is not None:
                _LOG.warning(
                    "refused a browser connect from %s: %s (origin %r)",
                    self.ip,
                    reason,
                    self.origin[0],
                )
                self._reject(
                    error_response(
                        request.id,
                        codes.INVALID_REQUEST,
                        ORIGIN_NOT_ALLOWED_MESSAGE,
                        details={"code": ORIGIN_NOT_ALLOWED_CODE, "reason": reason},
                    ),
                    codes.CLOSE_POLICY_VIOLATION,
                )
                return
        decision = evaluate_connect(
            params,
            gateway.settings.auth,
            ready=gateway.ready,
            local=ip_is_loopback(self.ip),
            proxy_user=self.proxy_user,
        )
        if params.device is not None:
            decision = gateway.devices.authorize(
                self,
                params,
                decision,
                nonce=self.nonce,
                local=ip_is_loopback(self.ip) and self.proxy_user is None,
            )
        if isinstance(decision, Rejected):
            frame = ResponseFrame(id=request.id, ok=False, error=decision.error)
            if decision.auth_failure:
                delay = gateway.throttle.record_failure(self.ip, time.monotonic())
                _LOG.warning(
                    "auth failed from %s (client %s): %s; next reply delayed %.1fs",
                    self.ip,
                    params.client.id,
                    decision.error.code,
                    delay,
                )
                self.phase = Phase.CLOSING
                asyncio.get_running_loop().call_later(
                    delay, self._reject, frame, decision.close_code
                )
            else:
                self._reject(frame, decision.close_code)
            return
        if self.proxy_user is not None and decision.method == self.proxy_user.method:
            _LOG.info(
                "connect from %s authenticated by %s as %s",
                self.ip,
                decision.method,
                self.proxy_user.user,
            )
        self._accept(request.id, params, decision)

    def _accept(self, request_id: str, params: ConnectParams, accepted: Accepted) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        gateway = self.gateway
        gateway.throttle.record_success(self.ip)
        self.phase = Phase.CONNECTED
        self.params = params
        self.role = accepted.role
        self.scopes = accepted.scopes
        self.client_id = params.client.id
        self.device_id = accepted.device_id if isinstance(accepted, DeviceAccepted) else None
        self.mode = params.client.mode
        self.connected_at = time.time()
        self.peer.limit = gateway.settings.max_payload
        self.presence = self._presence_entry(params)
        hello = gateway.hello(self, accepted)
        self.send_response(ResponseFrame(id=request_id, ok=True, payload=hello))
        gateway.client_connected(self)

    def _presence_entry(self, params: ConnectParams) -> PresenceEntry:
        client = params.client
        return PresenceEntry(
            instance_id=client.instance_id or self.conn_id,
            mode=client.mode,
            reason="connect",
            ts=int(self.connected_at * 1000),
            ip=(self.proxy_user.forwarded_for if self.proxy_user else None) or self.ip,
            version=client.version,
            platform=client.platform,
            device_family=client.device_family,
            model_identifier=client.model_identifier,
            client_id=client.id,
            display_name=client.display_name,
            roles=[self.role],
            scopes=sorted(self.scopes),
        )

    def _reject(self, frame: ResponseFrame, close_code: int) -> None:
        self.send_response(frame)
        assert isinstance(frame.error, ErrorShape)
        self.close(close_code, frame.error.message)

    def _handshake_timed_out(self) -> None:
        self.timer = None
        if self.phase is Phase.AWAITING_CONNECT:
            self.close(codes.CLOSE_POLICY_VIOLATION, "handshake timeout")

    # -- requests ------------------------------------------------------------------------------
    def _on_request(self, data: bytes) -> None:
        try:
            request = request_decoder.decode(data)
        except DECODE_ERRORS:
            self.close(codes.CLOSE_POLICY_VIOLATION, "invalid request frame")
            return
        method = self.gateway.methods.get(request.method)
        if method is None:
            self.send_response(
                error_response(
                    request.id, codes.INVALID_REQUEST, f"unknown method: {request.method}"
                )
            )
            return
        if not scopes.covers(self.scopes, method.scope):
            self.send_response(_missing_scope(request.id, method.scope))
            return
        try:
            params = method.decode(request.params)
            if method.with_request_id:  # it may answer early (methods.py)
                result = method.handler(self, params, request.id)
            else:
                result = method.handler(self, params)
        except msgspec.ValidationError as err:
            self.send_response(
                error_response(
                    request.id,
                    codes.INVALID_REQUEST,
                    f"invalid {request.method} params: {describe_validation(err)}",
                )
            )
            return
        except MethodError as err:
            self.send_response(err.response(request.id))
            return
        except RecursionError:
            self.send_response(
                error_response(request.id, codes.INVALID_REQUEST, "params nested too deeply")
            )
            return
        except Exception:  # a failing handler (disk full...) answers; never closes with 1011
            _LOG.exception("%s failed", request.method)
            self.send_response(
                error_response(request.id, codes.UNAVAILABLE, "internal error", retryable=True)
            )
            return
        if method.is_async:
            self._track(asyncio.ensure_future(result), request.id)
        else:
            self.send_response(ResponseFrame(id=request.id, ok=True, payload=result))

    def _track(self, task: asyncio.Future[Any], request_id: str) -> None:
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)

        def done(fut: asyncio.Future[Any]) -> None:
            assert self.tasks is not None
            self.tasks.discard(fut)
            if fut.cancelled() or self.phase is not Phase.CONNECTED:
                return
            err = fut.exception()
            if isinstance(err, MethodError):
                self.send_response(err.response(request_id))
            elif err is not None:
                _LOG.error("handler failed: %r", err)
                self.send_response(
                    error_response(request_id, codes.UNAVAILABLE, "internal error", retryable=True)
                )
            else:
                self.send_response(ResponseFrame(id=request_id, ok=True, payload=fut.result()))

        task.add_done_callback(done)


def _missing_scope(request_id: str, scope: str | None) -> ResponseFrame:
    return error_response(
        request_id,
        codes.FORBIDDEN,
        f"missing scope: {scope}",
        details={"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]},
    )
