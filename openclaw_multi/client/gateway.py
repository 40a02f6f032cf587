"""An async client for one gateway: the handshake, pipelined calls, and events (protocol.md).

Theory of operation: :meth:`GatewayClient.connect` opens the WebSocket (picows), waits for
``connect.challenge``, sends the ``connect`` request and waits for ``hello-ok``. After that
any number of :meth:`~GatewayClient.call` may be in flight: each request id maps to a future
in ``_pending``, and a response resolves the future with its id (responses may come back out
of order). Events go to :attr:`~GatewayClient.events`. A method that answers twice (``agent``:
``status:"accepted"`` at once, its outcome later, both with the request id) is called with
:meth:`~GatewayClient.call_final`, which keeps waiting past the first answer. Every
incoming message is decoded once with
:data:`~openclaw_multi.protocol.frames.server_frame_decoder`; payloads stay raw until a
caller asks for them, so ``call_raw`` hands back the gateway's own bytes.

All failures are :class:`~openclaw_multi.errors.GatewayError` subclasses with a one-line
message naming the URL; nothing from picows or the socket layer escapes. When the link
goes down, every waiting call fails with the reason and later calls raise it at once.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
import ssl
import sys
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import msgspec
from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSHandshakeError,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from .. import __version__
from ..errors import (
    GatewayCallFailed,
    GatewayError,
    GatewayProtocolError,
    GatewayTlsError,
    GatewayUnreachable,
    UsageError,
)
from ..protocol import PROTOCOL_VERSION
from ..protocol.connect import (
    AuthParams,
    Challenge,
    ClientInfo,
    ConnectParams,
    DeviceParams,
    HelloOk,
    Role,
)
from ..protocol.frames import UNSET, ErrorShape, IncomingEvent, IncomingResponse, encoder
from ..protocol.frames import server_frame_decoder as _frame_decoder
from ..protocol.tls import (
    TlsPinMismatch,
    certificate_fingerprint,
    format_fingerprint,
    normalize_fingerprint,
    pinned_client_context,
)

if TYPE_CHECKING:
    from .identity import DeviceAuthStore, DeviceIdentity

__all__ = ["DEFAULT_SCOPES", "GatewayClient"]

_LOG = logging.getLogger("openclaw.client")
_LOG.addHandler(logging.NullHandler())  # a library stays quiet unless the app configures logs
_WS_LOG = logging.getLogger("openclaw.client.ws")

DEFAULT_SCOPES: Final = ("operator.read", "operator.write", "operator.admin")
EVENT_QUEUE_SIZE: Final = 1024
"""Events kept for a reader; past this the oldest are dropped (``events_dropped`` counts)."""
CLOSE_WAIT_S: Final = 2.0
"""How long to wait for the server's close (and its code) after a rejection or our close."""
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

_challenge_decoder = msgspec.json.Decoder(Challenge)


class _Status(msgspec.Struct):
    """Just enough of a payload to tell an interim ``accepted`` answer from a final one."""

    status: Any = None


_status_decoder = msgspec.json.Decoder(_Status)
_hello_decoder = msgspec.json.Decoder(HelloOk)


class _Request(msgspec.Struct, frozen=True, omit_defaults=True, tag="req", tag_field="type"):
    """An outgoing ``req``; ``params`` is left out when there are none (``params?``)."""

    id: str
    method: str
    params: Any = UNSET


def _without_nulls(value: Any) -> Any:
    # ConnectParams encodes unset optional fields as null; the reference gateway's schema
    # types them as "absent or a value", so a null would be refused there. Once per link.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _close_code_int(code: object) -> int:
    return int(code.value) if isinstance(code, WSCloseCode) else int(code)  # type: ignore[call-overload]


def _describe_os_error(err: OSError) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve host ({err.strerror or err})"
    if isinstance(err, TimeoutError) or err.errno == errno.ETIMEDOUT:
        return "connection timed out"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    text = err.strerror or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


