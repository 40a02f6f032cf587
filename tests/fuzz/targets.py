"""Fuzz targets: each takes one input (bytes) and raises AssertionError on a bug.

Shared by the hypothesis tests (``tests/fuzz/test_fuzz.py``), the corpus replay
(``tests/fuzz/test_corpus.py``) and the benchmark mode (``scripts/fuzz.py``). A target
is a class: build it once (a gateway, a temp dir), call it per input, ``close()`` it.

* ``http``: ``gateway/http.py`` -- ``parse_head`` and :class:`HttpFront` fed the bytes in
  two chunks over a fake transport: an HTTP answer and a close, or a wait for more; never
  an exception.
* ``handshake``: the first WebSocket message, in-process (``Connection`` with a fake peer):
  answered, closed or refused; never an exception.
* ``config``: ``profiles/config.py`` ``load_config`` on the bytes as a file: a config or
  :class:`ConfigError`, nothing else, and the file is never touched.
* ``control``: ``protocol/control.py`` ``decode_request``/``decode_reply``: a message or
  :class:`ControlProtocolError`.
* ``ws``: raw bytes (frames or garbage) to a live gateway after a valid upgrade; the gateway
  must keep serving another client, which is asked ``health`` after every input.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from openclaw_multi.errors import ConfigError
from openclaw_multi.gateway.connection import Connection
from openclaw_multi.gateway.http import HttpFront, is_websocket_upgrade, parse_head
from openclaw_multi.gateway.hub import Gateway
from openclaw_multi.gateway.settings import GatewayOptions, resolve_settings
from openclaw_multi.profiles.config import ProfileConfig, load_config
from openclaw_multi.protocol.control import ControlProtocolError, decode_reply, decode_request

TARGETS = ("http", "handshake", "config", "control", "ws")


# --- fakes ---------------------------------------------------------------------------------


class FakeTransport:
    """What HttpFront uses of an asyncio transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class FakePeer:
    """Stands in for gateway.ws.WsPeer."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.limit = 64 * 1024

    def send_text(self, data: bytes) -> None:
        json.loads(data)  # everything the gateway sends must be JSON
        self.sent.append(data)

    def close(self, code: int, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)

    def abort(self) -> None:
        self.close(1006)

    def buffered_bytes(self) -> int:
        return 0


def _gateway(home: Path) -> Gateway:
    settings = resolve_settings(GatewayOptions(profile="fuzz", explicit=True), {"HOME": str(home)})
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    return Gateway(settings)


class _InProcess:
    """A gateway object (no sockets) on a private event loop."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ocz-"))
        self.loop = asyncio.new_event_loop()
        self.gateway = self.loop.run_until_complete(self._make())

    async def _make(self) -> Gateway:
        gateway = _gateway(self.dir)
        gateway.mark_ready()
        return gateway

    def close(self) -> None:
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- targets ---------------------------------------------------------------------------------


class HttpTarget(_InProcess):
    def __call__(self, data: bytes) -> None:
        head = parse_head(data.split(b"\r\n\r\n", 1)[0])
        if head is not None and is_websocket_upgrade(head):
            return  # hands the socket to picows: the ``ws`` target covers it live
        self.loop.run_until_complete(self._feed(data))

    async def _feed(self, data: bytes) -> None:
        transport = FakeTransport()
        front = HttpFront(self.gateway)
        front.connection_made(transport)  # type: ignore[arg-type]
        middle = len(data) // 2
        for chunk in (data[:middle], data[middle:]):
            if transport.closed:
                break
            front.data_received(chunk)
        if transport.written:
            assert transport.closed, "answered without closing"
            status_line = bytes(transport.written).split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 "), status_line
        else:
            assert not transport.closed
        front.connection_lost(None)


class HandshakeTarget(_InProcess):
    def __call__(self, data: bytes) -> None:
        self.loop.run_until_complete(self._first(data))

    async def _first(self, data: bytes) -> None:
        peer = FakePeer()
        conn = Connection(self.gateway, peer, "127.0.0.1")  # type: ignore[arg-type]
        conn.on_open()
        conn.on_message(data)
        conn.on_closed()
        assert self.gateway.pending_count() == 0 and not self.gateway.sockets


class ConfigTarget:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ocz-"))
        self.path = self.dir / "openclaw.json"

    def __call__(self, data: bytes) -> None:
        self.path.write_bytes(data)
        before = self.path.stat()
        try:
            config = load_config(self.path)
        except ConfigError as err:
            message = str(err)
            assert message.startswith(str(self.path)), message
            assert "\n" not in message, "a config error must be one line"
        else:
            assert isinstance(config, ProfileConfig)
        after = self.path.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
            before.st_ino,
            before.st_mtime_ns,
            before.st_size,
        )
        assert self.path.read_bytes() == data, "the loader changed the file"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class ControlTarget:
    def __call__(self, data: bytes) -> None:
        for decode in (decode_request, decode_reply):
            with contextlib.suppress(ControlProtocolError):
                decode(data)

    def close(self) -> None:
        pass


