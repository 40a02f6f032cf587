"""A minimal HTTP/1.1 POST over asyncio streams, for the model endpoint.

Why not a library: one JSON POST per model round needs no pool, no redirects, no cookies,
and httpx/aiohttp would be a dependency for that alone. One connection per request
(``Connection: close``); bodies framed by Content-Length, chunked, or the close; https with
the system's trust store. A ``text/event-stream`` answer can be taken line by line as it
arrives (``on_line``), for server-sent events. The caller bounds the time (the whole
exchange is awaited under its timeout, and cancellation closes the socket).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BODY = 16 * 1024 * 1024
MAX_HEADER_LINES = 200


class HttpError(Exception):
    """The exchange failed before a whole response arrived (message safe to show)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    on_line: Callable[[bytes], None] | None = None,
) -> HttpResponse:
    """POST ``body`` to ``url`` and read the response.

    With ``on_line``, a 200 ``text/event-stream`` body is handed over one line at a time
    (without its line ending) as it arrives, and the returned body is empty; any other
    answer is read whole.

    Raises:
        HttpError: Bad URL, connection refused/reset, or a malformed response.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise HttpError("invalid port in the URL") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
    context = ssl.create_default_context() if secure else None
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    except OSError as err:
        raise HttpError(f"cannot connect to {parts.hostname}:{port} ({_reason(err)})") from None
    try:
        head = [f"POST {target} HTTP/1.1", f"Host: {host_header}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(head).encode("latin-1") + body)
        await writer.drain()
        return await _read_response(reader, on_line)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
        raise HttpError(f"connection to {parts.hostname}:{port} failed ({_reason(err)})") from None
    finally:
        writer.close()


async def _read_response(
    reader: asyncio.StreamReader, on_line: Callable[[bytes], None] | None
) -> HttpResponse:
    status_line = (await reader.readline()).decode("latin-1").strip()
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise HttpError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(fields[1])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise HttpError("too many response headers")
    chunks = _body(reader, headers)
    streamed = headers.get("content-type", "").startswith("text/event-stream")
    if on_line is not None and status == 200 and streamed:
        pending = b""
        async for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw_line in complete:
                on_line(raw_line.rstrip(b"\r"))
            if len(pending) > MAX_BODY:
                raise HttpError("response line too long")
        if pending:
            on_line(pending.rstrip(b"\r"))
        return HttpResponse(status, headers, b"")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError("response body too large")
        parts.append(chunk)
    return HttpResponse(status, headers, b"".join(parts))


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive: chunked, Content-Length, or up to the close."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()  # the blank line after the last chunk (no trailers)
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        left = int(headers["content-length"])
        if left > MAX_BODY:
            raise HttpError("response body too large")
        while left > 0:
            chunk = await reader.read(min(left, 65536))
            if not chunk:
                raise HttpError("connection closed before the whole response arrived")
            left -= len(chunk)
            yield chunk
    else:
        while chunk := await reader.read(65536):
            yield chunk


def _reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, asyncio.IncompleteReadError):
        return "closed before the whole response arrived"
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    return str(err) or type(err).__name__
