"""The gateway's own Ed25519 device identity, created once per profile and kept 0600.

``device.id`` is the hex SHA-256 of the raw 32-byte public key, as protocol.md defines for
every device; ``publicKey`` is that key in unpadded base64url.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import msgspec

from ..profiles.atomic import write_file_atomic


class DeviceIdentity(msgspec.Struct, frozen=True, rename="camel"):
    """What is stored: the key pair in base64url and the derived id."""

    device_id: str
    public_key: str
    private_key: str


def b64url(raw: bytes) -> str:
    """Unpadded base64url, the encoding OpenClaw uses for keys and signatures."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_or_create(path: Path) -> DeviceIdentity:
    """Read the identity at ``path``, creating (atomically, mode 0600) it on first use."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=DeviceIdentity)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    identity = DeviceIdentity(
        device_id=hashlib.sha256(public).hexdigest(),
        public_key=b64url(public),
        private_key=b64url(private),
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(path, msgspec.json.encode(identity), mode=0o600)
    return identity
