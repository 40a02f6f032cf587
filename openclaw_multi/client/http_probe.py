"""A tiny HTTP/1.1 GET for a gateway's probe paths (``/readyz``, ``/healthz``, ``/startupz``).

Probes answer small JSON bodies on the gateway port (protocol.md, HTTP on the same port), so
a full HTTP client is not needed: one request with ``Connection: close``, read to EOF (bounded),
parse the status line and the body. Used to look at many ports at once (``profiles list``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Final

import msgspec

from ..errors import GatewayUnreachable
from ..protocol.tls import TlsClientSession, TlsPinMismatch, pinned_client_context, tls_exchange

__all__ = ["MAX_RESPONSE_BYTES", "parse_response", "probe_http"]

MAX_RESPONSE_BYTES: Final = 64 * 1024


async def probe_http(
    host: str,
    port: int,
    path: str = "/readyz",
    timeout: float = 2.0,
    *,
    tls_fingerprint: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """GET ``path`` from ``host:port`` and return the status and the JSON object body.

    Args:
        host: Address to connect to (``127.0.0.1``, ``::1``, a name).
        port: The gateway port.
        path: The probe path.
        timeout: Seconds for the whole exchange.
        tls_fingerprint: Speak HTTPS, pinned to this certificate SHA-256 (what a TLS
            gateway records in its identity file); None: plain HTTP.

    Returns:
        ``(status, body)``; ``body`` is ``{}`` when the answer is not a JSON object.

    Raises:
        GatewayUnreachable: Refused, timed out, closed early, or not HTTP.
    """
    scheme = "https" if tls_fingerprint is not None else "http"
    where = f"{scheme}://{_host_header(host)}:{port}{path}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {_host_header(host)}:{port}\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    loop = asyncio.get_running_loop()
    # A bare non-blocking socket rather than asyncio streams: when the deadline cancels the
    # connect, the finally below still owns (and closes) the socket, so nothing leaks.
    sock: socket.socket | None = None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            if tls_fingerprint is not None:
                chunks.append(await _https_exchange(loop, sock, request, tls_fingerprint))
                size = len(chunks[0])
            else:
                await loop.sock_sendall(sock, request)
            while tls_fingerprint is None and size <= MAX_RESPONSE_BYTES:
                raw = await loop.sock_recv(sock, MAX_RESPONSE_BYTES + 1 - size)
                if not raw:
                    break
                chunks.append(raw)
                size += len(raw)
    except TimeoutError:
        raise GatewayUnreachable(f"no answer from {where} within {timeout:g}s") from None
    except TlsPinMismatch as err:
        raise GatewayUnreachable(f"cannot reach {where}: {err}") from None
    except ssl.SSLError as err:
        raise GatewayUnreachable(f"cannot reach {where}: TLS: {err.reason or err}") from None
    except ConnectionRefusedError:
        raise GatewayUnreachable(f"cannot reach {where}: connection refused") from None
    except OSError as err:
        raise GatewayUnreachable(f"cannot reach {where}: {err.strerror or err}") from None
    finally:
        if sock is not None:
            sock.close()
    if size > MAX_RESPONSE_BYTES:
        raise GatewayUnreachable(f"answer from {where} is over {MAX_RESPONSE_BYTES} bytes")
    parsed = parse_response(b"".join(chunks))
    if parsed is None:
        raise GatewayUnreachable(f"answer from {where} is not HTTP")
    return parsed


async def _https_exchange(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes, fingerprint: str
) -> bytes:
    """The request over TLS on a connected bare socket, pinned; the whole answer."""
    session = TlsClientSession(pinned_client_context(fingerprint))

    async def send(data: bytes) -> None:
        await loop.sock_sendall(sock, data)

    async def recv(n: int) -> bytes:
        return await loop.sock_recv(sock, n)

    return await tls_exchange(session, send, recv, request, limit=MAX_RESPONSE_BYTES)


def parse_response(data: bytes) -> tuple[int, dict[str, Any]] | None:
    """Parse a whole ``Connection: close`` response: ``(status, JSON object body)``.

    Args:
        data: Everything the server sent.

    Returns:
        The status and the body (``{}`` unless it is a JSON object), or None if ``data``
        is not an HTTP/1.x response.
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, _, header_block = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            body = body[: int(value.strip())]
    try:
        decoded = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        decoded = None
    return int(parts[1]), decoded if isinstance(decoded, dict) else {}


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
