"""Every row of protocol.md's rules table against a real gateway process."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GatewayProcess, clean_env
from wire import Wire, connect_params

pytestmark = pytest.mark.e2e
TOKEN = "t0ken-" + uuid.uuid4().hex


def write_config(home: Path, profile: str, gateway: dict[str, object]) -> None:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True)
    (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))


@pytest.fixture
def token_gateway(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    write_config(home, "tok", {"auth": {"mode": "token"}})
    # Env secrets apply to the profile the environment selects (profiles.md).
    env = {"OPENCLAW_PROFILE": "tok", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("tok", env_extra=env)


def test_challenge_is_the_first_frame(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    challenge = wire.challenge
    assert challenge["type"] == "event" and challenge["event"] == "connect.challenge"
    assert "seq" not in challenge
    uuid.UUID(challenge["payload"]["nonce"])
    assert abs(challenge["payload"]["ts"] - time.time() * 1000) < 60_000
    wire.close()


def test_hello_ok_shape(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    res = wire.hello()
    assert res["ok"] is True
    hello = res["payload"]
    assert hello["type"] == "hello-ok" and hello["protocol"] == 4
    assert hello["server"]["version"] and hello["server"]["connId"]
    assert {"health", "status", "system-presence", "last-heartbeat", "gateway.identity.get"} <= set(
        hello["features"]["methods"]
    )
    assert set(hello["features"]["events"]) == {
        "connect.challenge",
        "tick",
        "health",
        "presence",
        "shutdown",
        "device.pair.requested",
        "device.pair.resolved",
        "node.invoke.request",
        "node.invoke.cancel",
        "node.pair.requested",
        "node.pair.resolved",
        "node.presence",
        "agent",
        "chat",
    }
    snap = hello["snapshot"]
    assert snap["stateDir"] == str(gateway.state_dir)
    assert snap["configPath"] == str(gateway.state_dir / "openclaw.json")
    assert snap["authMode"] == "none"
    assert set(snap["stateVersion"]) == {"presence", "health"}
    assert snap["health"]["ok"] is True
    assert hello["auth"] == {
        "role": "operator",
        "scopes": sorted(connect_params()["scopes"]),
        "method": "none",
    }
    assert set(hello["policy"]) == {"maxPayload", "maxBufferedBytes", "tickIntervalMs"}
    wire.close()


def test_first_frame_not_connect(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    res = wire.call("health")
    assert res["ok"] is False
    assert res["error"] == {
        "code": "INVALID_REQUEST",
        "message": "invalid handshake: first request must be connect",
    }
    assert wire.closed_with()[0] == 1008


@pytest.mark.parametrize("frame", ["not json", '{"type":"event","event":"x"}', "[1,2]"])
def test_malformed_first_frame_closes_without_reply(gateway: GatewayProcess, frame: str) -> None:
    wire = Wire(gateway.port)
    wire.send(frame)
    code, _ = wire.closed_with()
    assert code is not None and code >= 1000


def test_invalid_client_id(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    res = wire.hello(client={"id": "evil", "version": "1", "platform": "x", "mode": "cli"})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == (
        "invalid connect params: at /client/id: must be equal to one of the allowed values"
    )
    assert wire.closed_with()[0] == 1008


def test_protocol_mismatch(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    res = wire.hello(minProtocol=1, maxProtocol=3)
    assert res["error"]["message"] == "protocol mismatch"
    assert res["error"]["details"] == {
        "code": "PROTOCOL_MISMATCH",
        "clientMinProtocol": 1,
        "clientMaxProtocol": 3,
        "expectedProtocol": 4,
    }
    assert wire.closed_with()[0] == 1002


def test_probe_on_protocol_3_may_call_health_only(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    probe = {"id": "openclaw-probe", "version": "1", "platform": "linux", "mode": "probe"}
    res = wire.hello(minProtocol=3, maxProtocol=3, client=probe, scopes=[])
    assert res["payload"]["protocol"] == 3
    assert "stateDir" not in res["payload"]["snapshot"]
    assert wire.call("health")["ok"] is True
    denied = wire.call("status")
    assert denied["error"]["code"] == "FORBIDDEN"
    wire.close()


def test_no_credentials_on_token_gateway(token_gateway: GatewayProcess) -> None:
    wire = Wire(token_gateway.port)
    res = wire.hello()
    assert res["error"] == {
        "code": "NOT_PAIRED",
        "message": "device identity required",
        "details": {"code": "DEVICE_IDENTITY_REQUIRED"},
    }
    assert wire.closed_with()[0] == 1008


def test_token_accepted_and_mismatch_refused_then_throttled(token_gateway: GatewayProcess) -> None:
    good = Wire(token_gateway.port)
    hello = good.hello(auth={"token": TOKEN})
    assert hello["ok"] is True and hello["payload"]["auth"]["method"] == "token"
    assert hello["payload"]["snapshot"]["authMode"] == "token"
    good.close()

    first = Wire(token_gateway.port)
    res = first.hello(auth={"token": "wrong"})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"].startswith("unauthorized: gateway token mismatch")
    assert res["error"]["details"] == {"code": "AUTH_TOKEN_MISMATCH"}
    assert first.closed_with()[0] == 1008
    # The next failure from the same peer is held back (0.5 s, doubling).
    second = Wire(token_gateway.port)
    started = time.monotonic()
    res = second.hello(auth={"token": "wrong-again"})
    assert res["error"]["details"] == {"code": "AUTH_TOKEN_MISMATCH"}
    assert time.monotonic() - started >= 0.4
    second.close()
    log = (token_gateway.state_dir / "logs" / "gateway.log").read_text()
    assert TOKEN not in log and "wrong-again" not in log
    assert "auth failed" in log


def test_handshake_timeout_closes(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "slow", {"limits": {"handshakeTimeoutMs": 300}})
    gw = gateway_factory("slow")
    wire = Wire(gw.port)
    started = time.monotonic()
    code, _ = wire.closed_with(timeout=5)
    assert code == 1008
    assert 0.25 <= time.monotonic() - started < 5


def test_pre_connect_frame_over_64k_is_1009(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.send("x" * (64 * 1024 + 1))
    assert wire.closed_with()[0] == 1009


def test_pre_connect_frame_just_under_64k_is_read(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    params = connect_params(padding="p" * (60 * 1024))
    assert wire.call("connect", params)["ok"] is True
    wire.close()


def test_frame_over_max_payload_after_hello_is_1009(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "small", {"limits": {"maxPayload": 200_000}})
    gw = gateway_factory("small")
    wire = Wire(gw.port)
    hello = wire.hello()
    assert hello["payload"]["policy"]["maxPayload"] == 200_000
    # Under the cap but over the pre-connect cap: fine after hello.
    assert wire.call("health", {"pad": "x" * 100_000})["ok"] is True
    wire.send(
        json.dumps(
            {"type": "req", "id": "big", "method": "health", "params": {"pad": "x" * 200_001}}
        )
    )
    assert wire.closed_with()[0] == 1009


def test_unknown_method_keeps_the_connection(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    res = wire.call("nope.nothing")
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: nope.nothing"}
    assert wire.call("last-heartbeat")["ok"] is True
    wire.close()


def test_missing_scope_is_forbidden_and_keeps_the_connection(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello(scopes=[])
    res = wire.call("status")
    assert res["error"] == {
        "code": "FORBIDDEN",
        "message": "missing scope: operator.read",
        "details": {
            "code": "MISSING_SCOPE",
            "missingScope": "operator.read",
            "requiredScopes": ["operator.read"],
        },
    }
    assert wire.call("health")["ok"] is True
    wire.close()


def test_invalid_params_name_the_field(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    res = wire.call("health", {"probe": "yes"})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == "invalid health params: at /probe: must be boolean"
    wire.close()


def test_core_methods(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    health = wire.call("health", {"probe": True})["payload"]
    assert health["ok"] is True and health["port"] == gateway.port and "durationMs" in health
    status = wire.call("status")["payload"]
    assert status["pid"] == gateway.pid and status["profile"] == "work"
    assert status["connections"]["operators"] == 1
    assert status["memory"]["rssBytes"] > 0
    presence = wire.call("system-presence")["payload"]
    assert {p["mode"] for p in presence} == {"gateway", "cli"}
    beat = wire.call("last-heartbeat")["payload"]
    assert beat["status"] == "ok" and beat["ts"] > 0
    ident = wire.call("gateway.identity.get")["payload"]
    assert len(ident["deviceId"]) == 64 and ident["publicKey"]
    assert wire.call("gateway.identity.get")["payload"]["deviceId"] == ident["deviceId"]
    key_file = gateway.state_dir / "identity" / "gateway-device.json"
    assert not (
        gateway.state_dir / "identity" / "device.json"
    ).exists()  # the reference's legacy name
    assert key_file.stat().st_mode & 0o777 == 0o600
    wire.close()


def test_pipelined_requests_all_answered(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    ids = [f"p{i}" for i in range(200)]
    for i, req_id in enumerate(ids):
        wire.request("last-heartbeat" if i % 2 else "health", req_id=req_id)
    got = set()
    while len(got) < len(ids):
        frame = wire.recv()
        if frame["type"] == "res":
            assert frame["ok"] is True
            got.add(frame["id"])
    assert got == set(ids)
    wire.close()


def test_ticks_and_presence_events_count_seq(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "ticky", {"limits": {"tickIntervalMs": 50}})
    gw = gateway_factory("ticky")
    watcher = Wire(gw.port)
    hello = watcher.hello()["payload"]
    assert hello["policy"]["tickIntervalMs"] == 50
    other = Wire(gw.port)
    other.hello()
    seqs, kinds = [], set()
    while not ({"tick", "presence"} <= kinds and len(seqs) >= 3):
        frame = watcher.recv()
        if frame["type"] == "event":
            seqs.append(frame["seq"])
            kinds.add(frame["event"])
            if frame["event"] == "presence":
                assert (
                    frame["stateVersion"]["presence"]
                    > hello["snapshot"]["stateVersion"]["presence"]
                )
            if frame["event"] == "tick":
                assert frame["payload"]["ts"] > 0
    assert seqs == list(range(1, len(seqs) + 1))
    watcher.close()
    other.close()


def test_unauthenticated_sockets_per_peer_are_capped(gateway: GatewayProcess) -> None:
    held = [Wire(gateway.port) for _ in range(32)]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 503")
    # Authenticating one frees a slot.
    held[0].hello()
    extra = Wire(gateway.port)
    assert extra.challenge["event"] == "connect.challenge"
    for wire in [*held, extra]:
        wire.close()


def test_garbage_after_hello_closes_only_that_client(gateway: GatewayProcess) -> None:
    good = Wire(gateway.port)
    good.hello()
    bad = Wire(gateway.port)
    bad.hello()
    bad.send(b"\xff\xfe binary")
    assert bad.closed_with()[0] == 1003
    bad2 = Wire(gateway.port)
    bad2.hello()
    bad2.send("{not json")
    assert bad2.closed_with()[0] == 1008
    assert good.call("last-heartbeat")["ok"] is True
    good.close()


def test_sigterm_sends_shutdown_then_1012_and_exits_0_fast(gateway: GatewayProcess) -> None:
    wire = Wire(gateway.port)
    wire.hello()
    started = time.monotonic()
    gateway.proc.terminate()
    while True:
        frame = wire.recv()
        if frame["type"] == "event" and frame["event"] == "shutdown":
            break
    assert frame["payload"]["reason"]
    assert wire.closed_with()[0] == 1012
    assert gateway.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 1.0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gateway.port), timeout=1).close()
    assert not (gateway.state_dir / "gateway.identity.json").exists()


def test_env_of_the_test_is_clean(home: Path) -> None:
    assert not any(k.startswith("OPENCLAW_") for k in clean_env(home))
