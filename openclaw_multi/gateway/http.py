"""The HTTP side of the gateway port: probes, the Control UI's files, and the WebSocket hand-off.

Every connection starts here. We read one request head (bounded in size and time); a GET
carrying ``Upgrade: websocket`` is handed to :mod:`.ws`, anything else gets a small HTTP/1.1
answer and the connection is closed. Keeping HTTP this small is deliberate: probes and the
Control UI's static files (:mod:`.page`) are all this port serves besides the WebSocket.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, cast

import msgspec

from . import page
from .ws import take_over

if TYPE_CHECKING:
    from .hub import Gateway

MAX_HEAD_BYTES: Final = 16 * 1024
HEAD_TIMEOUT_S: Final = 10.0
PROBE_PATHS: Final = frozenset({"/health", "/healthz", "/ready", "/readyz", "/startupz"})
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
# Probes and errors (404 too) are JSON, but a browser may still be pointed at them: none of
# them may run anything, be framed, or leak the URL either.
_JSON_HEADERS: Final = (
    b"Content-Type: application/json\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Referrer-Policy: no-referrer\r\n"
    b"X-Frame-Options: DENY\r\n"
    b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
)
# The Control UI's files: nothing may frame them, run inline or foreign code, or leak the URL.
_UI_HEADERS: Final = (
    b"Cache-Control: no-store\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Referrer-Policy: no-referrer\r\n"
    b"X-Frame-Options: DENY\r\n"
    b"Cross-Origin-Opener-Policy: same-origin\r\n"
    b"Cross-Origin-Resource-Policy: same-origin\r\n"
    b"Content-Security-Policy: " + page.CONTENT_SECURITY_POLICY.encode() + b"\r\n"
)
_json = msgspec.json.Encoder()


class RequestHead(msgspec.Struct, frozen=True):
    """The parts of a request head we act on."""

    method: str
    path: str
    version: str
    headers: dict[str, str]


def parse_head(raw: bytes) -> RequestHead | None:
    """Parse an HTTP/1.x request head (without the final blank line); None if malformed."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    path = parts[1].split("?", 1)[0]
    return RequestHead(method=parts[0], path=path, version=parts[2], headers=headers)


def is_websocket_upgrade(head: RequestHead) -> bool:
    """True for a GET asking to switch to the WebSocket protocol (RFC 6455 section 4.1)."""
    return head.method == "GET" and head.headers.get("upgrade", "").lower() == "websocket"


def render_response(status: int, headers: bytes, body: bytes, *, head_only: bool) -> bytes:
    """Serialize a complete HTTP/1.1 response that closes the connection."""
    return b"".join(
        (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n".encode(),
            headers,
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode(),
            b"" if head_only else body,
        )
    )


class HttpFront(asyncio.Protocol):
    """Reads one request head; answers HTTP itself or hands the socket to the WebSocket layer."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement its interface.
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S, self._transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._reply(431, _JSON_HEADERS, b'{"error":"request head too large"}', False)
            return
        self._cancel_timer()
        head = parse_head(bytes(self._buffer[:end]))
        if head is None:
            self._reply(400, _JSON_HEADERS, b'{"error":"bad request"}', False)
            return
        transport = self._transport
        assert transport is not None
        if is_websocket_upgrade(head):
            peer = self._gateway.admit_websocket(transport, head.headers)
            if peer is None:
                self._reply(503, _JSON_HEADERS, b'{"error":"too many pending connections"}', False)
                return
            take_over(
                transport, bytes(self._buffer), peer, max_frame_size=self._gateway.max_frame_size
            )
            return
        self._answer(head)

    def _answer(self, head: RequestHead) -> None:
        head_only = head.method == "HEAD"
        if head.path in PROBE_PATHS or head.path in page.ASSETS:
            if head.method not in ("GET", "HEAD"):
                self._reply(
                    405,
                    _JSON_HEADERS + b"Allow: GET, HEAD\r\n",
                    b'{"error":"method not allowed"}',
                    False,
                )
                return
            if head.path in PROBE_PATHS:
                status, payload = self._gateway.probe(head.path)
                self._reply(status, _JSON_HEADERS, _json.encode(payload), head_only)
            else:
                found = page.asset(head.path)
                assert found is not None
                body, kind = found
                headers = b"Content-Type: " + kind.encode() + b"\r\n" + _UI_HEADERS
                self._reply(200, headers, body, head_only)
            return
        self._reply(404, _JSON_HEADERS, b'{"error":"not found"}', head_only)

    def _reply(self, status: int, headers: bytes, body: bytes, head_only: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(render_response(status, headers, body, head_only=head_only))
        transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
