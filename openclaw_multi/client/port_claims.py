"""The create/start rule for ports: a profile's block must not overlap another's, and its
base port must not be held by a process other than the profile's own gateway.

Checked up front by ``openclaw profiles create`` and ``openclaw profiles start``, so a
conflict is one clear message (exit 78) instead of a gateway that starts, exits 78, and
leaves a person reading logs. The gateway checks again when it binds; this is the early
answer, not the only one.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from openclaw_multi.errors import ConfigError, PortInUseError, ProfileConflictError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.discovery import list_profiles
from openclaw_multi.profiles.lock import (
    find_port_holder,
    identity_is_live,
    port_in_use_message,
    read_identity,
)
from openclaw_multi.profiles.paths import ProfilePaths
from openclaw_multi.profiles.ports import PORT_BLOCK, blocks_overlap, derived_port, resolve_port

__all__ = ["ProfilePort", "check_port_claim", "configured_port", "profile_ports"]

_CONNECT_TIMEOUT_S = 0.2


@dataclass(frozen=True)
class ProfilePort:
    """Where one profile's port block starts, and how we know.

    Attributes:
        paths: The profile's paths.
        port: Its base port.
        source: ``running`` (identity of a live gateway), ``config`` (``gateway.port``)
            or ``derived`` (from the name).
        pid: The live gateway's pid when ``source`` is ``running``.
    """

    paths: ProfilePaths
    port: int
    source: str
    pid: int | None = None


def configured_port(paths: ProfilePaths) -> tuple[int, str]:
    """A profile's base port from its config, else derived from its name.

    Returns:
        ``(port, "config" | "derived")``.

    Raises:
        ConfigError: The config is broken or ``gateway.port`` is invalid.
    """
    config = load_config(paths.config_path)
    if config.gateway.port is not None:
        return resolve_port(paths.name, config_port=config.gateway.port), "config"
    return derived_port(paths.name), "derived"


def profile_ports(home: Path) -> list[ProfilePort]:
    """The base port of every profile under ``home``.

    A live gateway's identity wins (it is where the profile really is); otherwise the
    config's ``gateway.port``; otherwise the derived port. A profile whose config cannot be
    read counts with its derived port: the rule must not be skipped because a neighbour's
    file is broken.
    """
    found: list[ProfilePort] = []
    for paths in list_profiles(home):
        identity = read_identity(paths.identity_path)
        if identity is not None and identity_is_live(identity):
            found.append(ProfilePort(paths, identity.port, "running", identity.pid))
            continue
        try:
            port, source = configured_port(paths)
        except ConfigError:
            port, source = derived_port(paths.name), "derived"
        found.append(ProfilePort(paths, port, source))
    return found


def _same_profile(a: ProfilePaths, b: ProfilePaths) -> bool:
    return os.path.realpath(a.state_dir) == os.path.realpath(b.state_dir)


def _something_listens(port: int) -> bool:
    # find_port_holder cannot see sockets of other users (no pid without privileges), so
    # a refused/answered connect on loopback is the fallback witness.
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(_CONNECT_TIMEOUT_S)
            if sock.connect_ex((host, port)) == 0:
                return True
    return False


def check_port_claim(paths: ProfilePaths, port: int) -> None:
    """Refuse a base port that another profile's block or another process already has.

    Args:
        paths: The profile that wants ``port`` (its own entry, and its own running
            gateway, are not conflicts).
        port: The base port it wants.

    Raises:
        ProfileConflictError: The block ``port..port+19`` overlaps another profile's.
        PortInUseError: ``port`` is held by a process that is not this profile's gateway;
            the message names the pid and command (and the profile, if it is a gateway).
    """
    own_pid: int | None = None
    by_port: dict[int, str] = {}
    for other in profile_ports(paths.home):
        if _same_profile(other.paths, paths):
            own_pid = other.pid
            continue
        if other.pid is not None:
            by_port[other.port] = other.paths.display_name
        if blocks_overlap(port, other.port):
            how = {"running": "its running gateway", "config": "its config"}.get(
                other.source, "derived from its name"
            )
            raise ProfileConflictError(
                f"port {port} is too close to profile {other.paths.display_name} "
                f"(port {other.port}, {how}): base ports must be at least {PORT_BLOCK} apart"
            )
    holder = find_port_holder(port)
    if holder is not None:
        if own_pid is not None and holder[0] == own_pid:
            return
        raise PortInUseError(port_in_use_message(port, holder, by_port))
    if own_pid is None and _something_listens(port):
        raise PortInUseError(port_in_use_message(port, None, by_port))
