"""The health probe of a RUNNING gateway: ``GET /readyz`` on its port, answered 200 in time.

A gateway that is SIGSTOPped or blocked still has its socket in the kernel, so connecting
succeeds; only an answer proves it serves. Anything else within the timeout is a failure.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from ..protocol.tls import TlsClientSession, pinned_client_context, tls_exchange

__all__ = ["connect", "probe_readyz"]

_MAX_STATUS_LINE: Final = 256
_REQUEST: Final = b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


async def connect(host: str, port: int, timeout: float) -> socket.socket:
    """Open a non-blocking TCP connection within ``timeout``; the caller closes it.

    A bare socket, not asyncio streams: if the deadline cancels the connect, this function
    still owns the socket and closes it, so no transport is left behind.

    Raises:
        TimeoutError, OSError: no connection in time, refused, unreachable.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def probe_readyz(
    host: str, port: int, timeout: float = 1.0, *, tls_fingerprint: str | None = None
) -> bool:
    """Ask the gateway whether it is ready.

    Args:
        host: Address to connect to.
        port: The gateway's port.
        timeout: Seconds for connect, request and status line together.
        tls_fingerprint: The port speaks TLS: pin this certificate SHA-256 (from the
            gateway's identity file). A certificate that does not match fails the probe.

    Returns:
        True only for an ``HTTP/1.x 200`` status line within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        sock = await connect(host, port, timeout)
    except (TimeoutError, OSError):
        return False
    try:
        async with asyncio.timeout_at(deadline):
            if tls_fingerprint is not None:
                head = await _tls_status_line(loop, sock, tls_fingerprint)
            else:
                await loop.sock_sendall(sock, _REQUEST)
                head = b""
                while b"\r\n" not in head and len(head) < _MAX_STATUS_LINE:
                    chunk = await loop.sock_recv(sock, _MAX_STATUS_LINE)
                    if not chunk:
                        break
                    head += chunk
    except (TimeoutError, OSError):  # ssl.SSLError (and a pin mismatch) are OSErrors
        return False
    finally:
        sock.close()
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1] == b"200"


async def _tls_status_line(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, fingerprint: str
) -> bytes:
    session = TlsClientSession(pinned_client_context(fingerprint))

    async def send(data: bytes) -> None:
        await loop.sock_sendall(sock, data)

    async def recv(n: int) -> bytes:
        return await loop.sock_recv(sock, n)

    return await tls_exchange(
        session, send, recv, _REQUEST, limit=_MAX_STATUS_LINE, until=lambda b: b"\r\n" in b
    )
