"""Identity headers from a trusted proxy (Tailscale Serve, an identity-aware reverse proxy).

Theory of operation: a proxy that has already authenticated a person forwards the
WebSocket upgrade with a header naming them: Tailscale Serve adds ``Tailscale-User-Login``;
an OAuth proxy (oauth2-proxy, Pomerium, Caddy) adds ``X-Forwarded-User`` (or the header set
in ``gateway.auth.trustedProxy.userHeader``). Anyone can *send* those headers, so they count
only when the TCP peer itself is a trusted proxy:

* ``gateway.auth.allowTailscale``: ``Tailscale-User-Login`` from a loopback peer (Tailscale
  Serve always connects from the same host), and, when ``gateway.trustedProxies`` is set,
  from one of those addresses.
* ``gateway.auth.mode: "trusted-proxy"``: the user header from a peer in
  ``gateway.trustedProxies`` (addresses or CIDR blocks), with every
  ``trustedProxy.requiredHeaders`` present and the user in ``trustedProxy.allowUsers`` (when
  that list is not empty).

Anything else that carries an identity header is *ignored* (the connect then needs a
credential like any other) and reported, so the gateway can log the peer. Pure: plain
values in, a verdict out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "TAILSCALE_USER_HEADER",
    "ProxyPolicy",
    "ProxyUser",
    "ProxyVerdict",
    "identify_proxy_user",
    "parse_networks",
]

TAILSCALE_USER_HEADER: Final = "tailscale-user-login"
FORWARDED_USER_HEADER: Final = "x-forwarded-user"
LOOPBACK_PROXIES: Final = ("127.0.0.1", "::1")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Which proxy identities the gateway accepts (all off by default)."""

    allow_tailscale: bool = False
    trusted_proxy_mode: bool = False
    trusted_proxies: tuple[Network, ...] = ()
    user_header: str = FORWARDED_USER_HEADER
    required_headers: tuple[str, ...] = ()
    allow_users: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.allow_tailscale or self.trusted_proxy_mode


@dataclass(frozen=True, slots=True)
class ProxyUser:
    """A person a trusted proxy vouches for."""

    method: Literal["tailscale", "trusted-proxy"]
    user: str
    forwarded_for: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyVerdict:
    """What to make of an upgrade's headers: a user, or headers ignored and why."""

    user: ProxyUser | None = None
    ignored: tuple[str, ...] = ()
    reason: str = ""


def parse_networks(entries: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    """``gateway.trustedProxies`` entries as networks (a bare address is a /32 or /128).

    Raises:
        ValueError: An entry is neither an address nor a CIDR block (names the entry).
    """
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR block: {entry!r}") from None
    return tuple(networks)


def _address(peer_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in nets)


def _forwarded_for(headers: Mapping[str, str]) -> str | None:
    first = headers.get("x-forwarded-for", "").split(",", 1)[0].strip()
    return first or None


def identify_proxy_user(
    headers: Mapping[str, str], peer_ip: str, policy: ProxyPolicy
) -> ProxyVerdict:
    """Decide whether an upgrade request is vouched for by a trusted proxy.

    Args:
        headers: The upgrade request's headers, names lowercased.
        peer_ip: The TCP peer's address.
        policy: What the gateway accepts.

    Returns:
        A verdict with ``user`` set when the headers count; otherwise, when identity
        headers were present, their names in ``ignored`` and a ``reason`` for the log.
    """
    names = {TAILSCALE_USER_HEADER, FORWARDED_USER_HEADER, policy.user_header}
    present = tuple(sorted(name for name in names if name in headers))
    if not present:
        return ProxyVerdict()
    if not policy.enabled:
        return ProxyVerdict(ignored=present, reason="proxy identities are not enabled")
    address = _address(peer_ip)
    if address is None:
        return ProxyVerdict(ignored=present, reason="peer address unknown")
    trusted = _in(address, policy.trusted_proxies)
    forwarded = _forwarded_for(headers)
    if policy.trusted_proxy_mode and policy.user_header in headers:
        if not trusted:
            return ProxyVerdict(ignored=present, reason="peer is not in gateway.trustedProxies")
        missing = [h for h in policy.required_headers if not headers.get(h)]
        if missing:
            return ProxyVerdict(ignored=present, reason=f"missing required header {missing[0]}")
        user = headers[policy.user_header].strip()
        if not user:
            return ProxyVerdict(ignored=present, reason=f"empty {policy.user_header}")
        if policy.allow_users and user not in policy.allow_users:
            return ProxyVerdict(ignored=present, reason="user not in trustedProxy.allowUsers")
        return ProxyVerdict(ProxyUser("trusted-proxy", user, forwarded))
    if policy.allow_tailscale and TAILSCALE_USER_HEADER in headers:
        if not address.is_loopback or (policy.trusted_proxies and not trusted):
            return ProxyVerdict(ignored=present, reason="peer is not a trusted loopback proxy")
        login = headers[TAILSCALE_USER_HEADER].strip()
        if not login:
            return ProxyVerdict(ignored=present, reason=f"empty {TAILSCALE_USER_HEADER}")
        return ProxyVerdict(ProxyUser("tailscale", login, forwarded))
    return ProxyVerdict(ignored=present, reason="not an identity header this gateway accepts")
