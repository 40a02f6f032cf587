"""The ``connect`` request's params and the ``hello-ok`` reply (protocol.md, Handshake)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .frames import UNSET, StateVersion

ClientId = Literal[
    "cli",
    "gateway-client",
    "openclaw-control-ui",
    "webchat-ui",
    "webchat",
    "openclaw-tui",
    "openclaw-macos",
    "openclaw-ios",
    "openclaw-android",
    "openclaw-linux",
    "node-host",
    "openclaw-probe",
    "fingerprint",
    "test",
]
ClientMode = Literal["cli", "ui", "webchat", "backend", "node", "probe", "test"]
Role = Literal["operator", "node"]


class ClientInfo(msgspec.Struct, frozen=True, rename="camel"):
    """Who is connecting: one of the known client ids and modes."""

    id: ClientId
    version: str
    platform: str
    mode: ClientMode
    display_name: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    instance_id: str | None = None


class AuthParams(msgspec.Struct, frozen=True, rename="camel"):
    """Shared secrets a client may present; at most one is normally set."""

    token: str | None = None
    password: str | None = None
    device_token: str | None = None
    bootstrap_token: str | None = None

    def present(self) -> bool:
        """True when any credential is given."""
        return bool(self.token or self.password or self.device_token or self.bootstrap_token)


class DeviceParams(msgspec.Struct, frozen=True, rename="camel"):
    """An Ed25519 device identity proving possession of its key for this challenge."""

    id: str
    public_key: str
    signature: str
    signed_at: int
    nonce: str


class ConnectParams(msgspec.Struct, frozen=True, rename="camel"):
    """Params of the first request; unknown keys are ignored (leniency never breaks a client)."""

    min_protocol: int
    max_protocol: int
    client: ClientInfo
    role: Role = "operator"
    scopes: list[str] = []
    caps: list[str] = []
    commands: list[str] = []
    permissions: dict[str, bool] = {}
    auth: AuthParams = AuthParams()
    device: DeviceParams | None = None
    locale: str | None = None
    user_agent: str | None = None
    path_env: str | None = None


class ServerInfo(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    version: str
    conn_id: str
    host: str | msgspec.UnsetType = UNSET
    profile: str | msgspec.UnsetType = UNSET


class Features(msgspec.Struct, frozen=True):
    methods: list[str]
    events: list[str]


class Snapshot(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    presence: list[Any]
    health: Any
    state_version: StateVersion
    uptime_ms: int
    config_path: str | msgspec.UnsetType = UNSET
    state_dir: str | msgspec.UnsetType = UNSET
    auth_mode: str | msgspec.UnsetType = UNSET


class HelloAuth(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    role: str
    scopes: list[str]
    method: str | msgspec.UnsetType = UNSET
    device_token: str | msgspec.UnsetType = UNSET
    issued_at_ms: int | msgspec.UnsetType = UNSET


class Policy(msgspec.Struct, frozen=True, rename="camel"):
    max_payload: int
    max_buffered_bytes: int
    tick_interval_ms: int


class HelloOk(msgspec.Struct, frozen=True, tag="hello-ok", tag_field="type"):
    """The payload of a successful ``connect`` response."""

    protocol: int
    server: ServerInfo
    features: Features
    snapshot: Snapshot
    auth: HelloAuth
    policy: Policy


class Challenge(msgspec.Struct, frozen=True):
    """Payload of ``connect.challenge``: the nonce a device signs, and the server clock."""

    nonce: str
    ts: int
