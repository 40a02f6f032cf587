"""Device identity on the wire: the signed connect string, its check, and pairing decisions.

Theory of operation (protocol.md, Handshake; the reference gateway 2026.9.6,
``connect-device-proof.ts``, ``handshake-auth-helpers.ts``, ``device-auth.ts``): a client
with an Ed25519 key sends a ``device`` block ``{id, publicKey, signature, signedAt, nonce}``
in ``connect``. The signature covers the UTF-8 string::

    v3|<device.id>|<client.id>|<client.mode>|<role>|<scopes joined by ",">|<signedAt>|
      <auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? "">|<nonce>|
      <client.platform, trimmed, ASCII-lowercased>|<client.deviceFamily, likewise>

(one line; the older ``v2`` string, the first nine fields, is still accepted as the reference
does). A node host signs the same string with ``node-host|node|node|`` and no scopes. The
gateway checks, in the reference's order, and refuses each failure with its own
``details.code`` (INVALID_REQUEST, close 1008): the id is the hex SHA-256 of the raw 32-byte
key, ``signedAt`` is within :data:`SIGNATURE_SKEW_MS` of the gateway's clock, the nonce is
this connection's challenge nonce (a signed connect replayed on another socket carries a
stale nonce), the signature verifies, the key decodes.

After the proof, the device must be paired for the role and scopes it asks for; otherwise
a pairing request is raised (NOT_PAIRED ``pairing required: ...``). Every function here is
pure: keys, clocks and stores come in as plain values. ``cryptography`` does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from . import codes, scopes
from .connect import AuthParams, ConnectParams
from .frames import ErrorShape
from .handshake import Accepted, Rejected, mismatch_hint

SIGNATURE_SKEW_MS: Final = 120_000
"""How far ``signedAt`` may be from the gateway's clock (the reference's
``DEVICE_SIGNATURE_SKEW_MS``). Clients sign the challenge ``ts``, so only a slow handshake
or a replay from long ago comes near it; the nonce check is what stops replays."""
PENDING_TTL_MS: Final = 300_000
"""A pairing request not approved in 5 minutes is dropped (``DEVICE_PAIRING_PENDING_TTL_MS``)."""
MAX_KEY_TEXT: Final = 4096

PairingReason = Literal["not-paired", "role-upgrade", "scope-upgrade"]

# details.code, message, per verifier reason (connect-error-details.ts).
DEVICE_ERRORS: Final[dict[str, tuple[str, str]]] = {
    "device-id-mismatch": ("DEVICE_AUTH_DEVICE_ID_MISMATCH", "device identity mismatch"),
    "device-signature-stale": ("DEVICE_AUTH_SIGNATURE_EXPIRED", "device signature expired"),
    "device-nonce-missing": ("DEVICE_AUTH_NONCE_REQUIRED", "device nonce required"),
    "device-nonce-mismatch": ("DEVICE_AUTH_NONCE_MISMATCH", "device nonce mismatch"),
    "device-signature": ("DEVICE_AUTH_SIGNATURE_INVALID", "device signature invalid"),
    "device-public-key": ("DEVICE_AUTH_PUBLIC_KEY_INVALID", "device public key invalid"),
}

_PAIRING: Final[dict[str, tuple[str, str]]] = {
    # reason: (message suffix, remediation hint), as PAIRING_CONNECT_REASON_METADATA.
    "not-paired": (
        "device is not approved yet",
        "Approve this device from the pending pairing requests.",
    ),
    "role-upgrade": (
        "device is asking for a higher role than currently approved",
        "Review the requested role upgrade, then approve the pending request.",
    ),
    "scope-upgrade": (
        "device is asking for more scopes than currently approved",
        "Review the requested scopes, then approve the pending upgrade.",
    ),
}


# -- encodings ---------------------------------------------------------------------------------
def b64url(raw: bytes) -> str:
    """Unpadded base64url, the encoding of keys, signatures and device tokens."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url or base64, padded or not (the reference's permissive decoder).

    Raises:
        ValueError: Not base64, or longer than :data:`MAX_KEY_TEXT` characters.
    """
    if len(text) > MAX_KEY_TEXT:
        raise ValueError("base64url input exceeds the maximum allowed length")
    normalized = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except binascii.Error as err:
        raise ValueError(str(err)) from None


def decode_public_key(text: str) -> bytes | None:
    """The raw 32-byte Ed25519 key from base64url, base64 or a PEM ``PUBLIC KEY``, else None."""
    try:
        if "BEGIN" in text:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                return None
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw = b64url_decode(text)
    except (ValueError, TypeError):
        return None
    return raw if len(raw) == 32 else None


def device_id_for(public_key_raw: bytes) -> str:
    """A device's id: the hex SHA-256 of its raw public key."""
    return hashlib.sha256(public_key_raw).hexdigest()