class WsTarget:
    """A live gateway; every input goes down a fresh upgraded connection."""

    def __init__(self) -> None:
        from tests.conftest import start_gateway
        from tests.wire import Wire

        self.home = Path(tempfile.mkdtemp(prefix="ocz-"))
        self.gw = start_gateway(self.home, "fuzz", "--quiet")
        self.sentinel = Wire(self.gw.port)
        hello = self.sentinel.hello()
        assert hello["ok"], hello
        self.fds_before = _fd_count(self.gw.pid)

    def __call__(self, data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.gw.port), timeout=2) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(
                (
                    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            _read_until(s, b"\r\n\r\n")  # 101 (the challenge follows)
            try:
                s.sendall(data)
                s.settimeout(0.02)
                deadline = time.monotonic() + 0.05
                while time.monotonic() < deadline and s.recv(65536):
                    pass
            except (TimeoutError, ConnectionError):
                pass
        answer = self.sentinel.call("health")
        assert answer["ok"] is True, answer
        assert self.gw.proc.poll() is None, "the gateway died"

    def close(self) -> None:
        try:
            self.sentinel.close()
        finally:
            self.gw.stop()
            shutil.rmtree(self.home, ignore_errors=True)


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _read_until(s: socket.socket, marker: bytes) -> bytes:
    buf = b""
    deadline = time.monotonic() + 5
    while marker not in buf:
        assert time.monotonic() < deadline, f"no {marker!r} in {buf[:200]!r}"
        chunk = s.recv(4096)
        assert chunk, f"closed before {marker!r}: {buf[:200]!r}"
        buf += chunk
    return buf


def make_target(name: str) -> Any:
    return {
        "http": HttpTarget,
        "handshake": HandshakeTarget,
        "config": ConfigTarget,
        "control": ControlTarget,
        "ws": WsTarget,
    }[name]()


# --- strategies ------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=16,
)


def _ws_frame(fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes, wide: int) -> bytes:
    """One RFC 6455 frame (section 5.2), with any header bits, length form and masking."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if wide == 2 or n > 0xFFFF:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    elif wide == 1 or n > 125:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | n])
    if masked:
        key = b"\x01\x02\x03\x04"
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


_frame = st.builds(
    _ws_frame,
    st.booleans(),
    st.integers(0, 7),
    st.sampled_from([0, 1, 2, 8, 9, 10, 3, 7, 11, 15]),
    st.booleans(),
    st.one_of(st.binary(max_size=200), _json_values.map(lambda v: json.dumps(v).encode())),
    st.integers(0, 2),
)


def strategy(name: str) -> st.SearchStrategy[bytes]:
    """Inputs for one target: raw bytes mixed with near-valid structure."""
    raw = st.binary(max_size=1024)
    if name == "http":
        line = st.tuples(
            st.sampled_from(["GET", "HEAD", "POST", "get", "", "OPTIONS"]),
            st.sampled_from(["/readyz", "/", "/health", "x", "/a?b", "//", "/\x00"]),
            st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]),
        ).map(" ".join)
        header = st.tuples(st.text(max_size=12), st.text(max_size=24)).map(": ".join)
        head = st.tuples(line, st.lists(header | st.text(max_size=20), max_size=5)).map(
            lambda t: "\r\n".join([t[0], *t[1]]).encode("utf-8", "surrogatepass") + b"\r\n\r\n"
        )
        return st.one_of(raw, head, st.binary(min_size=16 * 1024, max_size=17 * 1024))
    if name == "handshake":
        connectish = st.fixed_dictionaries(
            {"type": st.just("req"), "id": st.text(max_size=4), "method": st.just("connect")},
            optional={"params": st.dictionaries(st.text(max_size=12), _json_values, max_size=6)},
        ).map(lambda v: json.dumps(v).encode())
        return st.one_of(raw, _json_values.map(lambda v: json.dumps(v).encode()), connectish)
    if name == "config":
        gatewayish = st.fixed_dictionaries(
            {
                "gateway": st.dictionaries(
                    st.sampled_from(["port", "bind", "auth", "limits", "tls", "remote", "mode"]),
                    _json_values,
                    max_size=4,
                )
            }
        ).map(lambda v: json.dumps(v).encode())
        json5ish = st.lists(
            st.sampled_from(
                [
                    "{",
                    "}",
                    "[",
                    "]",
                    ",",
                    ":",
                    "//x\n",
                    "/*",
                    "*/",
                    "'a'",
                    "0x1F",
                    "Infinity",
                    "gateway",
                    "port",
                    '"',
                    "\\u",
                    "\n",
                    "+",
                    ".5",
                ]
            ),
            max_size=30,
        ).map(lambda parts: "".join(parts).encode())
        return st.one_of(raw, gatewayish, json5ish)
    if name == "control":
        return st.one_of(
            raw,
            st.dictionaries(
                st.sampled_from(["op", "profiles", "all", "stop_gateways", "ok", "error"]),
                _json_values | st.sampled_from(["start", "stop", "ping", "status"]),
                max_size=4,
            ).map(lambda v: json.dumps(v).encode() + b"\n"),
        )
    if name == "ws":
        return st.one_of(raw, st.lists(_frame, min_size=1, max_size=4).map(b"".join))
    raise KeyError(name)
