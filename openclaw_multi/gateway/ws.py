"""The WebSocket library (picows) behind one small seam.

Everything picows-specific lives here: taking over a TCP connection whose HTTP upgrade
request the HTTP front has already read, turning frames into whole text messages, and
sending/closing. The rest of the gateway sees only :class:`MessageSink` (what it implements)
and :class:`WsPeer` (what it calls). Swapping libraries means rewriting this module alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from ..protocol import codes

_LOG = logging.getLogger("openclaw.gateway.ws")


class _PicowsLog:
    """What picows logs through: warnings and errors reach our log, chatter does not.

    A plain ``logging.Logger`` would make picows build a child Logger per connection and
    log every accept at INFO; this keeps the per-connection cost off the handshake path.
    """

    name = _LOG.name

    def isEnabledFor(self, level: int) -> bool:  # the logging API names it so
        return level >= logging.WARNING and _LOG.isEnabledFor(level)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        """Dropped."""

    def info(self, *args: Any, **kwargs: Any) -> None:
        """Dropped."""

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if level >= logging.WARNING:
            _LOG.log(level, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        _LOG.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        _LOG.error(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        _LOG.exception(msg, *args, **kwargs)


_PICOWS_LOG = _PicowsLog()


class MessageSink(Protocol):
    """What the gateway implements per connection."""

    def on_open(self) -> None: ...
    def on_message(self, data: bytes) -> None: ...
    def on_closed(self) -> None: ...


class WsPeer(WSListener):
    """One server-side WebSocket: reassembles messages, enforces the size cap, sends frames.

    ``limit`` is the current maximum message size; the gateway lowers it before ``hello-ok``
    (64 KiB) and raises it after. A message over the limit closes the socket with 1009.
    """

    __slots__ = ("_fragments", "_fragments_size", "_make_sink", "limit", "sink", "transport")

    def __init__(self, make_sink: Callable[[WsPeer], MessageSink], limit: int) -> None:
        super().__init__()
        self._make_sink = make_sink
        self.limit = limit
        self.transport: WSTransport | None = None
        self.sink: MessageSink | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0

    # -- picows callbacks -------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.sink = self._make_sink(self)
        self.sink.on_open()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.TEXT and frame.fin and self._fragments is None:
            if frame.payload_size > self.limit:
                self.close(codes.CLOSE_MESSAGE_TOO_BIG, "message too big")
                return
            assert self.sink is not None
            self.sink.on_message(frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.TEXT or msg_type is WSMsgType.CONTINUATION:
            self._on_fragment(frame)
        elif msg_type is WSMsgType.CLOSE:
            # RFC 6455 section 5.5.1: echo the close, then drop the TCP connection.
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif msg_type is WSMsgType.BINARY:
            self.close(codes.CLOSE_UNSUPPORTED_DATA, "binary frames are not supported")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.sink is not None:
            self.sink.on_closed()

    def pause_writing(self) -> None:
        """Back-pressure is handled by the gateway's buffered-bytes check."""

    def resume_writing(self) -> None:
        """See :meth:`pause_writing`."""

    # -- what the gateway calls ---------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        """Send one text message (already-encoded UTF-8 JSON)."""
        transport = self.transport
        if transport is not None and not transport.is_close_frame_sent:
            transport.send(WSMsgType.TEXT, data)

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame with ``code`` and ``reason``, then end the connection."""
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode()[:123])
        transport.disconnect(graceful=True)

    def abort(self) -> None:
        """Drop the connection without a close handshake."""
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    def buffered_bytes(self) -> int:
        """Bytes queued in the kernel-side write buffer not yet sent."""
        if self.transport is None:
            return 0
        return int(self.transport.underlying_transport.get_write_buffer_size())

    # -- internals -----------------------------------------------------------------------
    def _on_fragment(self, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self._fragments = []
            self._fragments_size = 0
        elif self._fragments is None:
            self.close(codes.CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            return
        assert self._fragments is not None
        self._fragments_size += frame.payload_size
        if self._fragments_size > self.limit:
            self._fragments = None
            self.close(codes.CLOSE_MESSAGE_TOO_BIG, "message too big")
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = None
            assert self.sink is not None
            self.sink.on_message(data)


def take_over(
    transport: asyncio.Transport,
    head: bytes,
    listener: WsPeer,
    *,
    max_frame_size: int,
) -> None:
    """Hand a TCP connection whose request head we already read to picows.

    picows then validates the upgrade headers, answers 101 and drives the socket; ``head``
    (and any bytes after it) is replayed into it as if just received.
    """
    protocol = WSProtocol(
        None,  # host+port (client side only)
        None,  # path (client side only)
        False,  # is_client_side
        lambda _request: listener,
        _PICOWS_LOG,
        True,  # disconnect_on_exception
        None,  # our HTTP front already enforced the request-head timeout
        False,  # auto ping: the gateway's tick events keep links alive
        20.0,
        20.0,
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,  # answer pings automatically
        max_frame_size,
        None,  # extra headers
        16 * 1024,
    )
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    view = memoryview(head)
    while view:
        buffer = protocol.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]