def normalize_metadata(value: str | None) -> str:
    """``platform``/``deviceFamily`` as signed: trimmed, ASCII letters lowercased, else ``""``."""
    if not value:
        return ""
    return value.strip().translate(_ASCII_LOWER)


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def signature_token(auth: AuthParams) -> str:
    """The secret in the signed string: ``token``, else ``deviceToken``, else
    ``bootstrapToken``, else ``""`` (a password is never signed)."""
    for value in (auth.token, auth.device_token, auth.bootstrap_token):
        if value is not None:
            return value
    return ""


def signed_payload(
    *,
    version: Literal["v2", "v3"] = "v3",
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: Iterable[str],
    signed_at_ms: int,
    token: str,
    nonce: str,
    platform: str | None = None,
    device_family: str | None = None,
) -> str:
    """The string a device signs (module docstring); ``v2`` leaves out platform and family."""
    fields = [
        version,
        device_id,
        client_id,
        client_mode,
        role,
        ",".join(scopes),
        str(signed_at_ms),
        token,
        nonce,
    ]
    if version == "v3":
        fields += [normalize_metadata(platform), normalize_metadata(device_family)]
    return "|".join(fields)


def payload_for(params: ConnectParams, *, device_id: str, signed_at_ms: int, nonce: str) -> str:
    """The v3 string for these connect params (what a client signs and the gateway checks)."""
    client = params.client
    return signed_payload(
        device_id=device_id,
        client_id=client.id,
        client_mode=client.mode,
        role=params.role,
        scopes=params.scopes,
        signed_at_ms=signed_at_ms,
        token=signature_token(params.auth),
        nonce=nonce,
        platform=client.platform,
        device_family=client.device_family,
    )


