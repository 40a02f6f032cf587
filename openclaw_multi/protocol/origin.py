"""The browser Origin rule for Control UI and web chat connects (as the reference gateway).

A browser page can open a WebSocket to any host it likes, carrying the user's network
position with it; the ``Origin`` header it cannot forge says which page asked. The
reference gateway checks it for browser clients (``client.id`` ``openclaw-control-ui``,
``webchat-ui``, or ``client.mode`` ``webchat``) and for any client whose upgrade carries an
``Origin`` (a web page may claim any client id), before any credential is looked at. An
origin passes when it is:

1. listed in ``gateway.controlUi.allowedOrigins`` (``"*"`` allows any);
2. the same host as the request's ``Host`` header, when that host is trusted: loopback (for
   a local peer), a private or loopback IP, or a ``.local``/``.ts.net`` name;
3. any loopback origin, for a peer connecting directly over loopback.

Anything else (and a missing or malformed Origin) is refused with INVALID_REQUEST,
details ``CONTROL_UI_ORIGIN_NOT_ALLOWED``, close 1008.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Final, NamedTuple
from urllib.parse import urlsplit

BROWSER_CLIENT_IDS: Final = frozenset({"openclaw-control-ui", "webchat-ui"})
ORIGIN_NOT_ALLOWED_CODE: Final = "CONTROL_UI_ORIGIN_NOT_ALLOWED"
ORIGIN_NOT_ALLOWED_MESSAGE: Final = (
    "origin not allowed (open the Control UI from the gateway host or allow it in "
    "gateway.controlUi.allowedOrigins)"
)
_ORIGIN_SHAPE: Final = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\\]+/?$", re.IGNORECASE)


class Origin(NamedTuple):
    origin: str
    host: str
    hostname: str


def is_browser_client(client_id: str, mode: str) -> bool:
    """True for the clients whose Origin the reference checks (a Control UI or web chat)."""
    return client_id in BROWSER_CLIENT_IDS or mode == "webchat"


def parse_origin(raw: str | None) -> Origin | None:
    """``scheme://host[:port]`` lowercased, or None for a missing, ``null`` or odd value."""
    text = (raw or "").strip()
    if not text or text == "null" or not _ORIGIN_SHAPE.match(text):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.username or parts.password or not parts.hostname:
        return None
    host = parts.netloc.lower()
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme.lower())
    if port is not None and port == default:
        host = host.rsplit(":", 1)[0]
    return Origin(f"{parts.scheme.lower()}://{host}", host, parts.hostname.lower())


def _hostname(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback_name(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _trusted_same_origin_host(hostname: str, local: bool) -> bool:
    if _is_loopback_name(hostname):
        return local
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return hostname.endswith(".local") or hostname.endswith(".ts.net")
    return address.is_private or address.is_loopback


def check_browser_origin(
    origin: str | None, host: str | None, *, local: bool, allowed: Sequence[str] = ()
) -> str | None:
    """Apply the rule of the module docstring.

    Args:
        origin: The upgrade request's ``Origin`` header.
        host: Its ``Host`` header.
        local: The peer connected directly over loopback (no proxy).
        allowed: ``gateway.controlUi.allowedOrigins``.

    Returns:
        None when the origin passes, else the reason (``details.reason`` of the refusal).
    """
    parsed = parse_origin(origin)
    if parsed is None:
        return "origin missing or invalid"
    allowlist = {value.strip().lower() for value in allowed if value.strip()}
    if "*" in allowlist or parsed.origin in allowlist:
        return None
    request_host = (host or "").strip().lower()
    same_host = bool(request_host) and parsed.host == request_host
    if same_host and _trusted_same_origin_host(_hostname(request_host), local):
        return None
    if local and _is_loopback_name(parsed.hostname):
        return None
    return "origin not allowed"
