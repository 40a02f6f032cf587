"""A profile's config file (``openclaw.json``, JSON5): the gateway keys we honour.

OpenClaw configs carry many other sections (agents, channels, ...); unknown keys are
ignored, never rejected, so one file serves both. Loading never writes the file: a config
that fails to parse stays byte-for-byte as the person left it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from openclaw_multi.errors import ConfigError

from .atomic import write_file_atomic

__all__ = [
    "AgentOpenAI",
    "AgentSection",
    "BindMode",
    "ChannelsSection",
    "GatewayAuth",
    "GatewayMode",
    "GatewayRemote",
    "GatewaySection",
    "GatewayTls",
    "GatewayTrustedProxy",
    "NodeHostSection",
    "ProfileConfig",
    "TelegramChannel",
    "load_config",
    "load_raw_config",
    "save_config_atomic",
]

BindMode = Literal["loopback", "lan", "tailnet", "auto", "custom"]
GatewayMode = Literal["local", "remote"]


class GatewayTrustedProxy(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.auth.trustedProxy``: what ``auth.mode: "trusted-proxy"`` reads from the proxy."""

    user_header: str = "x-forwarded-user"
    required_headers: list[str] = msgspec.field(default_factory=list)
    allow_users: list[str] = msgspec.field(default_factory=list)


