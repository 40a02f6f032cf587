"""This client's own device identity (an Ed25519 key pair) and the device tokens it was given.

Files, both 0600 in a 0700 directory, written atomically:

* ``<state dir>/identity/cli-device.json``: ``{version, deviceId, publicKey, privateKey,
  createdAtMs}`` (keys raw, unpadded base64url; ``deviceId`` = hex SHA-256 of the public key).
* ``<state dir>/identity/cli-device-auth.json``: ``{version, deviceId, tokens: {"<url>|<role>":
  {token, role, scopes, updatedAtMs}}}``: the device tokens gateways issued to this identity
  in ``hello-ok``, one per gateway URL and role.

Why not the reference CLI's files: OpenClaw 2026.9.6 keeps its identity and tokens in SQLite
(``<state>/state/openclaw.sqlite``) and *refuses to run* while the retired
``identity/device.json`` or ``identity/device-auth.json`` exists in its state dir ("run
openclaw doctor --fix"). Our names sit beside those, so the real CLI keeps working in the
same state dir.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigError
from ..profiles.atomic import write_file_atomic
from ..protocol import device as proto

__all__ = ["DeviceAuthStore", "DeviceIdentity", "identity_dir", "load_or_create_identity"]

IDENTITY_FILE = "cli-device.json"
AUTH_FILE = "cli-device-auth.json"


class _StoredIdentity(msgspec.Struct, frozen=True, rename="camel"):
    version: int
    device_id: str
    public_key: str
    private_key: str
    created_at_ms: int


@dataclass(frozen=True)
class DeviceIdentity:
    """A key pair that signs ``connect`` requests.

    Attributes:
        device_id: Hex SHA-256 of the raw public key.
        public_key: The raw public key, unpadded base64url (what ``device.publicKey`` carries).
        path: Where it is kept (None for an in-memory identity).
    """

    device_id: str
    public_key: str
    private_key_raw: bytes
    path: Path | None = None

    @classmethod
    def generate(cls, path: Path | None = None) -> DeviceIdentity:
        """A fresh key pair (not saved)."""
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        private = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(proto.device_id_for(public), proto.b64url(public), private, path)

    def sign(self, payload: str) -> str:
        """Sign ``payload`` (the v3 string); base64url signature."""
        return proto.sign(self.private_key_raw, payload)


def identity_dir(state_dir: Path) -> Path:
    """Where a profile's client identity files live."""
    return state_dir / "identity"


def load_or_create_identity(directory: Path, file_name: str = IDENTITY_FILE) -> DeviceIdentity:
    """Read this client's identity from ``directory``, creating it (0600) on first use.

    Args:
        directory: The identity directory (:func:`identity_dir`).
        file_name: The file in it (the node host keeps its own key beside the CLI's).

    Raises:
        ConfigError: The file exists but is not a valid identity (it is never overwritten),
            or it cannot be written.
    """
    path = directory / file_name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        identity = DeviceIdentity.generate(path)
        stored = _StoredIdentity(
            version=1,
            device_id=identity.device_id,
            public_key=identity.public_key,
            private_key=proto.b64url(identity.private_key_raw),
            created_at_ms=int(time.time() * 1000),
        )
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file_atomic(path, msgspec.json.encode(stored), mode=0o600)
        except OSError as err:
            raise ConfigError(f"cannot save device identity {path}: {err.strerror}") from None
        return identity
    except OSError as err:
        raise ConfigError(f"cannot read device identity {path}: {err.strerror}") from None
    try:
        stored = msgspec.json.decode(data, type=_StoredIdentity)
        private = proto.b64url_decode(stored.private_key)
        public = (
            Ed25519PrivateKey.from_private_bytes(private)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as err:
        raise ConfigError(f"{path} is not a device identity ({err}); move it aside") from None
    if proto.device_id_for(public) != stored.device_id:
        raise ConfigError(f"{path}: deviceId does not match the key; move it aside")
    return DeviceIdentity(stored.device_id, proto.b64url(public), private, path)


class _StoredToken(msgspec.Struct, frozen=True, rename="camel"):
    token: str
    role: str
    scopes: list[str]
    updated_at_ms: int


class _StoredAuth(msgspec.Struct, rename="camel"):
    version: int
    device_id: str
    tokens: dict[str, _StoredToken] = {}


class DeviceAuthStore:
    """Device tokens issued to one identity, per gateway URL and role (file 0600)."""

    def __init__(self, directory: Path, device_id: str, file_name: str = AUTH_FILE) -> None:
        self.path = directory / file_name
        self.device_id = device_id

    @staticmethod
    def _key(url: str, role: str) -> str:
        return f"{url.rstrip('/')}|{role}"

    def _read(self) -> _StoredAuth:
        try:
            stored = msgspec.json.decode(self.path.read_bytes(), type=_StoredAuth)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return _StoredAuth(version=1, device_id=self.device_id)
        if stored.device_id != self.device_id:  # tokens of an older identity are useless
            return _StoredAuth(version=1, device_id=self.device_id)
        return stored

    def load(self, url: str, role: str) -> str | None:
        """The token this gateway issued for ``role``, if any."""
        entry = self._read().tokens.get(self._key(url, role))
        return entry.token if entry else None

    def save(self, url: str, role: str, token: str, scopes: list[str]) -> None:
        """Keep a token from ``hello-ok`` (replacing the previous one for this URL and role)."""
        stored = self._read()
        stored.tokens[self._key(url, role)] = _StoredToken(
            token, role, scopes, int(time.time() * 1000)
        )
        self._write(stored)

    def clear(self, url: str, role: str) -> None:
        """Forget a token the gateway no longer accepts."""
        stored = self._read()
        if stored.tokens.pop(self._key(url, role), None) is not None:
            self._write(stored)

    def _write(self, stored: _StoredAuth) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file_atomic(self.path, msgspec.json.encode(stored), mode=0o600)
        except OSError as err:
            raise ConfigError(f"cannot save device token {self.path}: {err.strerror}") from None
