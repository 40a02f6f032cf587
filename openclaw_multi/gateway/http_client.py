"""A small asyncio HTTP/1.1 client for the gateway's outbound JSON calls (channels, backends).

One request per connection (``Connection: close``): the callers make a few requests a second
at most, and a fresh connection per call means no pool to go stale behind a proxy or a
restarted server. TLS uses the system trust store. Bodies are capped so a misbehaving
server cannot grow the gateway's memory without bound.

URLs may hold secrets (the Telegram Bot API puts the bot token in the path): nothing here logs
a URL, and :class:`HttpError` messages name only scheme, host and port.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024

_TLS_CONTEXT: ssl.SSLContext | None = None


class HttpError(Exception):
    """The request did not get an HTTP answer (refused, reset, timed out, malformed)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP answer: status, lowercased header names, and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what error messages and logs may show of it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


async def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResponse:
    """Send one request and read the whole answer within ``timeout`` seconds.

    Raises:
        HttpError: No answer in time, the connection failed, or the answer is malformed or
            larger than :data:`MAX_BODY_BYTES`. The message names the origin, never the path.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"unsupported URL scheme or host: {parts.scheme or '?'}://")
    where = origin(url)
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(method, parts, parts.hostname, body, headers)
    except TimeoutError:
        raise HttpError(f"{where}: no answer within {timeout:g} s") from None
    except OSError as err:  # ssl.SSLError included
        raise HttpError(f"{where}: {type(err).__name__}: {err.strerror or err}") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise HttpError(f"{where}: the connection closed mid-answer") from None
    except ValueError as err:
        raise HttpError(f"{where}: malformed answer ({err})") from None


async def _exchange(
    method: str,
    split: SplitResult,
    host: str,
    body: bytes | None,
    headers: dict[str, str] | None,
) -> HttpResponse:
    port = split.port or (443 if split.scheme == "https" else 80)
    tls = _tls_context() if split.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD_BYTES
    )
    try:
        target = split.path or "/"
        if split.query:
            target += "?" + split.query
        host_header = host if split.port is None else f"{host}:{port}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        payload = body or b""
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> HttpResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY_BYTES:
            raise ValueError(f"body of {length} bytes is over the {MAX_BODY_BYTES} cap")
        body = await reader.readexactly(length)
    else:
        body = await _read_to_close(reader)
    return HttpResponse(status, headers, body)


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    # A body framed by the close: read(n) gives what has arrived so far, so loop to EOF.
    chunks: list[bytes] = []
    total = 0
    while chunk := await reader.read(65_536):
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ValueError(f"body over the {MAX_BODY_BYTES} cap")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the trailer section ends with an empty line
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError(f"body over the {MAX_BODY_BYTES} cap")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.create_default_context()
    return _TLS_CONTEXT