class GatewayAuth(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.auth``: how clients prove who they are.

    ``mode`` stays a plain string (OpenClaw knows ``none``, ``token``, ``password``,
    ``trusted-proxy``) so a newer mode is judged by the gateway, not refused at load.
    """

    mode: str | None = None
    token: str | None = None
    password: str | None = None
    allow_tailscale: bool = False
    trusted_proxy: GatewayTrustedProxy = msgspec.field(default_factory=GatewayTrustedProxy)


class GatewayRemote(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.remote``: the gateway to talk to when ``gateway.mode`` is ``remote``."""

    url: str | None = None
    token: str | None = None
    password: str | None = None
    tls_fingerprint: str | None = None


class GatewayTls(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.tls``: serving TLS on the gateway port."""

    enabled: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    auto_generate: bool = True


PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class GatewayLimits(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.limits`` (an openclaw-multi extension): per-connection limits and timers.

    Unset keys keep the protocol defaults (protocol/limits.py); tests and small hosts tune them.
    """

    max_payload: PositiveInt | None = None
    max_buffered_bytes: PositiveInt | None = None
    tick_interval_ms: PositiveInt | None = None
    handshake_timeout_ms: PositiveInt | None = None


class GatewayNodesPairing(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.nodes.pairing``: how new devices (apps, node hosts, CLIs) get approved."""

    auto_approve_local: bool = True
    """Approve a device connecting directly over loopback without asking (as OpenClaw does)."""


class GatewayNodes(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.nodes``: of its keys only ``pairing`` is read here."""

    pairing: GatewayNodesPairing = msgspec.field(default_factory=GatewayNodesPairing)


class GatewayControlUi(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway.controlUi``: which browser origins may connect as a Control UI or web chat."""

    allowed_origins: list[str] = msgspec.field(default_factory=list)
    """Origins (``scheme://host[:port]``, or ``"*"``) allowed besides the gateway's own host."""


class GatewaySection(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``gateway``: port, bind, auth, mode and TLS of a profile's gateway.

    ``port`` is not range-checked here; :func:`~openclaw_multi.profiles.ports.resolve_port`
    does that, so the message is the same wherever a port comes from.
    """

    port: int | None = None
    bind: BindMode = "loopback"
    custom_bind_host: str | None = None
    auth: GatewayAuth = msgspec.field(default_factory=GatewayAuth)
    mode: GatewayMode = "local"
    remote: GatewayRemote = msgspec.field(default_factory=GatewayRemote)
    tls: GatewayTls = msgspec.field(default_factory=GatewayTls)
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    limits: GatewayLimits = msgspec.field(default_factory=GatewayLimits)
    nodes: GatewayNodes = msgspec.field(default_factory=GatewayNodes)
    control_ui: GatewayControlUi = msgspec.field(default_factory=GatewayControlUi)


AgentBackend = Literal["offline", "openai"]


class AgentOpenAI(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``agent.openai``: an OpenAI-compatible chat-completions endpoint with tool calling.

    The key comes from ``apiKey`` or, better, the environment variable named by ``apiKeyEnv``
    (so the config file need not hold it). It is sent only to ``baseUrl``, never logged.
    """

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_ms: PositiveInt = 60_000
    max_tool_rounds: PositiveInt = 8


class AgentSection(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``agent`` (an openclaw-multi key): which backend answers agent runs and chat."""

    backend: AgentBackend = "offline"
    openai: AgentOpenAI = msgspec.field(default_factory=AgentOpenAI)
    system_prompt: str | None = None
    run_timeout_ms: PositiveInt = 600_000


class TelegramChannel(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``channels.telegram``: a Telegram bot over Bot API long polling.

    ``allowFrom`` lists the chat ids allowed to talk to the agent (OpenClaw's key name);
    empty means nobody. ``apiBaseUrl`` points elsewhere for tests or a local Bot API server.
    """

    enabled: bool = False
    bot_token: str | None = None
    api_base_url: str = "https://api.telegram.org"
    allow_from: list[str | int] = msgspec.field(default_factory=list)
    poll_timeout_s: Annotated[int, msgspec.Meta(ge=0, le=50)] = 25


class ChannelsSection(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``channels``: the messaging channels this profile's gateway runs (webchat is built in)."""

    telegram: TelegramChannel = msgspec.field(default_factory=TelegramChannel)


class NodeHostSection(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``nodeHost`` (an openclaw-multi key): what ``openclaw node run`` may do on this machine.

    Nothing is allowed unless listed: ``fsRoots`` bounds ``fs.list``/``fs.read``;
    ``runAllowlist`` names the programs ``system.run`` may start (bare names resolved on
    PATH, or absolute paths).
    """

    display_name: str | None = None
    fs_roots: list[str] = msgspec.field(default_factory=list)
    run_allowlist: list[str] = msgspec.field(default_factory=list)
    run_timeout_ms: PositiveInt = 30_000
    output_cap_bytes: PositiveInt = 65_536


class ProfileConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The parts of ``openclaw.json`` this project reads."""

    gateway: GatewaySection = msgspec.field(default_factory=GatewaySection)
    agent: AgentSection = msgspec.field(default_factory=AgentSection)
    channels: ChannelsSection = msgspec.field(default_factory=ChannelsSection)
    node_host: NodeHostSection = msgspec.field(default_factory=NodeHostSection)


# json5 reports errors as '<string>:LINE MESSAGE at column COL'.
_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.DOTALL)


def _one_line(text: str) -> str:
    # A message quoting a raw newline or tab would break the one-line error.
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        head = raw[: err.start].decode("utf-8-sig", errors="replace")
        line, col = _position(head, len(head))
        raise ConfigError(f"{path}:{line}:{col}: invalid UTF-8") from None


def _parse(path: Path, text: str) -> Any:
    try:
        return json.loads(text)  # most configs are plain JSON (we write them so)
    except (ValueError, RecursionError):  # deep nesting: json5 below reports it on one line
        pass
    import json5  # comments or trailing commas: the slower, complete JSON5 parser

    try:
        return json5.loads(text)
    except ValueError as err:
        message = str(err)
        match = _JSON5_ERROR.match(message)
        if match:
            line, problem, col = match.group(1), match.group(2), match.group(3)
            raise ConfigError(f"{path}:{line}:{col}: {_one_line(problem)}") from None
        # e.g. an empty file: json5 gives no position, so point at the start.
        raise ConfigError(f"{path}:1:1: {_one_line(message)}") from None
    except RecursionError:
        raise ConfigError(f"{path}:1:1: nested too deeply") from None


def load_raw_config(path: Path) -> dict[str, Any]:
    """Read a JSON5 config file as plain data, for commands that edit and save it.

    Args:
        path: The config file.

    Returns:
        The top-level object; ``{}`` if the file does not exist.

    Raises:
        ConfigError: Unreadable, not UTF-8, malformed (message names ``file:line:col``),
            or the top level is not an object.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror or err}") from None
    data = _parse(path, _decode(path, raw))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: the config must be an object ({{...}})")
    return data


def load_config(path: Path) -> ProfileConfig:
    """Load and check a profile's config. Never writes the file.

    Args:
        path: The config file (JSON5: comments and trailing commas allowed).

    Returns:
        The typed config; all defaults if the file does not exist.

    Raises:
        ConfigError: As :func:`load_raw_config`, or a key has the wrong type; the message
            names the file and the key path (``$.gateway.port``).
    """
    data = load_raw_config(path)
    try:
        return msgspec.convert(data, ProfileConfig)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {_one_line(str(err))}") from None


def save_config_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a config as JSON (2-space indent), atomically, mode 0600.

    Comments in the old file are not kept: JSON5 has no round-trip writer. The parent
    directory is created (0700) if missing.

    Args:
        path: The config file.
        data: The whole config (as from :func:`load_raw_config`, edited).

    Raises:
        OSError: The file cannot be written.
        TypeError: ``data`` holds something JSON cannot encode.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_file_atomic(path, text.encode("utf-8"))
