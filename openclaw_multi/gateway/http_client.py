"""A small asyncio HTTP/1.1 client for the gateway's outbound calls (channels, model endpoints).

Why not a library: a JSON POST now and then needs no pool, redirects or cookies, and
httpx/aiohttp would be a dependency for that alone. One request per connection
(``Connection: close``): no pool to go stale behind a proxy or a restarted server. Bodies are
framed by Content-Length, chunked encoding, or the close, and capped at
:data:`MAX_BODY_BYTES` so a misbehaving server cannot grow the gateway's memory. TLS uses the
system trust store. A ``text/event-stream`` answer can be handed over line by line as it
arrives (model endpoints stream their tokens that way).

URLs may hold secrets (the Telegram Bot API puts the bot token in the path): nothing here logs
a URL or a header value, and :class:`HttpError` messages name only host, port and header names.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 65536

_TLS_CONTEXT: ssl.SSLContext | None = None


class HttpError(Exception):
    """No whole HTTP answer: refused, reset, timed out, malformed, or over the size cap."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP answer: status, lowercased header names, and the body (empty when streamed)."""

    status: int
    headers: dict[str, str]
    body: bytes


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what error messages and logs may show of it."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{parts.scheme}://{parts.hostname}:{port}"


async def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = 30.0,
    on_line: Callable[[bytes], None] | None = None,
) -> HttpResponse:
    """Send one request and read the answer within ``timeout`` seconds (None: the caller's).

    With ``on_line``, a 200 ``text/event-stream`` body is handed over one line at a time
    (without its line ending) as it arrives, and the returned body is empty; any other answer
    is read whole.

    Raises:
        HttpError: Bad URL, no answer in time, the connection failed, or the answer is
            malformed or over :data:`MAX_BODY_BYTES`. The message names host and port only.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise HttpError("invalid port in the URL") from None
    where = f"{parts.hostname}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if parts.port is None else where
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in _checked_headers(headers or {})]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:  # headers are checked: the URL's path, query or host is left
        raise HttpError(f"the URL for {where} is not Latin-1 (percent-encode it)") from None
    tls = _tls_context() if parts.scheme == "https" else None
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(
                    parts.hostname, port, ssl=tls, limit=MAX_HEAD_BYTES
                )
            except OSError as err:
                raise HttpError(f"cannot connect to {where} ({_reason(err)})") from None
            try:
                writer.write(head + (body or b""))
                await writer.drain()
                return await _read_response(reader, on_line)
            finally:
                writer.close()
    except TimeoutError:  # ours, or a socket's own (an OSError subclass)
        waited = f" within {timeout:g} s" if timeout is not None else ""
        raise HttpError(f"{where}: no answer{waited}") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
        raise HttpError(f"connection to {where} failed ({_reason(err)})") from None


async def _read_response(
    reader: asyncio.StreamReader, on_line: Callable[[bytes], None] | None = None
) -> HttpResponse:
    """Read one answer; ValueError when it is malformed or over the cap."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    status = int(fields[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    chunks = _body(reader, headers)
    streamed = headers.get("content-type", "").startswith("text/event-stream")
    if on_line is not None and status == 200 and streamed:
        pending = b""
        async for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw_line in complete:
                on_line(raw_line.rstrip(b"\r"))
            if len(pending) > MAX_BODY_BYTES:
                raise ValueError(f"a line over the {MAX_BODY_BYTES}-byte cap")
        if pending:
            on_line(pending.rstrip(b"\r"))
        return HttpResponse(status, headers, b"")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ValueError(f"body over the {MAX_BODY_BYTES}-byte cap")
        parts.append(chunk)
    return HttpResponse(status, headers, b"".join(parts))


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive: chunked, Content-Length, or up to the close."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # the blank line after the last chunk
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        left = int(headers["content-length"])
        if left > MAX_BODY_BYTES:
            raise ValueError(f"body of {left} bytes is over the {MAX_BODY_BYTES}-byte cap")
        while left > 0:
            chunk = await reader.read(min(left, READ_SIZE))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(chunk)
            yield chunk
    else:
        while chunk := await reader.read(READ_SIZE):
            yield chunk


def _checked_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """The headers, refused with :class:`HttpError` if one cannot go on the wire as is.

    Values are often secrets (``Authorization: Bearer <key>``, a pasted key with a smart
    quote in it): the error names the header, never the value.
    """
    for name, value in headers.items():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise HttpError(f"header value is not Latin-1: {name}") from None
        if "\r" in value or "\n" in value:  # would end the header early (or add one)
            raise HttpError(f"header value has a line break: {name}")
    return list(headers.items())


def _reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, asyncio.IncompleteReadError):
        return "closed before the whole answer arrived"
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    return str(err) or type(err).__name__


def _tls_context() -> ssl.SSLContext:
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.create_default_context()
    return _TLS_CONTEXT
