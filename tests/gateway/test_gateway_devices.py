"""Device identity and pairing against a real gateway process (docs/protocol.md, Devices)."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess
from device_key import Key, assert_refused
from wire import Wire

from openclaw_multi.client.gateway import GatewayClient
from openclaw_multi.client.identity import DeviceAuthStore, DeviceIdentity
from openclaw_multi.errors import GatewayCallFailed
from openclaw_multi.protocol import device as d

pytestmark = pytest.mark.e2e
TOKEN = "t0ken-" + uuid.uuid4().hex


def write_config(home: Path, profile: str, gateway: dict[str, Any]) -> None:
    state = home / f".openclaw-{profile}"
    state.mkdir(parents=True, exist_ok=True)
    (state / "openclaw.json").write_text(json.dumps({"gateway": gateway}))


def token_gateway(
    home: Path, factory: Callable[..., GatewayProcess], *, auto_approve: bool = True
) -> GatewayProcess:
    gateway: dict[str, Any] = {"auth": {"mode": "token"}}
    if not auto_approve:
        gateway["nodes"] = {"pairing": {"autoApproveLocal": False}}
    write_config(home, "dev1", gateway)
    env = {"OPENCLAW_PROFILE": "dev1", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return factory("dev1", env_extra=env)


class EventWire(Wire):
    """A Wire that keeps the events arriving while it waits for a response."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.events: list[dict[str, Any]] = []

    def response(self, req_id: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            frame = self.recv(timeout)
            if frame.get("type") == "res" and frame.get("id") == req_id:
                return frame
            if frame.get("type") == "event":
                self.events.append(frame)


def operator(port: int, **overrides: Any) -> EventWire:
    wire = EventWire(port)
    assert wire.hello(auth={"token": TOKEN}, **overrides)["ok"] is True
    return wire


def next_event(wire: EventWire, name: str, timeout: float = 5.0) -> dict[str, Any]:
    for i, frame in enumerate(wire.events):
        if frame["event"] == name:
            del wire.events[i]
            return frame["payload"]  # type: ignore[no-any-return]
    deadline = time.monotonic() + timeout
    while True:
        frame = wire.recv(max(0.05, deadline - time.monotonic()))
        if frame.get("type") == "event" and frame.get("event") == name:
            return frame["payload"]  # type: ignore[no-any-return]


def test_device_and_token_accepted_paired_locally_and_token_issued(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory)
    key = Key()
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    assert res["ok"] is True, res
    auth = res["payload"]["auth"]
    assert auth["method"] == "token"
    issued = auth["deviceToken"]
    assert len(d.b64url_decode(issued)) == 32 and isinstance(auth["issuedAtMs"], int)
    assert {"device.pair.list", "device.pair.approve"} <= set(res["payload"]["features"]["methods"])
    assert {"device.pair.requested", "device.pair.resolved"} <= set(
        res["payload"]["features"]["events"]
    )
    listed = wire.call("device.pair.list")["payload"]
    assert listed["pending"] == []
    [mine] = listed["paired"]
    assert mine["deviceId"] == key.device_id and mine["connected"] is True
    assert mine["approvedVia"] == "silent" and mine["displayName"] == "Test iPhone"
    assert mine["tokens"][0]["role"] == "operator" and "tokenHash" not in mine["tokens"][0]
    wire.close()

    paired = gw.state_dir / "devices" / "paired.json"
    assert stat.S_IMODE(paired.stat().st_mode) == 0o600
    assert stat.S_IMODE(paired.parent.stat().st_mode) == 0o700
    text = paired.read_text()
    assert issued not in text and TOKEN not in text
    assert json.loads(text)[key.device_id]["tokens"][0]["tokenHash"] == d.hash_token(issued)

    # The device token alone now gets the device in, and no new token is minted.
    again, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert res["ok"] is True, res
    assert res["payload"]["auth"]["method"] == "device-token"
    assert "deviceToken" not in res["payload"]["auth"]
    again.close()


def test_bad_signature_refused(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = token_gateway(home, gateway_factory)
    key = Key()
    wire = Wire(gw.port)
    params = key.params(wire.challenge, auth={"token": TOKEN})
    params["scopes"] = ["operator.admin"]  # not what was signed
    error = assert_refused(wire, wire.call("connect", params), "DEVICE_AUTH_SIGNATURE_INVALID")
    assert error == {
        "code": "INVALID_REQUEST",
        "message": "device signature invalid",
        "details": {"code": "DEVICE_AUTH_SIGNATURE_INVALID", "reason": "device-signature"},
    }


def test_replayed_connect_refused_and_throttled(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory)
    key = Key()
    first = Wire(gw.port)
    captured = key.params(first.challenge, auth={"token": TOKEN})
    assert first.call("connect", captured)["ok"] is True
    first.close()
    # The same signed frame on a new socket carries the old socket's nonce.
    replay = Wire(gw.port)
    assert replay.challenge["payload"]["nonce"] != captured["device"]["nonce"]
    assert_refused(replay, replay.call("connect", captured), "DEVICE_AUTH_NONCE_MISMATCH")
    # Failed device auth counts like a bad token: the next failure's reply is held back.
    again = Wire(gw.port)
    started = time.monotonic()
    assert_refused(again, again.call("connect", captured), "DEVICE_AUTH_NONCE_MISMATCH")
    assert time.monotonic() - started >= 0.4


def test_wrong_device_id_for_key_refused(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory)
    key, other = Key(), Key()
    wire = Wire(gw.port)
    params = key.params(wire.challenge, auth={"token": TOKEN})
    params["device"]["id"] = other.device_id
    error = assert_refused(wire, wire.call("connect", params), "DEVICE_AUTH_DEVICE_ID_MISMATCH")
    assert error["message"] == "device identity mismatch"


def test_signed_device_without_any_secret_is_unauthorized(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory)
    wire, res = Key().connect(gw.port)
    error = assert_refused(wire, res, "AUTH_TOKEN_MISSING")
    assert error["message"] == "unauthorized: gateway token missing (provide gateway auth token)"


def test_pairing_flow_pending_approve_token_remove(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory, auto_approve=False)
    op = operator(gw.port)
    key = Key()

    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    error = assert_refused(wire, res, "PAIRING_REQUIRED")
    assert error["code"] == "NOT_PAIRED"
    assert error["message"] == "pairing required: device is not approved yet"
    request_id = error["details"]["requestId"]
    assert error["details"]["deviceId"] == key.device_id

    requested = next_event(op, "device.pair.requested")
    assert requested["requestId"] == request_id
    assert requested["deviceId"] == key.device_id
    assert requested["publicKey"] == key.public_key
    assert requested["clientId"] == "openclaw-ios" and requested["platform"] == "iOS 18.1"
    assert requested["role"] == "operator" and requested["remoteIp"] == "127.0.0.1"
    pending = op.call("device.pair.list")["payload"]["pending"]
    assert [p["requestId"] for p in pending] == [request_id]
    assert (gw.state_dir / "devices" / "pending.json").exists()

    # Asking again refreshes the same request: no second event, same id.
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    assert assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"] == request_id

    approved = op.call("device.pair.approve", {"requestId": request_id})
    assert approved["ok"] is True, approved
    assert approved["payload"]["device"]["deviceId"] == key.device_id
    resolved = next_event(op, "device.pair.resolved")
    assert resolved["requestId"] == request_id and resolved["decision"] == "approved"
    assert op.call("device.pair.approve", {"requestId": request_id})["error"]["message"] == (
        "unknown requestId"
    )

    # Reconnect with the shared token: accepted, and a device token is handed out.
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    assert res["ok"] is True, res
    issued = res["payload"]["auth"]["deviceToken"]
    wire.close()
    wire, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert res["ok"] is True and res["payload"]["auth"]["method"] == "device-token"

    # Remove: its live connection is closed and the token stops working.
    removed = op.call("device.pair.remove", {"deviceId": key.device_id})
    assert removed["payload"] == {"deviceId": key.device_id}
    assert wire.closed_with()[0] == 1008
    again, res = key.connect(gw.port, auth={"deviceToken": issued})
    error = assert_refused(again, res, "AUTH_DEVICE_TOKEN_MISMATCH")
    assert error["message"] == "unauthorized: device token mismatch (rotate/reissue device token)"
    op.close()


def test_reject_and_revoke(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = token_gateway(home, gateway_factory, auto_approve=False)
    op = operator(gw.port)
    key = Key()
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    rejected = op.call("device.pair.reject", {"requestId": request_id})
    assert rejected["payload"] == {"requestId": request_id, "deviceId": key.device_id}
    assert next_event(op, "device.pair.resolved")["decision"] == "rejected"
    assert op.call("device.pair.list")["payload"]["pending"] == []

    # Pair it again, take a token, then revoke that token: pairing stays, token dies.
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    assert op.call("device.pair.approve", {"requestId": request_id})["ok"] is True
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    issued = res["payload"]["auth"]["deviceToken"]
    wire.close()
    revoked = op.call("device.token.revoke", {"deviceId": key.device_id, "role": "operator"})
    assert revoked["payload"]["role"] == "operator" and revoked["payload"]["revokedAtMs"] > 0
    wire, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert_refused(wire, res, "AUTH_DEVICE_TOKEN_MISMATCH")
    [paired] = op.call("device.pair.list")["payload"]["paired"]
    assert "revokedAtMs" in paired["tokens"][0]
    op.close()


def test_open_gateway_unknown_device_without_secret_is_pending(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    write_config(home, "open", {"nodes": {"pairing": {"autoApproveLocal": False}}})
    gw = gateway_factory("open")
    op = EventWire(gw.port)
    assert op.hello()["ok"] is True
    key = Key()
    wire, res = key.connect(gw.port)
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    assert next_event(op, "device.pair.requested")["requestId"] == request_id
    op.close()


def test_operator_without_pairing_scope_gets_no_pairing_events_or_methods(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory, auto_approve=False)
    reader = operator(gw.port, scopes=["operator.read"])
    denied = reader.call("device.pair.list")
    assert denied["error"]["code"] == "FORBIDDEN"
    wire, res = Key().connect(gw.port, auth={"token": TOKEN})
    assert_refused(wire, res, "PAIRING_REQUIRED")
    # A round trip after the request: had the event been sent, it would be here first.
    assert reader.call("health")["ok"] is True
    assert not [e for e in reader.events if e["event"].startswith("device.")]
    reader.close()


def test_approver_must_hold_the_scopes_it_grants(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory, auto_approve=False)
    pairing_only = Wire(gw.port)
    assert pairing_only.hello(auth={"token": TOKEN}, scopes=["operator.pairing"])["ok"] is True
    wire, res = Key().connect(gw.port, auth={"token": TOKEN}, scopes=["operator.admin"])
    request_id = assert_refused(wire, res, "PAIRING_REQUIRED")["details"]["requestId"]
    denied = pairing_only.call("device.pair.approve", {"requestId": request_id})
    assert denied["error"] == {
        "code": "INVALID_REQUEST",
        "message": "missing scope: operator.admin",
    }
    pairing_only.close()


def test_gateway_client_signs_and_keeps_its_device_token(
    home: Path, gateway_factory: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    gw = token_gateway(home, gateway_factory)
    identity = DeviceIdentity.generate()
    store = DeviceAuthStore(tmp_path / "identity", identity.device_id)

    async def scenario() -> tuple[str, str, str]:
        first = await GatewayClient.connect(gw.url, token=TOKEN, device=identity, device_auth=store)
        async with first:
            method1 = str(first.hello.auth.method)
        second = await GatewayClient.connect(gw.url, device=identity, device_auth=store)
        async with second:
            method2 = str(second.hello.auth.method)
            listed = await second.call("device.pair.list")
        return method1, method2, listed["paired"][0]["deviceId"]

    method1, method2, listed_id = asyncio.run(scenario())
    assert (method1, method2, listed_id) == ("token", "device-token", identity.device_id)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    # A stored token the gateway no longer knows is refused once, then forgotten.
    async def after_removal() -> None:
        admin = await GatewayClient.connect(gw.url, token=TOKEN)
        async with admin:
            await admin.call("device.pair.remove", {"deviceId": identity.device_id})
        with pytest.raises(GatewayCallFailed) as info:
            await GatewayClient.connect(gw.url, device=identity, device_auth=store)
        assert info.value.details == {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}

    asyncio.run(after_removal())
    assert store.load(gw.url, "operator") is None


def test_last_seen_waits_in_memory_and_is_written_at_shutdown(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """A device-token connect only updates bookkeeping: no write per connect; a SIGTERM'd
    gateway writes it."""
    gw = token_gateway(home, gateway_factory)
    key = Key()
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    issued = res["payload"]["auth"]["deviceToken"]
    wire.close()
    again, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert res["payload"]["auth"]["method"] == "device-token", res
    op = operator(gw.port)
    [mine] = op.call("device.pair.list")["payload"]["paired"]
    op.close()
    again.close()
    assert gw.stop() == 0
    stored = json.loads((gw.state_dir / "devices" / "paired.json").read_text())[key.device_id]
    assert stored["lastSeenAtMs"] == mine["lastSeenAtMs"]
    assert stored["tokens"][0]["lastUsedAtMs"] == mine["tokens"][0]["lastUsedAtMs"] is not None


def test_a_token_issued_at_connect_survives_a_sigkill_right_after_hello_ok(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    gw = token_gateway(home, gateway_factory)
    key = Key()
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    issued = res["payload"]["auth"]["deviceToken"]
    gw.stop(signal.SIGKILL)
    wire.close()

    gw = token_gateway(home, gateway_factory)
    again, res = key.connect(gw.port, auth={"deviceToken": issued})
    assert res["ok"] is True, res
    assert res["payload"]["auth"]["method"] == "device-token"
    again.close()


class OriginWire(EventWire):
    """An EventWire whose upgrade carries an ``Origin`` header, as a web page's would."""

    def __init__(self, port: int, origin: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(
            f"ws://127.0.0.1:{port}/",
            compression=None,
            proxy=None,
            open_timeout=5,
            close_timeout=5,
            ping_interval=None,
            origin=origin,  # type: ignore[arg-type]
            legacy=True,  # a plain object, closed explicitly, as tests/wire.py does
        )
        self.challenge = self.recv()
        self.events = []


def test_a_web_page_is_not_paired_silently(
    home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """An Origin on the upgrade (a browser page, even this gateway's own origin) means no
    silent local pairing unless the client is the Control UI or webchat (the reference's
    shouldAllowSilentLocalPairing): it waits for an operator instead."""
    gw = token_gateway(home, gateway_factory)
    own = f"http://127.0.0.1:{gw.port}"
    op = operator(gw.port)
    key = Key()
    page = OriginWire(gw.port, own)
    res = page.call("connect", key.params(page.challenge, auth={"token": TOKEN}))
    error = assert_refused(page, res, "PAIRING_REQUIRED")
    assert error["code"] == "NOT_PAIRED"
    requested = next_event(op, "device.pair.requested")
    assert requested["deviceId"] == key.device_id and not requested.get("silent")
    listed = op.call("device.pair.list")["payload"]
    assert [p["deviceId"] for p in listed["pending"]] == [key.device_id]
    assert listed["paired"] == []

    # The same device without an Origin (not a browser) is paired on the spot.
    wire, res = key.connect(gw.port, auth={"token": TOKEN})
    assert res["ok"] is True, res
    wire.close()

    # The Control UI from its own page (an Origin) still pairs silently, as in the reference.
    ui_key = Key()
    ui = OriginWire(gw.port, own)
    control_ui = {"id": "openclaw-control-ui", "version": "1", "platform": "web", "mode": "webchat"}
    res = ui.call("connect", ui_key.params(ui.challenge, client=control_ui, auth={"token": TOKEN}))
    assert res["ok"] is True, res
    paired = {p["deviceId"]: p for p in op.call("device.pair.list")["payload"]["paired"]}
    assert paired[ui_key.device_id]["approvedVia"] == "silent"
    ui.close()
    op.close()


def test_silent_approval_rule_with_an_origin() -> None:
    rule = d.allow_silent_approval
    base: dict[str, Any] = {"local": True, "auto_approve_local": True, "method": "token"}
    assert rule("not-paired", **base)
    assert not rule("not-paired", **base, browser_origin=True)
    assert not rule("role-upgrade", **base, browser_origin=True)
    assert rule("not-paired", **base, browser_origin=True, ui_client=True)
    # An Origin never makes a remote or disabled pairing silent.
    assert not rule("not-paired", **{**base, "local": False}, browser_origin=True, ui_client=True)
    off = {**base, "auto_approve_local": False}
    assert not rule("not-paired", **off, browser_origin=True, ui_client=True)
    for client_id, mode in (
        ("openclaw-control-ui", "ui"),
        ("openclaw-tui", "ui"),
        ("webchat-ui", "ui"),
        ("anything", "webchat"),
    ):
        assert d.is_ui_or_webchat_client(client_id, mode)
    assert not d.is_ui_or_webchat_client("cli", "cli")
    assert not d.is_ui_or_webchat_client("openclaw-browser-copilot", "ui")
