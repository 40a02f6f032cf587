"""GatewayClient against real gateway processes, and against tiny scripted servers for the
failures a well-behaved gateway never produces (garbage frames, silence, early closes)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import GatewayProcess, free_port
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from openclaw_multi import runtime
from openclaw_multi.client.gateway import GatewayClient
from openclaw_multi.client.http_probe import parse_response, probe_http
from openclaw_multi.errors import (
    GatewayCallFailed,
    GatewayProtocolError,
    GatewayUnreachable,
    UsageError,
)

pytestmark = pytest.mark.e2e
T = TypeVar("T")
TOKEN = "client-test-" + uuid.uuid4().hex


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return runtime.run(main())


@pytest.fixture
def token_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    # Env secrets apply only to the profile the environment selects (profiles.md).
    env = {"OPENCLAW_PROFILE": "tok", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("tok", "--auth", "token", env_extra=env)


# -- against a real gateway ------------------------------------------------------------------
def test_handshake_hello_ok(gateway: GatewayProcess) -> None:
    async def main() -> None:
        async with await GatewayClient.connect(gateway.url) as client:
            hello = client.hello
            assert hello.protocol == 4
            assert {"health", "status"} <= set(hello.features.methods)
            assert hello.snapshot.state_dir == str(gateway.state_dir)
            assert hello.snapshot.config_path == str(gateway.state_dir / "openclaw.json")
            assert hello.auth.role == "operator"
            assert "operator.admin" in hello.auth.scopes
        assert client.closed

    run(main())


def test_fifty_pipelined_calls_each_get_their_answer(gateway: GatewayProcess) -> None:
    async def main() -> list[Any]:
        async with await GatewayClient.connect(gateway.url) as client:
            results = await asyncio.gather(
                *(client.call("last-heartbeat") for _ in range(50)),
                client.call("status"),
            )
            assert not client._pending  # every id was answered and released
            return results

    results = run(main())
    heartbeats, status = results[:50], results[50]
    assert all(r["status"] == "ok" and "intervalMs" in r for r in heartbeats)
    assert status["pid"] == gateway.pid


def test_call_raw_returns_the_payload_bytes(gateway: GatewayProcess) -> None:
    async def main() -> bytes:
        async with await GatewayClient.connect(gateway.url) as client:
            return await client.call_raw("health", {"probe": True})

    payload = json.loads(run(main()))
    assert payload["ok"] is True and payload["port"] == gateway.port


def test_unknown_method_fails_and_the_link_stays_usable(gateway: GatewayProcess) -> None:
    async def main() -> None:
        async with await GatewayClient.connect(gateway.url) as client:
            with pytest.raises(GatewayCallFailed) as info:
                await client.call("nope")
            assert info.value.code == "INVALID_REQUEST"
            assert info.value.message == "unknown method: nope"
            assert info.value.close_code is None
            assert str(info.value) == "INVALID_REQUEST: unknown method: nope"
            assert (await client.call("last-heartbeat"))["status"] == "ok"

    run(main())


def test_wrong_token_is_rejected_with_close_1008(token_gateway: GatewayProcess) -> None:
    with pytest.raises(GatewayCallFailed) as info:
        run(GatewayClient.connect(token_gateway.url, token="wrong-" + TOKEN))
    err = info.value
    assert err.code == "INVALID_REQUEST"
    assert err.details == {"code": "AUTH_TOKEN_MISMATCH"}
    assert err.close_code == 1008
    assert TOKEN not in str(err)


def test_no_token_needs_device_identity(token_gateway: GatewayProcess) -> None:
    with pytest.raises(GatewayCallFailed) as info:
        run(GatewayClient.connect(token_gateway.url))
    assert info.value.code == "NOT_PAIRED"
    assert info.value.details == {"code": "DEVICE_IDENTITY_REQUIRED"}
    assert info.value.close_code == 1008


def test_right_token_connects(token_gateway: GatewayProcess) -> None:
    async def main() -> Any:
        async with await GatewayClient.connect(token_gateway.url, token=TOKEN) as client:
            assert client.hello.snapshot.auth_mode == "token"
            return await client.call("status")

    assert run(main())["authMode"] == "token"


def test_unreachable_port_fails_fast() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    started = time.monotonic()
    with pytest.raises(GatewayUnreachable) as info:
        run(GatewayClient.connect(url, timeout=5))
    assert time.monotonic() - started < 2
    assert str(info.value) == f"cannot reach gateway at {url}: connection refused"


def test_gateway_stopping_fails_calls_and_reports_the_close(gateway: GatewayProcess) -> None:
    async def main() -> None:
        client = await GatewayClient.connect(gateway.url)
        gateway.proc.terminate()
        await asyncio.wait_for(client.wait_closed(), 10)
        assert client.close_code == 1012
        events = []
        while not client.events.empty():
            events.append(client.events.get_nowait().event)
        assert "shutdown" in events
        with pytest.raises(GatewayUnreachable, match=r"closed the connection \(code 1012"):
            await client.call("health")
        await client.close()

    run(main())
    assert gateway.proc.wait(timeout=10) == 0


def test_bad_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        run(GatewayClient.connect("http://127.0.0.1:1/"))


def test_probe_http_readyz(gateway: GatewayProcess) -> None:
    status, body = run(probe_http("127.0.0.1", gateway.port, "/readyz", timeout=5))
    assert status == 200 and body["ready"] is True
    status, body = run(probe_http("::1", gateway.port, "/healthz", timeout=5))
    assert (status, body) == (200, {"ok": True, "status": "live"})


def test_probe_http_closed_port() -> None:
    port = free_port()
    with pytest.raises(GatewayUnreachable, match="connection refused"):
        run(probe_http("127.0.0.1", port, timeout=2))


def test_parse_response() -> None:
    raw = b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 16\r\n\r\n{"ready":false}\nxx'
    assert parse_response(raw) == (503, {"ready": False})
    assert parse_response(b"HTTP/1.1 200 OK\r\n\r\n[1]") == (200, {})
    assert parse_response(b"SSH-2.0-OpenSSH\r\n") is None
    assert parse_response(b"garbage\r\n\r\n") is None


# -- against scripted servers ----------------------------------------------------------------
HELLO = {
    "type": "hello-ok",
    "protocol": 4,
    "server": {"version": "test", "connId": "c1"},
    "features": {"methods": ["echo"], "events": []},
    "snapshot": {
        "presence": [],
        "health": {},
        "stateVersion": {"presence": 1, "health": 1},
        "uptimeMs": 0,
    },
    "auth": {"role": "operator", "scopes": []},
    "policy": {"maxPayload": 1048576, "maxBufferedBytes": 1048576, "tickIntervalMs": 30000},
}
Script = Callable[["ScriptedPeer", dict[str, Any]], None]


class ScriptedPeer(WSListener):
    """Sends the challenge, then hands every request to ``script``."""

    def __init__(self, script: Script, seen: list[dict[str, Any]]) -> None:
        super().__init__()
        self.script = script
        self.seen = seen
        self.transport: WSTransport | None = None
        self.held: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, json.dumps(frame).encode())

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, data)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.send(
            {
                "type": "event",
                "event": "connect.challenge",
                "payload": {"nonce": str(uuid.uuid4()), "ts": 1},
            }
        )

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type is WSMsgType.TEXT:
            request = json.loads(frame.get_payload_as_bytes())
            self.seen.append(request)
            if request["method"] == "connect":
                self.send({"type": "res", "id": request["id"], "ok": True, "payload": HELLO})
            else:
                self.script(self, request)


def with_server(script: Script, body: Callable[[str, list[dict[str, Any]]], Awaitable[T]]) -> T:
    seen: list[dict[str, Any]] = []

    async def main() -> T:
        server = await ws_create_server(lambda _req: ScriptedPeer(script, seen), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await body(f"ws://127.0.0.1:{port}/", seen)
        finally:
            server.close()
            await server.wait_closed()

    return runtime.run(main())


def test_out_of_order_answers_reach_their_callers() -> None:
    def script(peer: ScriptedPeer, request: dict[str, Any]) -> None:
        peer.held.append(request)
        if len(peer.held) == 20:  # answer all, newest first
            for held in reversed(peer.held):
                peer.send({"type": "res", "id": held["id"], "ok": True, "payload": held["params"]})

    async def body(url: str, seen: list[dict[str, Any]]) -> None:
        async with await GatewayClient.connect(url) as client:
            results = await asyncio.gather(*(client.call("echo", {"n": n}) for n in range(20)))
        assert results == [{"n": n} for n in range(20)]
        ids = [r["id"] for r in seen]
        assert len(set(ids)) == len(ids)
        assert all(i.split(":", 1)[0].isdigit() and uuid.UUID(i.split(":", 1)[1]) for i in ids)

    with_server(script, body)


def test_connect_params_are_protocol_4_without_nulls() -> None:
    async def body(url: str, seen: list[dict[str, Any]]) -> None:
        async with await GatewayClient.connect(url, token="tkn", timeout=5):
            pass
        params = seen[0]["params"]
        assert seen[0]["method"] == "connect"
        assert (params["minProtocol"], params["maxProtocol"]) == (4, 4)
        assert params["client"]["id"] == "cli" and params["client"]["mode"] == "cli"
        assert params["role"] == "operator"
        assert params["auth"] == {"token": "tkn"}
        assert "null" not in json.dumps(params)

    with_server(lambda peer, request: None, body)


def test_undecodable_frame_closes_the_link() -> None:
    def script(peer: ScriptedPeer, request: dict[str, Any]) -> None:
        peer.send_raw(b'{"type":"surprise"}')

    async def body(url: str, seen: list[dict[str, Any]]) -> None:
        client = await GatewayClient.connect(url)
        with pytest.raises(GatewayProtocolError, match="sent a frame we cannot decode"):
            await client.call("echo", timeout=5)
        await asyncio.wait_for(client.wait_closed(), 5)
        with pytest.raises(GatewayProtocolError):
            await client.call("echo")
        await client.close()

    with_server(script, body)


def test_call_timeout() -> None:
    async def body(url: str, seen: list[dict[str, Any]]) -> None:
        async with await GatewayClient.connect(url) as client:
            with pytest.raises(GatewayUnreachable, match=r"did not answer echo within 0\.2s"):
                await client.call("echo", timeout=0.2)
            assert not client._pending

    with_server(lambda peer, request: None, body)


def test_silent_server_times_out_the_handshake() -> None:
    # A TCP listener that never answers the upgrade: the kernel accepts, nobody speaks.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        with pytest.raises(GatewayUnreachable) as info:
            run(GatewayClient.connect(url, timeout=0.3))
        assert time.monotonic() - started < 2
    assert str(info.value) == f"cannot reach gateway at {url}: no answer within 0.3s"


def test_close_after_challenge_is_unreachable() -> None:
    class Closer(ScriptedPeer):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            transport.disconnect()

    async def main() -> None:
        server = await ws_create_server(lambda _req: Closer(lambda p, r: None, []), "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        try:
            with pytest.raises(GatewayUnreachable, match="dropped the connection"):
                await GatewayClient.connect(url, timeout=5)
        finally:
            server.close()
            await server.wait_closed()

    runtime.run(main())
