"""Just enough HTTP/1.1 for the dashboard: read one bounded request, write one response.

Every connection carries one request and is closed after the answer (the page makes few
requests; keep-alive would buy nothing here). The live stream (server-sent events) is the
one response that stays open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD_BYTES: Final = 16 * 1024
MAX_BODY_BYTES: Final = 8 * 1024
HEAD_TIMEOUT_S: Final = 10.0

REASONS: Final = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# Every answer carries these: nothing may frame the page, sniff types, or leak the URL.
SECURITY_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
)


def is_small_number(text: str) -> bool:
    """True for 1 to 9 ASCII digits.

    ``str.isdigit`` alone also passes ``"²"`` (latin-1 0xB2) and numbers past ``int``'s
    4300-digit limit, on which ``int()`` raises instead of giving a number.
    """
    return 0 < len(text) <= 9 and text.isascii() and text.isdigit()


class BadRequest(Exception):
    """The request cannot be parsed; ``status`` says how to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


def parse_head(raw: bytes) -> tuple[str, str, dict[str, list[str]], dict[str, str]]:
    """Split a request head into method, path, query and lower-cased headers.

    Raises:
        BadRequest: A malformed request line or header.
    """
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, "bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header")
        headers[name.lower()] = value.strip()
    target = urlsplit(parts[1])
    return parts[0], unquote(target.path), parse_qs(target.query), headers


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request (head within ``HEAD_TIMEOUT_S``, body up to ``MAX_BODY_BYTES``).

    Returns:
        The request, or None when the peer closed before sending a complete head.

    Raises:
        BadRequest: Malformed, too large, or too slow.
    """
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    except TimeoutError:
        raise BadRequest(400, "request head too slow") from None
    method, path, query, headers = parse_head(raw[:-4])
    length_text = headers.get("content-length", "0")
    if not is_small_number(length_text):
        raise BadRequest(400, "bad content-length")
    if "transfer-encoding" in headers:
        raise BadRequest(400, "chunked bodies are not accepted")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "body too large")
    body = b""
    if length:
        try:
            body = await asyncio.wait_for(reader.readexactly(length), HEAD_TIMEOUT_S)
        except (asyncio.IncompleteReadError, TimeoutError):
            raise BadRequest(400, "incomplete body") from None
    return Request(method, path, query, headers, body)


def render(
    status: int,
    body: bytes,
    content_type: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> bytes:
    """A complete response that closes the connection, with the security headers."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in SECURITY_HEADERS]
    lines += [
        f"Content-Type: {content_type}",
        "Cache-Control: no-store",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in extra]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def stream_head() -> bytes:
    """The head of a server-sent events response (kept open; no length)."""
    lines = ["HTTP/1.1 200 OK"]
    lines += [f"{k}: {v}" for k, v in SECURITY_HEADERS]
    lines += [
        "Content-Type: text/event-stream",
        "Cache-Control: no-store",
        "Connection: close",
        "X-Accel-Buffering: no",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
