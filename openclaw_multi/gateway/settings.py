"""Everything a gateway needs to know before it starts, resolved once from flags, env, config.

Precedence follows profiles.md: flags beat environment beats the profile's config file.
Secrets are read here and kept only as bytes inside :class:`AuthPolicy`; they are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, UsageError
from ..profiles.config import ProfileConfig, load_config
from ..profiles.paths import ProfilePaths, env_applies_to_profile, resolve_paths
from ..profiles.ports import resolve_port
from ..protocol import limits
from ..protocol.handshake import AuthMode, AuthPolicy
from .binding import is_loopback, resolve_bind_hosts

AUTH_MODES = ("none", "token", "password", "trusted-proxy")


@dataclass(frozen=True)
class GatewayOptions:
    """What ``openclaw gateway run`` (or ``python -m openclaw_multi.gateway``) was given."""

    profile: str | None = None
    explicit: bool = False
    port: object = None
    bind: str | None = None
    auth: str | None = None
    token: str | None = None
    password: str | None = None
    password_file: Path | None = None
    foreground: bool = True


@dataclass(frozen=True)
class GatewaySettings:
    """The resolved, validated settings of one gateway process."""

    paths: ProfilePaths
    config: ProfileConfig
    port: int
    bind: str
    hosts: tuple[str, ...]
    auth: AuthPolicy
    version: str = __version__
    max_payload: int = limits.DEFAULT_MAX_PAYLOAD
    max_buffered_bytes: int = limits.DEFAULT_MAX_BUFFERED_BYTES
    tick_interval_ms: int = limits.DEFAULT_TICK_INTERVAL_MS
    handshake_timeout: float = limits.DEFAULT_HANDSHAKE_TIMEOUT_S


def resolve_settings(options: GatewayOptions, env: Mapping[str, str]) -> GatewaySettings:
    """Resolve and validate; raise UsageError (bad flags) or ConfigError (refuse to run).

    A non-loopback bind without token or password auth is a ConfigError: exposing an
    unauthenticated gateway is never a default.
    """
    paths = resolve_paths(options.profile, env, explicit=options.explicit)
    config = load_config(paths.config_path)
    section = config.gateway
    env_port = env.get("OPENCLAW_GATEWAY_PORT") if _env_applies(options, env) else None
    port = resolve_port(
        options.profile,
        flag=options.port,
        env={"OPENCLAW_GATEWAY_PORT": env_port} if env_port else {},
        config_port=section.port,
    )
    bind = options.bind or section.bind
    hosts = resolve_bind_hosts(bind, section.custom_bind_host)
    auth = _resolve_auth(options, env, config)
    if not is_loopback(hosts) and auth.mode not in ("token", "password"):
        raise ConfigError(
            f"refusing to bind {', '.join(hosts)} ({bind}) without auth: "
            "set gateway.auth.mode to token or password (or pass --auth token --token ...)"
        )
    tuned = section.limits
    return GatewaySettings(
        paths=paths,
        config=config,
        port=port,
        bind=bind,
        hosts=hosts,
        auth=auth,
        max_payload=tuned.max_payload or limits.DEFAULT_MAX_PAYLOAD,
        max_buffered_bytes=tuned.max_buffered_bytes or limits.DEFAULT_MAX_BUFFERED_BYTES,
        tick_interval_ms=tuned.tick_interval_ms or limits.DEFAULT_TICK_INTERVAL_MS,
        handshake_timeout=(
            tuned.handshake_timeout_ms / 1000
            if tuned.handshake_timeout_ms
            else limits.DEFAULT_HANDSHAKE_TIMEOUT_S
        ),
    )


def _env_applies(options: GatewayOptions, env: Mapping[str, str]) -> bool:
    """Env overrides belong to the profile the environment selected, not to another one."""
    return env_applies_to_profile(options.profile, env, explicit=options.explicit)


def _resolve_auth(
    options: GatewayOptions, env: Mapping[str, str], config: ProfileConfig
) -> AuthPolicy:
    section = config.gateway.auth
    use_env = _env_applies(options, env)
    token = (
        options.token or (env.get("OPENCLAW_GATEWAY_TOKEN") if use_env else None) or section.token
    )
    password = options.password
    if password is None and options.password_file is not None:
        password = _read_secret_file(options.password_file)
    if password is None:
        password = (env.get("OPENCLAW_GATEWAY_PASSWORD") if use_env else None) or section.password
    mode = options.auth or section.mode
    if mode is None:
        mode = "token" if token else "password" if password else "none"
    if mode not in AUTH_MODES:
        raise UsageError(f"Invalid --auth {mode!r} (use none, token or password)")
    if mode == "token":
        if not token:
            raise ConfigError(
                "auth mode is token but no token is set "
                "(gateway.auth.token, OPENCLAW_GATEWAY_TOKEN or --token)"
            )
        return AuthPolicy("token", token.encode())
    if mode == "password":
        if not password:
            raise ConfigError(
                "auth mode is password but no password is set "
                "(gateway.auth.password, OPENCLAW_GATEWAY_PASSWORD or --password-file)"
            )
        return AuthPolicy("password", password.encode())
    if mode == "trusted-proxy":
        raise ConfigError("auth mode trusted-proxy is not supported by this gateway yet")
    mode_none: AuthMode = "none"
    return AuthPolicy(mode_none)


def _read_secret_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read --password-file {path}: {err.strerror}") from None
    secret = text.strip()
    if not secret:
        raise UsageError(f"--password-file {path} is empty")
    return secret