def sign(private_key_raw: bytes, payload: str) -> str:
    """Sign ``payload`` (UTF-8) with a raw 32-byte Ed25519 private key; base64url signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(private_key_raw)
    return b64url(key.sign(payload.encode("utf-8")))


def verify(public_key_raw: bytes, payload: str, signature: str) -> bool:
    """Whether ``signature`` (base64url) is ``payload`` signed by this key. Never raises."""
    # Imported on first use: cryptography costs ~8 MB and ~40 ms at start-up, and a gateway
    # that never sees a device block (token-only clients, like the CLI) never needs it.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        key.verify(b64url_decode(signature), payload.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- the proof ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceProof:
    """A device block that checked out: its id, canonical key and which string it signed."""

    device_id: str
    public_key: str
    version: Literal["v2", "v3"]


def device_auth_error(reason: str) -> Rejected:
    """The refusal for one verifier ``reason`` (a key of :data:`DEVICE_ERRORS`)."""
    detail, message = DEVICE_ERRORS[reason]
    return Rejected(
        ErrorShape(
            code=codes.INVALID_REQUEST,
            message=message,
            details={"code": detail, "reason": reason},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )


def verify_device_proof(
    params: ConnectParams, *, nonce: str, now_ms: int, skew_ms: int = SIGNATURE_SKEW_MS
) -> DeviceProof | Rejected:
    """Check ``params.device`` against this connection's challenge ``nonce`` and the clock.

    The order is the reference's, so a client sees the same first failure: id, freshness,
    nonce present, nonce matches, signature (v3, then v2), key encoding.
    """
    device = params.device
    assert device is not None, "only for connects with a device block"
    raw = decode_public_key(device.public_key)
    if raw is None or device_id_for(raw) != device.id:
        return device_auth_error("device-id-mismatch")
    if abs(now_ms - device.signed_at) > skew_ms:
        return device_auth_error("device-signature-stale")
    given = device.nonce.strip()
    if not given:
        return device_auth_error("device-nonce-missing")
    if not hmac.compare_digest(given.encode(), nonce.encode()):
        return device_auth_error("device-nonce-mismatch")
    v3 = payload_for(params, device_id=device.id, signed_at_ms=device.signed_at, nonce=given)
    version: Literal["v2", "v3"] = "v3"
    if not verify(raw, v3, device.signature):
        client = params.client
        v2 = signed_payload(
            version="v2",
            device_id=device.id,
            client_id=client.id,
            client_mode=client.mode,
            role=params.role,
            scopes=params.scopes,
            signed_at_ms=device.signed_at,
            token=signature_token(params.auth),
            nonce=given,
        )
        if not verify(raw, v2, device.signature):
            return device_auth_error("device-signature")
        version = "v2"
    return DeviceProof(device_id=device.id, public_key=b64url(raw), version=version)


# -- device tokens -------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    """What is stored for a device token: the hex SHA-256 of its UTF-8 text (never the token)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Compare a presented device token with a stored hash in constant time."""
    if not token.strip() or not stored_hash:
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)


# -- pairing decisions -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceAccepted(Accepted):
    """An accepted connect from a device: who it is and the device token to hand it, if any."""

    device_id: str = ""
    device_token: str | None = None
    issued_at_ms: int | None = None


def approved_scopes_cover(approved: Iterable[str], requested: Iterable[str]) -> bool:
    """Whether an approval of ``approved`` scopes allows every ``requested`` one."""
    granted = frozenset(approved)
    return all(scopes.covers(granted, scope) for scope in requested if scope in scopes.KNOWN)


def pairing_reason(
    *,
    paired_public_key: str | None,
    paired_roles: Iterable[str],
    paired_scopes: Iterable[str],
    public_key: str,
    role: str,
    requested_scopes: Iterable[str],
) -> PairingReason | None:
    """Why this device still needs an operator's approval, or None if its pairing covers it.

    A different key under the same id (impossible without a SHA-256 collision) or no record
    is ``not-paired``; a role never approved is ``role-upgrade``; an operator scope beyond
    the approved ones is ``scope-upgrade``.
    """
    if paired_public_key is None or paired_public_key != public_key:
        return "not-paired"
    if role not in set(paired_roles):
        return "role-upgrade"
    if role == "operator" and not approved_scopes_cover(paired_scopes, requested_scopes):
        return "scope-upgrade"
    return None


# The reference's isOperatorUiClient (less the browser copilot) and isWebchatClient.
_UI_CLIENT_IDS: Final = frozenset({"openclaw-control-ui", "openclaw-tui", "webchat-ui"})


def is_ui_or_webchat_client(client_id: str, mode: str) -> bool:
    """The Control UI, the TUI, or webchat: clients whose browser connects may pair silently."""
    return client_id in _UI_CLIENT_IDS or mode == "webchat"


def allow_silent_approval(
    reason: PairingReason,
    *,
    local: bool,
    auto_approve_local: bool,
    method: str,
    browser_origin: bool = False,
    ui_client: bool = False,
) -> bool:
    """Whether a pairing is approved on the spot (``shouldAllowSilentLocalPairing``).

    Only for a direct loopback connect, and only while ``gateway.nodes.pairing.autoApproveLocal``
    is not false; a scope upgrade further needs the connect to be shared-secret (or open)
    authenticated, not by a device token. A connect whose upgrade carried an ``Origin``
    (``browser_origin``: a web page) is never approved silently unless it is the Control UI
    or webchat (``ui_client``, see :func:`is_ui_or_webchat_client`): a local page the user
    happens to visit must not pair itself as, say, the CLI.
    """
    if not local:
        return False
    if browser_origin and not ui_client:
        return False
    if not auto_approve_local:
        return False
    if reason == "scope-upgrade":
        return method in ("none", "token", "password")
    return True


def pairing_required(
    reason: PairingReason,
    *,
    request_id: str | None,
    device_id: str,
    role: str,
    requested_scopes: list[str],
) -> Rejected:
    """NOT_PAIRED ``pairing required: <why>`` with the reference's ``PAIRING_REQUIRED`` details."""
    requirement, hint = _PAIRING[reason]
    details: dict[str, object] = {"code": "PAIRING_REQUIRED", "reason": reason}
    if request_id:
        details["requestId"] = request_id
    details.update(
        remediationHint=hint,
        deviceId=device_id,
        requestedRole=role,
        requestedScopes=requested_scopes,
    )
    return Rejected(
        ErrorShape(
            code=codes.NOT_PAIRED,
            message=f"pairing required: {requirement}",
            details=details,
        ),
        codes.CLOSE_POLICY_VIOLATION,
    )


def device_token_mismatch() -> Rejected:
    """A device token that is unknown, revoked, or not this device's."""
    return Rejected(
        ErrorShape(
            code=codes.INVALID_REQUEST,
            message="unauthorized: device token mismatch (rotate/reissue device token)",
            details={"code": "AUTH_DEVICE_TOKEN_MISMATCH"},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )


def device_token_scope_mismatch() -> Rejected:
    """A valid device token asked for more than it was issued for."""
    return Rejected(
        ErrorShape(
            code=codes.INVALID_REQUEST,
            message="unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
            details={"code": "AUTH_SCOPE_MISMATCH"},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )


def secret_missing(kind: str, params: ConnectParams, local: bool) -> Rejected:
    """A signed device with no credential at all on a token/password gateway.

    The signature proves the key, not the right to connect: the reference answers
    ``unauthorized: gateway token missing (...)`` (``AUTH_TOKEN_MISSING``) here, not
    ``device identity required``.
    """
    hint = mismatch_hint(kind, params, local)
    if kind == "token" and hint.startswith("open the dashboard"):
        hint = "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
    return Rejected(
        ErrorShape(
            code=codes.INVALID_REQUEST,
            message=f"unauthorized: gateway {kind} missing ({hint})",
            details={"code": f"AUTH_{kind.upper()}_MISSING"},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )
