"""Is a profile free again? Its lock is unheld and its port no longer served by its gateway.

A gateway is only STOPPED (and may be spawned again) once both hold: respawning while the
old process still owns the port or the lock is how a restart turns into a conflict loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import time
from pathlib import Path
from typing import Final

import psutil

from openclaw_multi.profiles.lock import find_port_holder

from .probe import connect

__all__ = ["connect_host", "lock_is_free", "port_released", "wait_released"]

_CONNECT_TIMEOUT_S: Final = 0.5
_POLL_S: Final = 0.02


def connect_host(host: str | None) -> str:
    """The address to reach a gateway bound on ``host`` (wildcards become loopback)."""
    if not host or host in ("0.0.0.0", "localhost"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return host
    return "127.0.0.1"


def lock_is_free(lock_path: Path) -> bool:
    """Try the profile lock without blocking, and let go at once.

    Returns:
        True if nobody holds it (or the file does not exist).
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # unreadable: we cannot tell, and the gateway will say if it is held
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops our flock, if we got it
    return True


async def _refuses(host: str, port: int) -> bool:
    try:
        sock = await connect(host, port, _CONNECT_TIMEOUT_S)
    except TimeoutError:
        return False  # something holds the port but does not accept (stopped, backlog full)
    except OSError:
        return True  # refused, or unreachable: nobody serves it there
    sock.close()
    return False


def _in_group(pid: int, group: int) -> bool:
    if pid == group:
        return True
    try:
        return os.getpgid(pid) == group
    except OSError:
        return False


async def port_released(host: str, port: int, group: int | None) -> bool:
    """Tell whether ``port`` is no longer held by the gateway's process group.

    A port held by another program (the reason a gateway exited 78) counts as released:
    waiting for it would wait forever, and it is not ours to free.

    Args:
        host: Where to connect (see :func:`connect_host`).
        port: The gateway's port.
        group: The gateway's process-group id, or None if unknown.
    """
    if await _refuses(host, port):
        return True
    if group is None:
        return False
    holder = await asyncio.to_thread(find_port_holder, port)
    if holder is None:
        return False
    pid = holder[0]
    try:
        psutil.Process(pid)
    except (psutil.Error, OSError):
        return False
    return not _in_group(pid, group)


async def wait_released(
    lock_path: Path, port: int | None, host: str, group: int | None, timeout: float
) -> bool:
    """Wait until the lock is free and the port released, for at most ``timeout`` seconds.

    Returns:
        True if both are free; False on timeout (the caller logs it and goes on: a stuck
        port must not wedge the supervisor).
    """
    deadline = time.monotonic() + timeout
    while True:
        free = lock_is_free(lock_path) and (port is None or await port_released(host, port, group))
        if free:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
