"""Which gateway a client command talks to, and with which credentials.

The rules (docs/cli.md):

* ``--url`` overrides everything, and then only ``--token``/``--password``/
  ``--password-file`` are sent: config and environment secrets belong to the profile's own
  gateway and must never go to an arbitrary URL. Without one of them the command stops
  before any connection with :class:`~openclaw_multi.errors.CredentialsRequired`.
* Otherwise a profile whose config says ``gateway.mode: "remote"`` with
  ``gateway.remote.url`` is reached there, with ``gateway.remote.token``/``password``.
* Otherwise the profile's local gateway, ``ws://127.0.0.1:<port>/``, port from
  ``OPENCLAW_GATEWAY_PORT`` (when the environment belongs to this profile), then
  ``gateway.port``, then the derived port; credentials from the flags, then
  ``OPENCLAW_GATEWAY_TOKEN``/``OPENCLAW_GATEWAY_PASSWORD`` (same condition), then
  ``gateway.auth.token``/``password``.

:class:`Target` holds secrets: its ``repr`` hides them, and nothing here logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError, CredentialsRequired, UsageError
from ..profiles.config import load_config
from ..profiles.paths import env_applies_to_profile, resolve_paths
from ..profiles.ports import PORT_ENV, resolve_port

__all__ = [
    "CREDENTIALS_REQUIRED",
    "Target",
    "check_ws_url",
    "read_secret_file",
    "resolve_target",
]

CREDENTIALS_REQUIRED = "gateway url override requires explicit credentials"
TOKEN_ENV = "OPENCLAW_GATEWAY_TOKEN"
PASSWORD_ENV = "OPENCLAW_GATEWAY_PASSWORD"


@dataclass(frozen=True)
class Target:
    """A gateway to talk to.

    Attributes:
        url: Its WebSocket URL.
        token: The shared token to present, if any (never printed).
        password: The shared password to present, if any (never printed).
        profile_display: The profile's name for people (``default`` for the unnamed one).
        source: Where ``url`` came from: ``--url``, ``gateway.remote.url`` or ``local``.
        port: The local port, when ``source`` is ``local``.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    profile_display: str = "default"
    source: str = "local"
    port: int | None = None


def check_ws_url(url: str) -> str | None:
    """Return why ``url`` is not a usable gateway URL, or None if it is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return str(err)
    if parts.scheme not in ("ws", "wss"):
        return "use ws://host:port/ or wss://host:port/"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    return None


def read_secret_file(path: Path, flag: str = "--password-file") -> str:
    """Read a secret from a file (surrounding whitespace stripped).

    Raises:
        UsageError: Unreadable or empty file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(f"cannot read {flag} {path}: {reason}") from None
    secret = text.strip()
    if not secret:
        raise UsageError(f"{flag} {path} is empty")
    return secret


def resolve_target(
    profile: tuple[str | None, bool],
    env: Mapping[str, str],
    *,
    url: str | None = None,
    token: str | None = None,
    password: str | None = None,
    password_file: Path | None = None,
) -> Target:
    """Decide where to connect and with what (rules in the module docstring).

    Args:
        profile: ``(name, explicit)`` as from :func:`~openclaw_multi.profiles.paths.select_profile`.
        env: The environment.
        url: ``--url``.
        token: ``--token``.
        password: ``--password``.
        password_file: ``--password-file``.

    Returns:
        The target.

    Raises:
        CredentialsRequired: ``url`` without any explicit credential.
        UsageError: A bad ``--url``, both ``--password`` and ``--password-file``, an
            unreadable password file, or a bad ``OPENCLAW_GATEWAY_PORT``.
        ConfigError: The profile's config cannot be read or has a bad remote URL or port.
    """
    name, explicit = profile
    if password is not None and password_file is not None:
        raise UsageError("use either --password or --password-file, not both")
    if url is not None:
        problem = check_ws_url(url)
        if problem is not None:
            raise UsageError(f"invalid --url {url!r}: {problem}")
        if not token and not password and password_file is None:
            raise CredentialsRequired(CREDENTIALS_REQUIRED)
    if password_file is not None:
        password = read_secret_file(password_file)
    token = token or None
    password = password or None
    paths = resolve_paths(name, env, explicit=explicit)
    if url is not None:
        return Target(url, token, password, paths.display_name, "--url")

    config = load_config(paths.config_path)
    section = config.gateway
    explicit_secret = token is not None or password is not None
    remote = section.remote
    if section.mode == "remote" and remote.url:
        problem = check_ws_url(remote.url)
        if problem is not None:
            raise ConfigError(f"{paths.config_path}: invalid gateway.remote.url: {problem}")
        if not explicit_secret:
            token, password = remote.token or None, remote.password or None
        return Target(remote.url, token, password, paths.display_name, "gateway.remote.url")

    use_env = env_applies_to_profile(name, env, explicit=explicit)
    env_port = env.get(PORT_ENV, "") if use_env else ""
    port = resolve_port(
        name, env={PORT_ENV: env_port} if env_port else {}, config_port=section.port
    )
    if not explicit_secret:
        token = (env.get(TOKEN_ENV) if use_env else None) or section.auth.token or None
        password = (env.get(PASSWORD_ENV) if use_env else None) or section.auth.password or None
        # Offer a gateway only the kind of secret its auth mode asks for.
        if section.auth.mode == "token":
            password = None
        elif section.auth.mode == "password":
            token = None
    return Target(
        f"ws://127.0.0.1:{port}/", token, password, paths.display_name, "local", port=port
    )
