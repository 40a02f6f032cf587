"""Port rules: derived ports, port blocks, parsing and precedence.

Pure: values in, a port number or a :class:`UsageError`/:class:`ConfigError` out.
The derivation is OpenClaw's, so a named profile gets the same port in both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from openclaw_multi.errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_PORT",
    "DEV_PORT",
    "PORT_BLOCK",
    "PORT_ENV",
    "blocks_overlap",
    "derived_port",
    "fnv1a_32",
    "parse_port",
    "resolve_port",
]

DEFAULT_PORT = 18789
DEV_PORT = 19001
PORT_ENV = "OPENCLAW_GATEWAY_PORT"

# A gateway owns base..base+19 (base+2 is OpenClaw's browser-control port), so two
# profiles' base ports must be at least this far apart.
PORT_BLOCK = 20

_DERIVED_BASE = 20000
_DERIVED_SPAN = 40000

# FNV-1a 32-bit parameters (http://www.isthe.com/chongo/tech/comp/fnv/).
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193

_INVALID_PORT = "Invalid --port. Use a port number from 1 to 65535, for example 18789."
_DIGITS = re.compile(r"[0-9]{1,5}")


def fnv1a_32(data: bytes) -> int:
    """Hash bytes with 32-bit FNV-1a.

    Args:
        data: The bytes to hash.

    Returns:
        The hash as an unsigned 32-bit int.
    """
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def derived_port(name: str | None) -> int:
    """The base port a profile gets when nothing sets one.

    Args:
        name: Canonical profile name; None is the default profile.

    Returns:
        18789 for the default profile, 19001 for ``dev``, else
        ``20000 + fnv1a_32(utf-8 name) % 40000``.
    """
    if name is None:
        return DEFAULT_PORT
    if name == "dev":
        return DEV_PORT
    return _DERIVED_BASE + fnv1a_32(name.encode("utf-8")) % _DERIVED_SPAN


def blocks_overlap(a: int, b: int) -> bool:
    """Tell whether the port blocks starting at ``a`` and ``b`` share a port.

    Args:
        a: One profile's base port.
        b: Another profile's base port.

    Returns:
        True if the two ``PORT_BLOCK``-sized blocks intersect.
    """
    return abs(a - b) < PORT_BLOCK


def _port_or_none(value: object) -> int | None:
    # bool is an int subclass; ``port: true`` in a config is a mistake, not port 1.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        port = int(value.strip())
    else:
        return None
    return port if 1 <= port <= 65535 else None


def parse_port(value: object) -> int:
    """Check a port given by a person (flag or environment).

    Args:
        value: An int, or a string of ASCII digits (surrounding whitespace allowed).

    Returns:
        The port, 1..65535.

    Raises:
        UsageError: Anything else (0, negative, > 65535, non-numeric, bool).
    """
    port = _port_or_none(value)
    if port is None:
        raise UsageError(_INVALID_PORT)
    return port


def resolve_port(
    name: str | None,
    *,
    flag: object = None,
    env: Mapping[str, str] | None = None,
    config_port: object = None,
) -> int:
    """Pick a profile's port: ``--port`` > ``OPENCLAW_GATEWAY_PORT`` > ``gateway.port`` > derived.

    An empty ``OPENCLAW_GATEWAY_PORT`` counts as unset (``VAR= cmd`` in a shell). A value
    that is set but invalid is an error, never silently skipped: falling through to
    another port would start the gateway somewhere nobody asked for.

    Args:
        name: Canonical profile name (None is the default profile).
        flag: The ``--port`` value, or None.
        env: The environment to read ``OPENCLAW_GATEWAY_PORT`` from.
        config_port: ``gateway.port`` from the profile's config, or None.

    Returns:
        The port to use.

    Raises:
        UsageError: An invalid ``--port`` or ``OPENCLAW_GATEWAY_PORT``.
        ConfigError: An invalid ``gateway.port``.
    """
    if flag is not None:
        return parse_port(flag)
    env_value = (env or {}).get(PORT_ENV, "")
    if env_value.strip():
        return parse_port(env_value)
    if config_port is not None:
        port = _port_or_none(config_port)
        if port is None:
            raise ConfigError(_INVALID_PORT)
        return port
    return derived_port(name)