class _Listener(WSListener):
    """picows callbacks, forwarded to the client that owns the link."""

    def __init__(self, client: GatewayClient) -> None:
        super().__init__()
        self._client = client

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._client._on_open(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self._client._on_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._client._on_disconnected(transport)


class GatewayClient:
    """One authenticated operator (or node/probe) link to a gateway.

    Create it with :meth:`connect`; use it as an async context manager or call
    :meth:`close`.

    Attributes:
        url: The gateway's WebSocket URL.
        hello: The decoded ``hello-ok`` payload (protocol, features, snapshot, policy).
        events: Events received after the handshake, oldest first (bounded; see
            ``events_dropped``).
        event_handler: When set, each later event is handed to it at once, in the socket's
            callback, instead of being queued (a node host answers invokes without waiting
            for a loop turn). It must not block; an exception it raises is logged.
        close_code: The close code the gateway sent, once the link is closed by it.
        close_reason: The close reason that came with it.
    """

    hello: HelloOk

    def __init__(self, url: str, tls_fingerprint: str | None = None) -> None:
        """Internal: use :meth:`connect`."""
        loop = asyncio.get_running_loop()
        self.url = url
        self.tls_fingerprint = tls_fingerprint
        self.events: asyncio.Queue[IncomingEvent] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.events_dropped = 0
        self.event_handler: Callable[[IncomingEvent], None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._transport: WSTransport | None = None
        self._pending: dict[str, asyncio.Future[IncomingResponse]] = {}
        # Requests made by call_final: what to do with their interim "accepted" answer.
        self._interim: dict[str, Callable[[Any], None]] = {}
        self._ids = itertools.count(1)
        self._challenge: asyncio.Future[Challenge] = loop.create_future()
        # Nobody awaits the challenge if the link dies first; do not log "never retrieved".
        self._challenge.add_done_callback(_consume_exception)
        self._closed = asyncio.Event()
        self._failure: GatewayError | None = None
        self._closing = False
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0

    # -- public API --------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        password: str | None = None,
        client_id: str = "cli",
        mode: str = "cli",
        role: str = "operator",
        scopes: Iterable[str] = DEFAULT_SCOPES,
        timeout: float = 10.0,
        client_version: str = __version__,
        tls_fingerprint: str | None = None,
        device: DeviceIdentity | None = None,
        device_token: str | None = None,
        device_auth: DeviceAuthStore | None = None,
        display_name: str | None = None,
        caps: Iterable[str] = (),
        commands: Iterable[str] = (),
        path_env: str | None = None,
    ) -> GatewayClient:
        """Open a link and complete the handshake.

        Args:
            url: ``ws://host:port/`` or ``wss://...``.
            token: Shared gateway token, if the gateway wants one.
            password: Shared gateway password, if the gateway wants one.
            client_id: ``client.id`` (one of protocol.md's known ids).
            mode: ``client.mode``.
            role: ``operator`` or ``node``.
            scopes: Operator scopes to ask for.
            timeout: Seconds for the whole handshake (TCP, upgrade, challenge, hello).
            client_version: ``client.version``.
            tls_fingerprint: For ``wss://``: the SHA-256 of the gateway's certificate
                (``AA:BB:...`` or hex). The chain is then not verified, but the handshake
                fails unless the certificate has exactly this fingerprint. Without it a
                ``wss://`` certificate is verified against the system CAs.
            device: This client's key pair: the connect then carries a ``device`` block,
                the v3 string signed over the challenge nonce and ``ts``.
            device_token: A device token to present (``auth.deviceToken``).
            device_auth: Where this device's tokens are kept: with no token, password or
                ``device_token``, the one stored for this URL and role is presented; a
                ``deviceToken`` in ``hello-ok`` is stored; a stored token the gateway
                refuses (``AUTH_DEVICE_TOKEN_MISMATCH``) is forgotten.
            display_name: ``client.displayName`` (how operators see a node).
            caps: A node's capability groups (``caps``).
            commands: The commands a node serves (``commands``).
            path_env: A node's ``PATH`` (``pathEnv``).

        Returns:
            A connected client; ``hello`` holds the decoded ``hello-ok``.

        Raises:
            GatewayUnreachable: Refused, timed out, or closed before answering.
            GatewayCallFailed: The gateway rejected the connect (``close_code`` set when
                the socket was closed with one).
            GatewayProtocolError: The gateway sent something that is not protocol.
            GatewayTlsError: The certificate is not the pinned one, or (unpinned) not
                trusted; nothing was sent.
            UsageError: ``url`` is not a ws:// or wss:// URL, or a pin without wss://.
        """
        if tls_fingerprint is not None and not url.lower().startswith("wss://"):
            raise UsageError("a TLS fingerprint needs a wss:// gateway url")
        try:
            info = msgspec.convert(
                {
                    "id": client_id,
                    "version": client_version,
                    "platform": sys.platform,
                    "mode": mode,
                    "displayName": display_name,
                },
                ClientInfo,
            )
        except msgspec.ValidationError as err:
            raise UsageError(f"invalid client identity: {err}") from None
        if role not in ("operator", "node"):
            raise UsageError(f"invalid role {role!r} (use operator or node)")
        stored_token = None
        if (
            device is not None
            and device_auth is not None
            and not (token or password or device_token)
        ):
            stored_token = device_token = device_auth.load(url, role)
        params = ConnectParams(
            min_protocol=PROTOCOL_VERSION,
            max_protocol=PROTOCOL_VERSION,
            client=info,
            role=cast(Role, role),
            scopes=list(scopes),
            caps=list(caps),
            commands=list(commands),
            path_env=path_env,
            auth=AuthParams(
                token=token or None,
                password=password or None,
                device_token=device_token or None,
            ),
        )
        client = cls(url, tls_fingerprint)
        try:
            async with asyncio.timeout(timeout):
                await client._open(timeout)
                response = await client._send_connect(params, device)
        except TimeoutError:
            await client._abort()
            raise GatewayUnreachable(
                f"cannot reach gateway at {url}: no answer within {timeout:g}s"
            ) from None
        except BaseException:
            await client._abort()
            raise
        if not response.ok:
            # The rejection is followed by a close whose code tells the caller what to do
            # (1008 policy, 1002 protocol, 1013 try later): wait for it briefly.
            await client._wait_closed(CLOSE_WAIT_S)
            if not client._closed.is_set():
                await client._abort()
            details = response.error.details if response.error is not None else None
            refused = isinstance(details, dict) and details.get("code")
            if stored_token and device_auth is not None and refused == "AUTH_DEVICE_TOKEN_MISMATCH":
                device_auth.clear(url, role)
            raise client._call_failed(response.error, close_code=client.close_code)
        try:
            client.hello = _hello_decoder.decode(response.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            await client._abort()
            raise GatewayProtocolError(
                f"gateway at {url} answered connect with an invalid hello-ok: {err}"
            ) from None
        issued = client.hello.auth.device_token
        if device_auth is not None and isinstance(issued, str) and issued:
            device_auth.save(url, role, issued, list(client.hello.auth.scopes))
        return client

    async def call_raw(
        self, method: str, params: Any = None, *, timeout: float | None = None
    ) -> bytes:
        """Call ``method`` and return its payload as the gateway's raw JSON bytes.

        Args:
            method: The method name.
            params: Anything msgspec can encode; None sends no ``params``.
            timeout: Seconds to wait for the answer (None: no limit).

        Returns:
            The ``payload`` JSON exactly as received (``null`` when absent).

        Raises:
            GatewayCallFailed: The gateway answered ``ok:false``.
            GatewayUnreachable: No answer in time, or the link went down.
            GatewayProtocolError: The gateway sent something that is not protocol.
        """
        response = await self._request(method, params, timeout)
        if not response.ok:
            raise self._call_failed(response.error)
        return bytes(response.payload)

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call ``method`` and return its payload decoded into plain Python values.

        Same arguments and errors as :meth:`call_raw`.
        """
        response = await self._request(method, params, timeout)
        if not response.ok:
            raise self._call_failed(response.error)
        return msgspec.json.decode(response.payload)

    def send_nowait(self, method: str, params: Any = None) -> None:
        """Send a request without waiting for its answer (which is then dropped).

        Raises:
            GatewayUnreachable: The link is down.
        """
        if self._failure is not None:
            raise self._failure
        transport = self._transport
        assert transport is not None, "use GatewayClient.connect()"
        request_id = f"{next(self._ids)}:n"
        data = encoder.encode(
            _Request(id=request_id, method=method, params=UNSET if params is None else params)
        )
        transport.send(WSMsgType.TEXT, data)

    async def call_final(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,
        on_accepted: Callable[[Any], None] | None = None,
    ) -> Any:
        """Call a method that may answer ``{status:"accepted"}`` first; return the final payload.

        The reference client's ``expectFinal``: an ``ok:true`` answer whose payload has
        ``status:"accepted"`` goes to ``on_accepted`` (decoded) and the wait goes on for the
        next answer with the same request id. Same errors as :meth:`call`; ``timeout``
        bounds the whole wait.
        """
        response = await self._request(
            method, params, timeout, on_accepted or (lambda _payload: None)
        )
        if not response.ok:
            raise self._call_failed(response.error)
        return msgspec.json.decode(response.payload)

    @property
    def closed(self) -> bool:
        """True once the link is down (by either side)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until the link is down."""
        await self._closed.wait()

    async def close(self) -> None:
        """Close the link (code 1000) and wait briefly for the gateway to finish it."""
        transport = self._transport
        if transport is None or self._closed.is_set():
            return
        self._closing = True
        transport.send_close(WSCloseCode.OK)
        # RFC 6455 section 7.1.1: the server closes TCP first; do not wait forever for it.
        await self._wait_closed(CLOSE_WAIT_S)
        if not self._closed.is_set():
            await self._abort()

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- opening and the handshake ------------------------------------------------------------
    async def _open(self, timeout: float) -> None:
        url = self.url
        context = None
        if self.tls_fingerprint is not None:
            try:
                context = pinned_client_context(self.tls_fingerprint)
            except ValueError as err:
                raise UsageError(f"invalid TLS fingerprint: {err}") from None
        try:
            _, listener = await ws_connect(
                lambda: _Listener(self),
                url,
                ssl_context=context,
                websocket_handshake_timeout=timeout,
                logger_name=_WS_LOG,
                max_frame_size=MAX_MESSAGE_BYTES,
                max_redirects=0,
                # The loop's own transports, always: aiofastnet drives OpenSSL itself (it
                # would bypass the SSLObject that checks a pin inside the handshake), and one
                # transport kind means one set of failure paths to get right.
                use_aiofastnet=False,
            )
        except TlsPinMismatch as err:
            raise GatewayTlsError(f"{err} (gateway at {url}; nothing was sent)") from None
        except ssl.SSLCertVerificationError as err:
            raise GatewayTlsError(await _untrusted_message(url, err)) from None
        except WSInvalidURL as err:
            reason = err.args[1] if len(err.args) > 1 else "not a ws:// or wss:// URL"
            raise UsageError(f"invalid gateway url {url!r}: {reason}") from None
        except WSHandshakeError as err:
            status = getattr(err.response, "status", None)
            what = f"HTTP {int(status)}" if status is not None else str(err)
            raise GatewayUnreachable(
                f"cannot reach gateway at {url}: websocket upgrade refused ({what})"
            ) from None
        except WSError as err:
            raise GatewayUnreachable(f"cannot reach gateway at {url}: {err}") from None
        except OSError as err:
            raise GatewayUnreachable(
                f"cannot reach gateway at {url}: {_describe_os_error(err)}"
            ) from None
        if listener is None or self._transport is None:
            # picows reports a connection lost during the upgrade as a success without a
            # listener.
            raise GatewayUnreachable(
                f"cannot reach gateway at {url}: connection closed during the websocket upgrade"
            )
        if self.tls_fingerprint is not None:
            self._check_pin(self._transport)

    def _check_pin(self, transport: WSTransport) -> None:
        """Check the pin again on the open link, before any credential is sent.

        The handshake already checked it; this holds even if a TLS engine skipped that hook.
        """
        expected = normalize_fingerprint(self.tls_fingerprint)
        assert expected is not None
        ssl_object = transport.underlying_transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        got = certificate_fingerprint(der) if der else None
        if got != expected:
            transport.disconnect(graceful=False)
            err = TlsPinMismatch(expected, got)
            raise GatewayTlsError(f"{err} (gateway at {self.url}; nothing was sent)")

    async def _send_connect(
        self, params: ConnectParams, device: DeviceIdentity | None = None
    ) -> IncomingResponse:
        challenge = await self._challenge  # the nonce matters only to device-signed connects
        if device is not None:
            from ..protocol.device import payload_for

            payload = payload_for(
                params, device_id=device.device_id, signed_at_ms=challenge.ts, nonce=challenge.nonce
            )
            params = msgspec.structs.replace(
                params,
                device=DeviceParams(
                    id=device.device_id,
                    public_key=device.public_key,
                    signature=device.sign(payload),
                    signed_at=challenge.ts,
                    nonce=challenge.nonce,
                ),
            )
        wire = _without_nulls(msgspec.to_builtins(params))
        return await self._request("connect", wire, None)

    # -- requests -----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        params: Any,
        timeout: float | None,
        on_interim: Callable[[Any], None] | None = None,
    ) -> IncomingResponse:
        if self._failure is not None:
            raise self._failure
        transport = self._transport
        assert transport is not None, "use GatewayClient.connect()"
        request_id = f"{next(self._ids)}:{uuid.uuid4()}"
        future: asyncio.Future[IncomingResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if on_interim is not None:
            self._interim[request_id] = on_interim
        try:
            data = encoder.encode(
                _Request(id=request_id, method=method, params=UNSET if params is None else params)
            )
            transport.send(WSMsgType.TEXT, data)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise GatewayUnreachable(
                f"gateway at {self.url} did not answer {method} within {timeout:g}s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
            self._interim.pop(request_id, None)

    def _call_failed(
        self, error: ErrorShape | None, close_code: int | None = None
    ) -> GatewayCallFailed:
        if error is None:
            return GatewayCallFailed("UNKNOWN", "the gateway answered ok:false without an error")
        details = None if error.details is UNSET else error.details
        return GatewayCallFailed(error.code, error.message, details, close_code)

    # -- picows callbacks ---------------------------------------------------------------------
    def _on_open(self, transport: WSTransport) -> None:
        self._transport = transport

    def _on_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.TEXT and frame.fin and self._fragments is None:
            self._on_message(frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.TEXT or msg_type is WSMsgType.CONTINUATION:
            self._on_fragment(frame)
        elif msg_type is WSMsgType.CLOSE:
            # RFC 6455 section 5.5.1: answer a close with a close, then let TCP go.
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif msg_type is WSMsgType.BINARY:
            self._protocol_error("a binary frame (the protocol is JSON text)")

    def _on_fragment(self, frame: WSFrame) -> None:
        # RFC 6455 section 5.4: a text message may arrive as TEXT + CONTINUATION frames.
        if frame.msg_type is WSMsgType.TEXT:
            if self._fragments is not None:
                self._protocol_error("a new message inside a fragmented one")
                return
            self._fragments = []
            self._fragments_size = 0
        elif self._fragments is None:
            self._protocol_error("a continuation frame with no message to continue")
            return
        self._fragments_size += frame.payload_size
        if self._fragments_size > MAX_MESSAGE_BYTES:
            self._protocol_error("a message over 64 MiB")
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = None
            self._on_message(data)

    def _on_message(self, data: bytes) -> None:
        try:
            frame = _frame_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            self._protocol_error(f"a frame we cannot decode ({err})")
            return
        if isinstance(frame, IncomingResponse):
            future = self._pending.get(frame.id)
            # A response nobody waits for (a call that timed out, or the second answer of
            # ``agent`` to a plain call) is dropped.
            if future is None or future.done():
                return
            on_interim = self._interim.get(frame.id)
            if on_interim is not None and frame.ok:
                accepted = _accepted_payload(frame.payload)
                if accepted is not None:
                    on_interim(accepted)
                    return
            future.set_result(frame)
        elif frame.event == "connect.challenge" and not self._challenge.done():
            try:
                self._challenge.set_result(_challenge_decoder.decode(frame.payload))
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                self._protocol_error(f"an invalid connect.challenge ({err})")
        else:
            self._push_event(frame)

    def _push_event(self, event: IncomingEvent) -> None:
        handler = self.event_handler
        if handler is not None:
            try:
                handler(event)
            except Exception:
                _LOG.exception("event handler failed on %s", event.event)
            return
        if self.events.full():
            self.events.get_nowait()
            self.events_dropped += 1
        self.events.put_nowait(event)

    def _protocol_error(self, what: str) -> None:
        self._fail(GatewayProtocolError(f"gateway at {self.url} sent {what}"))
        transport = self._transport
        if transport is not None:
            transport.send_close(WSCloseCode.POLICY_VIOLATION, b"invalid frame")
            transport.disconnect()

    def _on_disconnected(self, transport: WSTransport) -> None:
        handshake = transport.close_handshake
        received = handshake.recv if handshake is not None else None
        if received is not None:
            self.close_code = _close_code_int(received.code)
            self.close_reason = received.reason
        if self._closing:
            self._fail(GatewayUnreachable(f"connection to gateway at {self.url} is closed"))
        elif received is not None:
            why = f"code {self.close_code}" + (
                f": {self.close_reason}" if self.close_reason else ""
            )
            self._fail(GatewayUnreachable(f"gateway at {self.url} closed the connection ({why})"))
        else:
            self._fail(GatewayUnreachable(f"gateway at {self.url} dropped the connection"))
        self._closed.set()

    def _fail(self, err: GatewayError) -> None:
        """Record why the link is down (first reason wins) and fail everyone waiting."""
        if self._failure is None:
            self._failure = err
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._failure)
        if not self._challenge.done():
            self._challenge.set_exception(self._failure)

    # -- teardown -----------------------------------------------------------------------------
    async def _wait_closed(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            pass

    async def _abort(self) -> None:
        transport = self._transport
        if transport is None or self._closed.is_set():
            return
        self._closing = True
        transport.disconnect(graceful=False)
        await self._wait_closed(CLOSE_WAIT_S)


async def _untrusted_message(url: str, err: ssl.SSLCertVerificationError) -> str:
    """Why an unpinned wss:// certificate was refused, and how to pin it."""
    reason = err.verify_message or err.reason or "certificate verify failed"
    presented = await _presented_fingerprint(url)
    if presented is None:
        return (
            f"cannot reach gateway at {url}: TLS certificate not trusted ({reason}); "
            "if the gateway uses a self-signed certificate, pin it with --tls-fingerprint <fp> "
            "(`openclaw gateway status` on the gateway host prints it)"
        )
    fp = format_fingerprint(presented)
    return (
        f"cannot reach gateway at {url}: TLS certificate not trusted ({reason}); it presented "
        f"SHA-256 {fp}: if `openclaw gateway status` on the gateway host shows the same, "
        f"pin it with --tls-fingerprint {fp}"
    )


async def _presented_fingerprint(url: str) -> str | None:
    """The SHA-256 of the certificate at ``url`` (fetched without trusting it), or None.

    Only the TLS handshake is done: no HTTP, no credential. Used for the hint alone.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 443
    except ValueError:
        return None
    if host is None:
        return None
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(CLOSE_WAIT_S):
            transport, _ = await loop.create_connection(
                asyncio.Protocol, host, port, ssl=pinned_client_context(None)
            )
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    except (OSError, TimeoutError):
        return None
    finally:
        if transport is not None:
            transport.abort()
    return certificate_fingerprint(der) if der else None


def _accepted_payload(raw: msgspec.Raw) -> Any:
    """The decoded payload if it is an interim ``{status:"accepted", ...}``, else None."""
    try:
        if _status_decoder.decode(raw).status != "accepted":
            return None
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
