"""The signed connect string and its verification (protocol/device.py), with plain values.

The vector below was produced by the reference itself (OpenClaw 2026.9.6,
``buildDeviceAuthPayloadV3`` from ``dist/device-auth-*.mjs``, signed with ``node:crypto``)
for the private key bytes 0..31, so a match here is a match with real clients.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openclaw_multi.protocol import device as d
from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.handshake import Rejected

PRIVATE = bytes(range(32))
PUBLIC = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
DEVICE_ID = "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
NONCE = "5f0c1c2e-1111-4222-8333-944455556666"
SIGNED_AT = 1_760_000_000_000
REF_PAYLOAD = (
    f"v3|{DEVICE_ID}|openclaw-ios|ui|operator|operator.read,operator.write|{SIGNED_AT}"
    f"||{NONCE}|ios 18.1|iphone"
)
REF_SIGNATURE = (
    "firmKwFPCqrrGF7sOMNJCCZHEF5Xkr7PYB7vK7HQhWgZ3E8pyWnO0yYxecWjHxStJtJujRM6gOC_NcZRBwzeBQ"
)


def params(**overrides: Any) -> ConnectParams:
    raw: dict[str, Any] = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {
            "id": "openclaw-ios",
            "version": "1",
            "platform": " iOS 18.1 ",
            "deviceFamily": "iPhone",
            "mode": "ui",
        },
        "role": "operator",
        "scopes": ["operator.read", "operator.write"],
        "device": {
            "id": DEVICE_ID,
            "publicKey": PUBLIC,
            "signature": REF_SIGNATURE,
            "signedAt": SIGNED_AT,
            "nonce": NONCE,
        },
    }
    raw.update(overrides)
    return msgspec.convert(raw, ConnectParams)


def signed(**overrides: Any) -> ConnectParams:
    """Params whose device block is signed correctly for what they say."""
    p = params(**overrides)
    assert p.device is not None
    payload = d.payload_for(p, device_id=p.device.id, signed_at_ms=p.device.signed_at, nonce=NONCE)
    device = msgspec.structs.replace(p.device, signature=d.sign(PRIVATE, payload))
    return msgspec.structs.replace(p, device=device)


def refusal(result: object) -> tuple[str, str, Any]:
    assert isinstance(result, Rejected)
    assert result.close_code == 1008
    return result.error.code, result.error.message, result.error.details


def test_reference_vector_string_and_signature() -> None:
    assert d.device_id_for(d.decode_public_key(PUBLIC) or b"") == DEVICE_ID
    assert d.payload_for(params(), device_id=DEVICE_ID, signed_at_ms=SIGNED_AT, nonce=NONCE) == (
        REF_PAYLOAD
    )
    assert d.sign(PRIVATE, REF_PAYLOAD) == REF_SIGNATURE  # Ed25519 is deterministic
    assert d.verify(d.decode_public_key(PUBLIC) or b"", REF_PAYLOAD, REF_SIGNATURE)


def test_token_slot_is_token_then_device_token_then_bootstrap_never_password() -> None:
    def slot(**auth: str) -> str:
        return d.signature_token(params(auth=auth).auth)

    assert slot() == ""
    assert slot(password="pw") == ""
    assert slot(bootstrapToken="b") == "b"
    assert slot(deviceToken="dt", bootstrapToken="b") == "dt"
    assert slot(token="t", deviceToken="dt") == "t"


def test_node_host_string_has_no_scopes_and_empty_family() -> None:
    text = d.signed_payload(
        device_id="id",
        client_id="node-host",
        client_mode="node",
        role="node",
        scopes=[],
        signed_at_ms=5,
        token="tok",
        nonce="n",
        platform="Linux",
        device_family=None,
    )
    assert text == "v3|id|node-host|node|node||5|tok|n|linux|"


def test_metadata_lowercases_ascii_only() -> None:
    assert d.normalize_metadata("  MacBookPro ÄÖ ") == "macbookpro ÄÖ"
    assert d.normalize_metadata(None) == ""


def test_valid_proof() -> None:
    proof = d.verify_device_proof(params(), nonce=NONCE, now_ms=SIGNED_AT + 1000)
    assert proof == d.DeviceProof(DEVICE_ID, PUBLIC, "v3")


def test_v2_signature_still_accepted() -> None:
    v2 = d.signed_payload(
        version="v2",
        device_id=DEVICE_ID,
        client_id="openclaw-ios",
        client_mode="ui",
        role="operator",
        scopes=["operator.read", "operator.write"],
        signed_at_ms=SIGNED_AT,
        token="",
        nonce=NONCE,
    )
    p = params()
    assert p.device is not None
    p = msgspec.structs.replace(
        p, device=msgspec.structs.replace(p.device, signature=d.sign(PRIVATE, v2))
    )
    proof = d.verify_device_proof(p, nonce=NONCE, now_ms=SIGNED_AT)
    assert isinstance(proof, d.DeviceProof) and proof.version == "v2"


def test_pem_public_key_accepted() -> None:
    pem = (
        Ed25519PrivateKey.from_private_bytes(PRIVATE)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    p = params()
    assert p.device is not None
    p = msgspec.structs.replace(p, device=msgspec.structs.replace(p.device, public_key=pem))
    proof = d.verify_device_proof(p, nonce=NONCE, now_ms=SIGNED_AT)
    assert isinstance(proof, d.DeviceProof) and proof.public_key == PUBLIC


@pytest.mark.parametrize(
    ("device", "now", "reason"),
    [
        ({"id": "0" * 64}, SIGNED_AT, "device-id-mismatch"),
        ({"publicKey": "not a key!"}, SIGNED_AT, "device-id-mismatch"),
        ({}, SIGNED_AT + d.SIGNATURE_SKEW_MS + 1, "device-signature-stale"),
        ({}, SIGNED_AT - d.SIGNATURE_SKEW_MS - 1, "device-signature-stale"),
        ({"nonce": "  "}, SIGNED_AT, "device-nonce-missing"),
        ({"nonce": "an-older-connections-nonce"}, SIGNED_AT, "device-nonce-mismatch"),
        ({"signature": REF_SIGNATURE[:-4] + "AAAA"}, SIGNED_AT, "device-signature"),
        ({"signature": "%%%"}, SIGNED_AT, "device-signature"),
    ],
)
def test_each_failure_has_its_own_code(device: dict[str, Any], now: int, reason: str) -> None:
    p = params()
    assert p.device is not None
    raw = msgspec.to_builtins(p.device)
    raw.update(device)
    p = msgspec.structs.replace(p, device=msgspec.convert(raw, type(p.device)))
    code, message, details = refusal(d.verify_device_proof(p, nonce=NONCE, now_ms=now))
    detail_code, expected_message = d.DEVICE_ERRORS[reason]
    assert (code, message, details) == (
        "INVALID_REQUEST",
        expected_message,
        {"code": detail_code, "reason": reason},
    )


def test_signature_binds_every_field() -> None:
    # A valid signature for one request does not carry over to a changed one.
    for change in (
        {"role": "node"},
        {"scopes": ["operator.admin"]},
        {"auth": {"token": "other"}},
        {
            "client": {
                "id": "openclaw-ios",
                "version": "1",
                "platform": "android",
                "deviceFamily": "iPhone",
                "mode": "ui",
            }
        },
    ):
        good = signed()
        assert good.device is not None
        tampered = msgspec.structs.replace(params(**change), device=good.device)
        _, _, details = refusal(d.verify_device_proof(tampered, nonce=NONCE, now_ms=SIGNED_AT))
        assert details["code"] == "DEVICE_AUTH_SIGNATURE_INVALID"


def test_token_hash_round_trip() -> None:
    digest = d.hash_token("secret-token")
    assert "secret-token" not in digest and len(digest) == 64
    assert d.token_matches("secret-token", digest)
    assert not d.token_matches("secret-tokeN", digest)
    assert not d.token_matches("", d.hash_token(""))
    assert not d.token_matches("secret-token", "")


def test_pairing_reason() -> None:
    def reason(**kw: Any) -> str | None:
        base: dict[str, Any] = {
            "paired_public_key": PUBLIC,
            "paired_roles": ["operator"],
            "paired_scopes": ["operator.write"],
            "public_key": PUBLIC,
            "role": "operator",
            "requested_scopes": ["operator.read", "operator.write"],
        }
        base.update(kw)
        return d.pairing_reason(**base)

    assert reason() is None
    assert reason(paired_public_key=None) == "not-paired"
    assert reason(paired_public_key="other") == "not-paired"
    assert reason(role="node") == "role-upgrade"
    assert reason(requested_scopes=["operator.admin"]) == "scope-upgrade"
    assert reason(requested_scopes=["operator.unknown"]) is None  # never granted anyway


def test_silent_approval_only_local_and_when_allowed() -> None:
    assert d.allow_silent_approval("not-paired", local=True, auto_approve_local=True, method="x")
    assert not d.allow_silent_approval(
        "not-paired", local=False, auto_approve_local=True, method="token"
    )
    assert not d.allow_silent_approval(
        "not-paired", local=True, auto_approve_local=False, method="token"
    )
    assert d.allow_silent_approval(
        "scope-upgrade", local=True, auto_approve_local=True, method="token"
    )
    assert not d.allow_silent_approval(
        "scope-upgrade", local=True, auto_approve_local=True, method="device-token"
    )


def test_pairing_required_shape() -> None:
    code, message, details = refusal(
        d.pairing_required(
            "not-paired",
            request_id="r1",
            device_id=DEVICE_ID,
            role="operator",
            requested_scopes=["operator.read"],
        )
    )
    assert code == "NOT_PAIRED"
    assert message == "pairing required: device is not approved yet"
    assert details == {
        "code": "PAIRING_REQUIRED",
        "reason": "not-paired",
        "requestId": "r1",
        "remediationHint": "Approve this device from the pending pairing requests.",
        "deviceId": DEVICE_ID,
        "requestedRole": "operator",
        "requestedScopes": ["operator.read"],
    }
