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
from ..protocol.proxy import LOOPBACK_PROXIES, ProxyPolicy, parse_networks
from .binding import is_loopback, resolve_bind_hosts
from .tls import CERT_NAME, KEY_NAME, TlsPlan, default_tls_dir

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
    tls: TlsPlan | None = None


def resolve_settings(options: GatewayOptions, env: Mapping[str, str]) -> GatewaySettings:
    """Resolve and validate; raise UsageError (bad flags) or ConfigError (refuse to run).

    A non-loopback bind without token or password auth is a ConfigError: exposing an
    unauthenticated gateway is never a default. The one other mode allowed there is
    ``trusted-proxy``, which is refused without an explicit ``gateway.trustedProxies``.
    ``gateway.remote.*`` is what this profile's *client* sends to another gateway: it
    never enables or satisfies this gateway's auth.
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
    if not is_loopback(hosts) and auth.mode not in ("token", "password", "trusted-proxy"):
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
        tls=_tls_plan(config, paths),
    )


def _tls_plan(config: ProfileConfig, paths: ProfilePaths) -> TlsPlan | None:
    """Where ``gateway.tls`` says the certificate is (relative paths: from the config's dir)."""
    tls = config.gateway.tls
    if not tls.enabled:
        return None
    default_dir = default_tls_dir(paths.state_dir)

    def where(value: str | None, default: Path) -> Path:
        if not value:
            return default
        path = Path(value).expanduser()
        return path if path.is_absolute() else paths.config_path.parent / path

    return TlsPlan(
        cert_path=where(tls.cert_path, default_dir / CERT_NAME),
        key_path=where(tls.key_path, default_dir / KEY_NAME),
        auto_generate=tls.auto_generate,
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
    proxy = _proxy_policy(config, mode)
    if mode == "token":
        if not token:
            raise ConfigError(
                "auth mode is token but no token is set "
                "(gateway.auth.token, OPENCLAW_GATEWAY_TOKEN or --token)"
            )
        return AuthPolicy("token", token.encode(), proxy)
    if mode == "password":
        if not password:
            raise ConfigError(
                "auth mode is password but no password is set "
                "(gateway.auth.password, OPENCLAW_GATEWAY_PASSWORD or --password-file)"
            )
        return AuthPolicy("password", password.encode(), proxy)
    if mode == "trusted-proxy":
        # A token (or else a password) beside it lets local clients without a proxy in.
        if token:
            return AuthPolicy("trusted-proxy", token.encode(), proxy, "token")
        if password:
            return AuthPolicy("trusted-proxy", password.encode(), proxy, "password")
        return AuthPolicy("trusted-proxy", None, proxy)
    mode_none: AuthMode = "none"
    return AuthPolicy(mode_none)


def _proxy_policy(config: ProfileConfig, mode: str) -> ProxyPolicy:
    section = config.gateway
    auth = section.auth
    try:
        proxies = parse_networks(section.trusted_proxies)
    except ValueError as err:
        raise ConfigError(f"gateway.trustedProxies: {err}") from None
    if mode == "trusted-proxy" and not proxies:
        raise ConfigError(
            "auth mode trusted-proxy needs gateway.trustedProxies: the addresses of the "
            "proxies whose identity headers are believed (for a proxy on this host: "
            '["127.0.0.1", "::1"])'
        )
    if auth.allow_tailscale and not proxies:
        proxies = parse_networks(LOOPBACK_PROXIES)  # Tailscale Serve connects from loopback
    trusted = auth.trusted_proxy
    return ProxyPolicy(
        allow_tailscale=auth.allow_tailscale,
        trusted_proxy_mode=mode == "trusted-proxy",
        trusted_proxies=proxies,
        user_header=trusted.user_header.strip().lower() or "x-forwarded-user",
        required_headers=tuple(h.strip().lower() for h in trusted.required_headers if h.strip()),
        allow_users=tuple(trusted.allow_users),
    )


def _read_secret_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read --password-file {path}: {err.strerror}") from None
    secret = text.strip()
    if not secret:
        raise UsageError(f"--password-file {path} is empty")
    return secret
