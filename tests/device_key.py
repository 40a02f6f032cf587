"""A device key for tests: signs connect params the way OpenClaw clients do (v3 string)."""

from __future__ import annotations

from typing import Any

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wire import Wire, connect_params

from openclaw_multi.protocol import device as d
from openclaw_multi.protocol.connect import ConnectParams

IOS = {
    "id": "openclaw-ios",
    "version": "2026.9.6",
    "platform": "iOS 18.1",
    "deviceFamily": "iPhone",
    "mode": "ui",
    "displayName": "Test iPhone",
}


class Key:
    """A device key pair that signs connect params the way OpenClaw clients do."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = d.b64url(raw)
        self.device_id = d.device_id_for(raw)

    def params(self, challenge: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        nonce, ts = challenge["payload"]["nonce"], challenge["payload"]["ts"]
        raw = connect_params(**{"client": dict(IOS), **overrides})
        typed = msgspec.convert(raw, ConnectParams)
        payload = d.payload_for(typed, device_id=self.device_id, signed_at_ms=ts, nonce=nonce)
        signature = d.b64url(self.private.sign(payload.encode()))
        raw["device"] = {
            "id": self.device_id,
            "publicKey": self.public_key,
            "signature": signature,
            "signedAt": ts,
            "nonce": nonce,
        }
        return raw

    def connect(self, port: int, **overrides: Any) -> tuple[Wire, dict[str, Any]]:
        wire = Wire(port)
        return wire, wire.call("connect", self.params(wire.challenge, **overrides))


def assert_refused(wire: Wire, res: dict[str, Any], detail_code: str) -> dict[str, Any]:
    assert res["ok"] is False, res
    assert res["error"]["details"]["code"] == detail_code, res
    assert wire.closed_with()[0] == 1008
    return res["error"]  # type: ignore[no-any-return]
