"""The Control UI's static files, served at ``/`` of the gateway port.

The page holds no data: it connects back to this port's WebSocket with the gateway token (kept
in the tab's sessionStorage) and learns identity, health, presence, nodes and chat there. The
files are package data (``gateway/ui/``), read once on first request and kept in memory.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

# URL path -> (file in ui/, Content-Type)
ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/control.js": ("control.js", "text/javascript; charset=utf-8"),
    "/control.css": ("control.css", "text/css; charset=utf-8"),
}

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@cache
def asset(path: str) -> tuple[bytes, str] | None:
    """The bytes and Content-Type of the UI file served at ``path``; None if there is none."""
    entry = ASSETS.get(path)
    if entry is None:
        return None
    name, kind = entry
    return resources.files(__package__).joinpath("ui", name).read_bytes(), kind
