"""The health probe of a RUNNING gateway: ``GET /readyz`` on its port, answered 200 in time.

A gateway that is SIGSTOPped or blocked still has its socket in the kernel, so connecting
succeeds; only an answer proves it serves. Anything else within the timeout is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

__all__ = ["probe_readyz"]

_MAX_STATUS_LINE: Final = 256


async def probe_readyz(host: str, port: int, timeout: float = 1.0) -> bool:
    """Ask the gateway whether it is ready.

    Args:
        host: Address to connect to.
        port: The gateway's port.
        timeout: Seconds for connect, request and status line together.

    Returns:
        True only for an ``HTTP/1.x 200`` status line within ``timeout``.
    """
    try:
        return await asyncio.wait_for(_probe(host, port), timeout)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False


async def _probe(host: str, port: int) -> bool:
    reader, writer = await asyncio.open_connection(host, port, limit=_MAX_STATUS_LINE * 4)
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await reader.readuntil(b"\r\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1] == b"200"
