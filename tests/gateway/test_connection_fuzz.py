"""The connection state machine in-process, with a fake socket: rules that need a gateway
in a particular state, and hypothesis fuzzing of the handshake and request decoder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openclaw_multi.gateway.connection import Connection
from openclaw_multi.gateway.hub import Gateway
from openclaw_multi.gateway.settings import GatewayOptions, resolve_settings
from openclaw_multi.protocol.handshake import Phase


class FakePeer:
    """Stands in for gateway.ws.WsPeer: records what the gateway sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.limit = 64 * 1024

    def send_text(self, data: bytes) -> None:
        self.sent.append(json.loads(data))

    def close(self, code: int, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)

    def abort(self) -> None:
        self.close(1006)

    def buffered_bytes(self) -> int:
        return 0


def make_gateway(home: Path) -> Gateway:
    settings = resolve_settings(GatewayOptions(profile="fuzz", explicit=True), {"HOME": str(home)})
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    return Gateway(settings)


def run(home: Path, body: Callable[[Gateway], None]) -> None:
    async def main() -> None:
        body(make_gateway(home))

    asyncio.run(main())


CONNECT = json.dumps(
    {
        "type": "req",
        "id": "c1",
        "method": "connect",
        "params": {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
            "scopes": ["operator.read"],
        },
    }
).encode()


def open_connection(gateway: Gateway) -> tuple[Connection, FakePeer]:
    peer = FakePeer()
    conn = Connection(gateway, peer, "127.0.0.1")  # type: ignore[arg-type]
    conn.on_open()
    assert peer.sent[0]["event"] == "connect.challenge"
    return conn, peer


def test_connect_before_ready_is_retryable_1013(tmp_path: Path) -> None:
    def body(gateway: Gateway) -> None:
        conn, peer = open_connection(gateway)
        conn.on_message(CONNECT)
        error = peer.sent[-1]["error"]
        assert error["code"] == "UNAVAILABLE" and error["retryable"] is True
        assert error["retryAfterMs"] > 0
        assert peer.closed is not None and peer.closed[0] == 1013
        conn.on_closed()
        assert gateway.pending_count() == 0

    run(tmp_path, body)


def test_draining_gateway_refuses_connects(tmp_path: Path) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        _conn, peer = open_connection(gateway)
        gateway.drain("stopping")
        assert peer.closed == (1012, "gateway shutting down")
        late, late_peer = open_connection(gateway)
        late.on_message(CONNECT)
        assert late_peer.sent[-1]["error"]["code"] == "UNAVAILABLE"

    run(tmp_path, body)


def test_bookkeeping_returns_to_zero(tmp_path: Path) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        conns = [open_connection(gateway) for _ in range(5)]
        assert gateway.pending_count() == 5
        for conn, _ in conns[:3]:
            conn.on_message(CONNECT)
        assert gateway.pending_count() == 2 and len(gateway.clients) == 3
        for conn, _ in conns:
            conn.on_closed()
        assert gateway.pending_count() == 0 and not gateway.clients and not gateway.sockets

    run(tmp_path, body)


frames = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(str.encode),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["req", "res", "event", 1]),
            "id": st.text(max_size=5) | st.integers(),
            "method": st.sampled_from(["connect", "health", "status", "x"]),
            "params": st.dictionaries(
                st.sampled_from(
                    ["minProtocol", "maxProtocol", "client", "probe", "auth", "scopes"]
                ),
                st.none()
                | st.integers()
                | st.text(max_size=5)
                | st.lists(st.text(max_size=5), max_size=2),
                max_size=6,
            ),
        }
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=frames)
def test_any_first_frame_is_answered_or_closed_never_raises(tmp_path: Path, first: bytes) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        conn, peer = open_connection(gateway)
        conn.on_message(first)
        if conn.phase is Phase.CONNECTED:
            assert peer.sent[-1]["payload"]["type"] == "hello-ok"
        else:
            # Refused: closed, possibly after an error reply (auth failures reply late).
            assert peer.closed is not None or conn.phase is Phase.CLOSING
        conn.on_closed()

    run(tmp_path, body)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=st.lists(frames, min_size=1, max_size=5))
def test_any_frames_after_hello_never_raise_and_ids_echo(
    tmp_path: Path, messages: list[bytes]
) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        conn, peer = open_connection(gateway)
        conn.on_message(CONNECT)
        assert conn.phase is Phase.CONNECTED
        for data in messages:
            before = len(peer.sent)
            conn.on_message(data)
            if peer.closed is not None:
                assert peer.closed[0] == 1008
                break
            try:
                request = json.loads(data)
            except ValueError:
                continue
            replies = [f for f in peer.sent[before:] if f["type"] == "res"]
            assert [r["id"] for r in replies] == [request["id"]]
        conn.on_closed()

    run(tmp_path, body)


def test_decoder_rejects_deep_nesting_without_crashing(tmp_path: Path) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        conn, peer = open_connection(gateway)
        conn.on_message(CONNECT)
        deep = (
            b'{"type":"req","id":"d","method":"health","params":' + b"[" * 5000 + b"]" * 5000 + b"}"
        )
        conn.on_message(deep)
        assert peer.closed == (1008, "invalid request frame")
        assert [f for f in peer.sent if f.get("id") == "d"] == []

    run(tmp_path, body)


def test_msgspec_raw_params_are_not_reparsed_for_no_param_methods(tmp_path: Path) -> None:
    def body(gateway: Gateway) -> None:
        gateway.mark_ready()
        conn, peer = open_connection(gateway)
        conn.on_message(CONNECT)
        conn.on_message(
            b'{"type":"req","id":"h","method":"last-heartbeat","params":{"junk":[1,2,{"x":null}]}}'
        )
        assert peer.sent[-1]["ok"] is True and peer.sent[-1]["id"] == "h"

    run(tmp_path, body)


assert msgspec  # the decoder under test
