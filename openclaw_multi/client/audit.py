"""The security audit of a profile: pure checks over a snapshot of its config and files.

:func:`gather` reads what the checks need (the config, the modes of the files holding
secrets, the TLS certificate's expiry) into an :class:`AuditInput`; :func:`audit` turns that
into :class:`Finding` s with plain values only, so every finding is a unit test. A finding
names a setting and a file, never a secret's value.

Severities: ``high`` (exposes the gateway or a secret now: the command exits 1),
``medium`` (safe only under conditions worth checking), ``low`` (hygiene).
"""

from __future__ import annotations

import ipaddress
import math
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..profiles.config import ProfileConfig, load_config
from ..profiles.paths import ProfilePaths
from ..protocol.proxy import parse_networks
from ..protocol.tls import normalize_fingerprint

__all__ = ["SEVERITIES", "AuditInput", "Finding", "audit", "gather", "token_weakness"]

Severity = Literal["high", "medium", "low"]
SEVERITIES: Final = ("high", "medium", "low")
MIN_TOKEN_LENGTH: Final = 24
MIN_TOKEN_BITS: Final = 96.0
MIN_PASSWORD_LENGTH: Final = 12
CERT_WARN_DAYS: Final = 30
_TAILNET_V4: Final = ipaddress.ip_network("100.64.0.0/10")
_TAILNET_V6: Final = ipaddress.ip_network("fd7a:115c:a1e0::/48")


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``id``, how bad, what was found, why it matters, how to fix it."""

    id: str
    severity: Severity
    what: str
    why: str
    fix: str


@dataclass(frozen=True)
class AuditInput:
    """What the checks look at (read by :func:`gather`, or built by hand in tests).

    Attributes:
        profile: Display name.
        config_path: The config file.
        config: The parsed config, None if it could not be read.
        config_error: Why it could not be read.
        file_modes: Existing files that hold secrets or keys, label -> (path, mode bits).
        state_dir_mode: Mode bits of the state dir, if it exists.
        cert_days_left: Days until the served certificate expires (None: no TLS or unknown).
    """

    profile: str
    config_path: Path
    config: ProfileConfig | None
    config_error: str | None = None
    file_modes: dict[str, tuple[Path, int]] = field(default_factory=dict)
    state_dir_mode: int | None = None
    cert_days_left: float | None = None


def token_weakness(token: str) -> str | None:
    """Why a shared token is weak (too short, or too little entropy), or None.

    The entropy estimate is the token's length times log2 of the number of distinct
    characters it uses, capped by its character classes: ``aaaaaaaa...`` and ``12341234...``
    are long but guessable; ``secrets.token_urlsafe(32)`` (43 chars) is ~250 bits.
    """
    if len(token) < MIN_TOKEN_LENGTH:
        return f"{len(token)} characters (fewer than {MIN_TOKEN_LENGTH})"
    alphabet = 0
    if any(c.islower() for c in token):
        alphabet += 26
    if any(c.isupper() for c in token):
        alphabet += 26
    if any(c.isdigit() for c in token):
        alphabet += 10
    if any(not c.isalnum() for c in token):
        alphabet += 32
    distinct = len(Counter(token))
    bits = len(token) * math.log2(max(2, min(alphabet, distinct)))
    if bits < MIN_TOKEN_BITS or distinct < 8:
        return f"low entropy (about {bits:.0f} bits, {distinct} distinct characters)"
    return None


def _bind_exposure(config: ProfileConfig) -> str | None:
    """The non-loopback address(es) a bind mode listens on, or None for loopback."""
    section = config.gateway
    if section.bind in ("loopback", "auto"):
        return None  # auto is loopback wherever loopback exists
    if section.bind == "lan":
        return "0.0.0.0 (every interface)"
    if section.bind == "tailnet":
        return "this host's tailnet address"
    host = section.custom_bind_host or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return host or "(custom, no host)"


def _is_loopback_host(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_tailnet(host: str) -> bool:
    if host.lower().rstrip(".").endswith(".ts.net"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address in _TAILNET_V4 or address in _TAILNET_V6


def audit(snapshot: AuditInput) -> list[Finding]:
    """Every finding for one profile, most severe first."""
    findings: list[Finding] = []
    config = snapshot.config
    if config is None:
        findings.append(
            Finding(
                "config-unreadable",
                "high",
                f"{snapshot.config_path} cannot be read: {snapshot.config_error}",
                "the gateway refuses to start and nothing else can be checked",
                "fix the file (the message names line and column)",
            )
        )
    else:
        findings.extend(_bind_and_auth(config))
        findings.extend(_tls(config, snapshot.cert_days_left))
        findings.extend(_remote(config))
    findings.extend(_files(snapshot))
    order = {severity: i for i, severity in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: order[f.severity])


def _bind_and_auth(config: ProfileConfig) -> Iterable[Finding]:
    section = config.gateway
    auth = section.auth
    exposed = _bind_exposure(config)
    mode = auth.mode or ("token" if auth.token else "password" if auth.password else "none")
    if exposed is not None:
        yield Finding(
            "bind-non-loopback",
            "medium",
            f"gateway.bind is {section.bind}: the gateway listens on {exposed}",
            "anyone who can reach that address can try to connect; the token is all that "
            "stands between them and the gateway",
            'keep gateway.bind "loopback" and reach it through Tailscale Serve or an SSH '
            "tunnel; otherwise use a long random token and gateway.tls",
        )
    if mode == "none":
        yield Finding(
            "auth-none",
            "high" if exposed is not None else "medium",
            "gateway.auth.mode is none: any client is accepted",
            "every local user and process (and, off loopback, the network) can act as an "
            "operator of this gateway"
            + ("; the gateway refuses to start this way" if exposed is not None else ""),
            "openclaw profiles create ... --generate-token, or set gateway.auth.mode "
            '"token" with a random gateway.auth.token',
        )
    if mode == "token" and auth.token:
        weakness = token_weakness(auth.token)
        if weakness is not None:
            yield Finding(
                "token-weak",
                "high",
                f"gateway.auth.token is weak: {weakness}",
                "a short or repetitive token can be guessed; failed attempts are only slowed "
                "to one per 5 s per address",
                "replace it with a random one: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'",
            )
    if mode == "password" and auth.password and len(auth.password) < MIN_PASSWORD_LENGTH:
        yield Finding(
            "password-short",
            "high" if exposed is not None else "medium",
            f"gateway.auth.password has {len(auth.password)} characters "
            f"(fewer than {MIN_PASSWORD_LENGTH})",
            "a short password can be guessed",
            "use a long passphrase, or token auth with a random token",
        )
    if auth.allow_tailscale and exposed is not None:
        yield Finding(
            "tailscale-non-loopback",
            "medium",
            f"gateway.auth.allowTailscale is on and gateway.bind is {section.bind}",
            "Tailscale Serve proxies to loopback; listening elsewhere as well lets clients "
            "bypass Serve (its identity headers are still only believed from loopback)",
            'set gateway.bind "loopback" when using Tailscale Serve',
        )
    if mode == "trusted-proxy":
        yield from _trusted_proxy(config, exposed)
    remote = section.remote
    if auth.token and remote.token and auth.token == remote.token:
        yield Finding(
            "remote-token-reused",
            "low",
            "gateway.remote.token is the same as gateway.auth.token",
            "one leaked secret then opens both gateways",
            "give each gateway its own token",
        )


def _trusted_proxy(config: ProfileConfig, exposed: str | None) -> Iterable[Finding]:
    try:
        networks = parse_networks(config.gateway.trusted_proxies)
    except ValueError as err:
        yield Finding(
            "trusted-proxies-invalid",
            "high",
            f"gateway.trustedProxies: {err}",
            "the gateway refuses to start",
            "list proxy addresses or CIDR blocks",
        )
        return
    wide = [str(n) for n in networks if n.prefixlen < (24 if n.version == 4 else 64)]
    if wide:
        yield Finding(
            "trusted-proxies-wide",
            "high",
            f"gateway.trustedProxies includes {', '.join(wide)}",
            "every address in a trusted block can claim to be any user with one header",
            "list only the proxy's own address(es)",
        )
    if exposed is not None:
        yield Finding(
            "trusted-proxy-exposed",
            "medium",
            f"auth.mode trusted-proxy with gateway.bind {config.gateway.bind}",
            "identity headers are believed from gateway.trustedProxies only, but any path to "
            "the port that skips the proxy must be closed by a firewall",
            "bind loopback with the proxy on this host, or firewall the port to the proxy",
        )


def _tls(config: ProfileConfig, days_left: float | None) -> Iterable[Finding]:
    section = config.gateway
    exposed = _bind_exposure(config)
    if exposed is not None and not section.tls.enabled:
        tailnet = section.bind == "tailnet"
        yield Finding(
            "tls-off-non-loopback",
            "medium" if tailnet else "high",
            f"gateway.tls is off and the gateway listens on {exposed}",
            "the token and every message cross the network in clear text"
            + (" (the tailnet encrypts it, but any tailnet peer sees the port)" if tailnet else ""),
            'set gateway.tls {"enabled": true} (a self-signed certificate is generated) and '
            "pin it on clients with --tls-fingerprint",
        )
    if section.tls.enabled and days_left is not None:
        if days_left <= 0:
            yield Finding(
                "tls-cert-expired",
                "high",
                "the gateway's TLS certificate has expired",
                "verifying clients refuse it",
                "renew it (or delete both generated files under <state>/tls/ to get a new "
                "self-signed pair, then update every client's pin)",
            )
        elif days_left < CERT_WARN_DAYS:
            yield Finding(
                "tls-cert-expiring",
                "medium",
                f"the gateway's TLS certificate expires in {days_left:.0f} days",
                "verifying clients will refuse it then",
                "renew it before it expires",
            )


def _remote(config: ProfileConfig) -> Iterable[Finding]:
    section = config.gateway
    remote = section.remote
    if section.mode == "remote" and not remote.url:
        yield Finding(
            "remote-no-url",
            "medium",
            'gateway.mode is "remote" but gateway.remote.url is not set',
            "commands silently talk to the local gateway instead",
            "openclaw remote set --url wss://... or openclaw remote clear",
        )
    if not remote.url:
        return
    try:
        parts = urlsplit(remote.url)
        host = parts.hostname or ""
    except ValueError:
        yield Finding(
            "remote-url-invalid",
            "high",
            "gateway.remote.url is not a URL",
            "commands using the remote gateway fail",
            "openclaw remote set --url wss://host:port",
        )
        return
    has_secret = bool(remote.token or remote.password)
    if parts.scheme == "ws" and not _is_loopback_host(host):
        tailnet = _is_tailnet(host)
        yield Finding(
            "remote-plaintext",
            "medium" if tailnet else "high",
            f"gateway.remote.url is ws:// to {host}, not loopback",
            ("the token is" if has_secret else "every message is")
            + " sent in clear text"
            + (" (inside the tailnet's encryption)" if tailnet else ""),
            "serve the gateway with gateway.tls and use wss:// with --tls-fingerprint, or an "
            "SSH tunnel to ws://127.0.0.1",
        )
    if remote.tls_fingerprint and normalize_fingerprint(remote.tls_fingerprint) is None:
        yield Finding(
            "remote-pin-invalid",
            "high",
            "gateway.remote.tlsFingerprint is not a SHA-256 fingerprint",
            "every command using the remote gateway fails",
            "openclaw remote set ... --tls-fingerprint AA:BB:... (from `openclaw gateway "
            "status` on the gateway host)",
        )
    if parts.scheme == "wss" and not remote.tls_fingerprint and _is_ip(host):
        yield Finding(
            "remote-unpinned-ip",
            "medium",
            f"gateway.remote.url is wss:// to the IP address {host} without a pin",
            "public CAs rarely certify IP addresses, so this is usually a self-signed "
            "certificate: it is refused, and the tempting fix is to stop verifying",
            "pin it: openclaw remote set ... --tls-fingerprint <fp from `openclaw gateway status`>",
        )


def _files(snapshot: AuditInput) -> Iterable[Finding]:
    config = snapshot.config
    secret_in_config = config is not None and bool(
        config.gateway.auth.token
        or config.gateway.auth.password
        or config.gateway.remote.token
        or config.gateway.remote.password
    )
    for label, (path, mode) in sorted(snapshot.file_modes.items()):
        if not mode & 0o077:
            continue
        readable = "world" if mode & 0o004 else "group"
        holds_secret = label != "config" or secret_in_config
        yield Finding(
            f"{label}-permissions",
            "high" if holds_secret else "low",
            f"{path} is {readable}-accessible (mode {mode:04o})",
            "other users on this host can read "
            + ("the secrets in it" if holds_secret else "it (no secret in it today)"),
            f"chmod 600 {path}",
        )
    if snapshot.state_dir_mode is not None and snapshot.state_dir_mode & 0o077:
        yield Finding(
            "state-dir-permissions",
            "medium",
            f"the state dir is group/world-accessible (mode {snapshot.state_dir_mode:04o})",
            "other users can list and open the profile's logs and files",
            f"chmod 700 {snapshot.config_path.parent}",
        )


def gather(paths: ProfilePaths, now: float) -> AuditInput:
    """Read what :func:`audit` needs for one profile (never raises for a bad config)."""
    config: ProfileConfig | None = None
    error = None
    try:
        config = load_config(paths.config_path)
    except ConfigError as err:
        error = str(err)
    files: dict[str, Path] = {
        "config": paths.config_path,
        "device-key": paths.gateway_key_path,
    }
    days_left = None
    if config is not None and config.gateway.tls.enabled:
        tls = config.gateway.tls
        cert = _config_relative(paths, tls.cert_path, "gateway-cert.pem")
        files["tls-key"] = _config_relative(paths, tls.key_path, "gateway-key.pem")
        days_left = _cert_days_left(cert, now)
    modes: dict[str, tuple[Path, int]] = {}
    for label, path in files.items():
        try:
            modes[label] = (path, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            continue
    try:
        state_mode: int | None = stat.S_IMODE(os.stat(paths.state_dir).st_mode)
    except OSError:
        state_mode = None
    return AuditInput(
        profile=paths.display_name,
        config_path=paths.config_path,
        config=config,
        config_error=error,
        file_modes=modes,
        state_dir_mode=state_mode,
        cert_days_left=days_left,
    )


def _config_relative(paths: ProfilePaths, value: str | None, default_name: str) -> Path:
    if not value:
        return paths.state_dir / "tls" / default_name
    path = Path(value).expanduser()
    return path if path.is_absolute() else paths.config_path.parent / path


def _cert_days_left(cert: Path, now: float) -> float | None:
    try:
        pem = cert.read_bytes()
    except OSError:
        return None
    from cryptography import x509  # only when a TLS profile is audited

    try:
        not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()
    except ValueError:
        return None
    return (not_after - now) / 86400
