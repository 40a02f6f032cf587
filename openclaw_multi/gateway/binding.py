"""Where a gateway listens: ``gateway.bind`` modes turned into concrete addresses."""

from __future__ import annotations

import functools
import ipaddress
import socket

from ..errors import ConfigError

BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
_TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")
_TAILNET_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")


def resolve_bind_hosts(mode: str, custom_host: str | None = None) -> tuple[str, ...]:
    """Addresses to listen on for a bind mode.

    Raises:
        ConfigError: unknown mode, ``custom`` without a host, ``tailnet`` without an address.
    """
    if mode == "loopback":
        return _loopback_hosts()
    if mode == "auto":
        return _loopback_hosts() or ("0.0.0.0",)
    if mode == "lan":
        return ("0.0.0.0",)
    if mode == "tailnet":
        found = tailnet_addresses()
        if not found:
            raise ConfigError(
                "gateway.bind is tailnet but this host has no 100.64.0.0/10 or "
                "fd7a:115c:a1e0::/48 address"
            )
        return found
    if mode == "custom":
        if not custom_host:
            raise ConfigError("gateway.bind is custom but gateway.customBindHost is not set")
        return (custom_host,)
    raise ConfigError(f"gateway.bind must be one of {', '.join(BIND_MODES)} (got {mode!r})")


def is_loopback(hosts: tuple[str, ...]) -> bool:
    """True when every address is a loopback address (127.0.0.0/8, ::1, localhost)."""
    return bool(hosts) and all(ip_is_loopback(host) for host in hosts)


@functools.lru_cache(maxsize=4096)
def ip_is_loopback(host: str) -> bool:
    """One address (``localhost`` counts); cached, since every connect asks about its peer."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tailnet_addresses() -> tuple[str, ...]:
    """This host's Tailscale addresses, if any."""
    import psutil  # only the tailnet mode needs it

    found = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            try:
                ip = ipaddress.ip_address(addr.address.split("%")[0])
            except ValueError:
                continue
            if ip in _TAILNET_V4 or ip in _TAILNET_V6:
                found.append(str(ip))
    return tuple(found)


def _loopback_hosts() -> tuple[str, ...]:
    hosts = []
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
        except OSError:
            continue
        hosts.append(host)
    return tuple(hosts)
