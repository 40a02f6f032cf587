"""Which gateway a client command talks to, and with which credentials.

The rules (docs/cli.md):

* ``--url`` overrides everything, and then only ``--token``/``--password``/
  ``--password-file`` are sent: config and environment secrets belong to the profile's own
  gateway and must never go to an arbitrary URL. Without one of them the command stops
  before any connection with :class:`~openclaw_multi.errors.CredentialsRequired`.
* Otherwise a profile whose config says ``gateway.mode: "remote"`` with
  ``gateway.remote.url`` is reached there, with ``gateway.remote.token``/``password``.
* A pin (``tls_fingerprint``) comes from ``--tls-fingerprint``, else (remote mode only)
  ``gateway.remote.tlsFingerprint``; a pin needs a ``wss://`` URL.
* Otherwise the profile's local gateway, ``ws://127.0.0.1:<port>/`` (``wss://`` when its
  ``gateway.tls`` is enabled, pinned to the certificate the running gateway serves), port from
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
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, CredentialsRequired, UsageError
from ..profiles.config import ProfileConfig, load_config
from ..profiles.lock import read_identity
from ..profiles.paths import ProfilePaths, env_applies_to_profile, resolve_paths
from ..profiles.ports import PORT_ENV, resolve_port
from ..protocol.tls import certificate_fingerprint, normalize_fingerprint

__all__ = [
    "CREDENTIALS_REQUIRED",
    "Target",
    "check_ws_url",
    "read_secret_file",
    "resolve_target",
    "shown_url",
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
        tls_fingerprint: The certificate pin for a ``wss://`` URL (normalized hex), if any.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    profile_display: str = "default"
    source: str = "local"
    port: int | None = None
    tls_fingerprint: str | None = None


CREDENTIALS_IN_URL = "credentials in the URL (user:pass@host): use --token or --password instead"


def check_ws_url(url: str) -> str | None:
    """Return why ``url`` is not a usable gateway URL, or None if it is.

    A URL with credentials (``ws://user:pass@host/``) is refused: it would end up in
    config files, argv and error messages. Use :func:`shown_url` to print a refused URL.
    """
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            return CREDENTIALS_IN_URL
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


def shown_url(url: str) -> str:
    """``url`` safe to print: any ``user:pass@`` part replaced by ``***@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


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
    tls_fingerprint: str | None = None,
) -> Target:
    """Decide where to connect and with what (rules in the module docstring).

    Args:
        profile: ``(name, explicit)`` as from :func:`~openclaw_multi.profiles.paths.select_profile`.
        env: The environment.
        url: ``--url``.
        token: ``--token``.
        password: ``--password``.
        password_file: ``--password-file``.
        tls_fingerprint: ``--tls-fingerprint``.

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
    pin = None
    if tls_fingerprint is not None:
        pin = normalize_fingerprint(tls_fingerprint)
        if pin is None:
            raise UsageError(
                "Invalid --tls-fingerprint: use the certificate's SHA-256, "
                "as AA:BB:... (32 pairs) or 64 hex digits"
            )
    if url is not None:
        problem = check_ws_url(url)
        if problem is not None:
            raise UsageError(f"invalid --url {shown_url(url)!r}: {problem}")
        if not token and not password and password_file is None:
            raise CredentialsRequired(CREDENTIALS_REQUIRED)
    if password_file is not None:
        password = read_secret_file(password_file)
    token = token or None
    password = password or None
    paths = resolve_paths(name, env, explicit=explicit)
    if url is not None:
        _check_pin_scheme(url, pin, "--tls-fingerprint")
        return Target(url, token, password, paths.display_name, "--url", tls_fingerprint=pin)

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
        if pin is None and remote.tls_fingerprint:
            pin = normalize_fingerprint(remote.tls_fingerprint)
            if pin is None:
                raise ConfigError(
                    f"{paths.config_path}: invalid gateway.remote.tlsFingerprint "
                    "(use the certificate's SHA-256: AA:BB:... or 64 hex digits)"
                )
        _check_pin_scheme(remote.url, pin, "gateway.remote.tlsFingerprint")
        return Target(
            remote.url,
            token,
            password,
            paths.display_name,
            "gateway.remote.url",
            tls_fingerprint=pin,
        )

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
    scheme = "ws"
    if section.tls.enabled:
        scheme, pin = "wss", pin or local_tls_fingerprint(paths, config)
    return Target(
        f"{scheme}://127.0.0.1:{port}/",
        token,
        password,
        paths.display_name,
        "local",
        port=port,
        tls_fingerprint=pin,
    )


def local_tls_fingerprint(paths: ProfilePaths, config: ProfileConfig) -> str | None:
    """What a profile's own TLS gateway serves: its identity file's pin, else its cert file's.

    None when neither is known (no gateway has run and no certificate exists yet).
    """
    identity = read_identity(paths.identity_path)
    if identity is not None and identity.tls_fingerprint:
        return identity.tls_fingerprint
    cert = config.gateway.tls.cert_path
    path = Path(cert).expanduser() if cert else paths.state_dir / "tls" / "gateway-cert.pem"
    if not path.is_absolute():
        path = paths.config_path.parent / path
    try:
        import ssl

        der = ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return certificate_fingerprint(der)


def _check_pin_scheme(url: str, pin: str | None, source: str) -> None:
    if pin is not None and urlsplit(url).scheme != "wss":
        raise UsageError(f"{source} needs a wss:// gateway url (got {url})")
