"""The dashboard's HTTP server: static page, login, live stream, actions, log tails.

Routes (all JSON but the page and the stream):

==========================  =====================================================  ==========
route                       what                                                   needs
==========================  =====================================================  ==========
GET /, /app.js, /app.css    the static page (holds no data)                        nothing
POST /api/login             ``{"secret"}`` or ``{"code"}`` -> ``{"session","csrf"}``  the secret
GET /api/session            ``{"csrf"}`` for a page reloaded in the same tab       session
GET /api/state              the current snapshot (rows + history)                  session
GET /api/events             server-sent events: one snapshot per refresh           session
GET /api/logs?profile=&lines=  the tail of a profile's gateway log                 session
POST /api/action            ``{"profile","op"}``: start, stop or restart           session+CSRF
POST /api/logout            end the session                                        session+CSRF
==========================  =====================================================  ==========

"session" is the ``X-Dashboard-Session`` header, which the page keeps in its tab's
sessionStorage. There is no cookie: browsers send a 127.0.0.1 cookie to every port of the
host, so any other loopback web server the user visits would receive it. A header is sent
only by this page's own script (the stream too: the page reads it with ``fetch``, not
``EventSource``, so the credential is never in a URL).

Defences: loopback bind only; the ``Host`` header must name this server (a DNS-rebinding
page cannot talk to it); a POST with an ``Origin`` must come from this origin; state-changing
calls need the session's CSRF token in ``X-CSRF-Token``; every answer carries a strict CSP,
``X-Frame-Options: DENY``, ``nosniff`` and ``no-referrer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from importlib import resources
from typing import Any, Final

import msgspec

from openclaw_multi.errors import UsageError

from . import http
from .auth import Gatekeeper, LoginFailures
from .model import ActionError, Board

_LOG = logging.getLogger("openclaw.dashboard")
MAX_STREAMS: Final = 32
# Open sockets at once (each waits up to HEAD_TIMEOUT_S for its request): a local process
# opening thousands must not run the server out of file descriptors for the real page.
MAX_CONNECTIONS: Final = 128
KEEPALIVE_S: Final = 15.0
SESSION_HEADER: Final = "x-dashboard-session"  # lower-cased, as http.parse_head keeps names
_ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_JSON: Final = "application/json"
_json = msgspec.json.Encoder()


class _Login(msgspec.Struct, frozen=True):
    secret: str | None = None
    code: str | None = None


class _Action(msgspec.Struct, frozen=True):
    profile: str
    op: str


def load_asset(name: str) -> bytes:
    """One file of ``openclaw_multi/dashboard/ui`` (package data)."""
    return resources.files(__package__).joinpath("ui", name).read_bytes()


def check_loopback(host: str) -> None:
    """Refuse to serve anywhere but a loopback address.

    Raises:
        UsageError: ``host`` is not a loopback IP address.
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"the dashboard serves on loopback only, not on {host!r}")


class DashboardServer:
    """One dashboard: a board, a gatekeeper and the listening socket."""

    def __init__(self, board: Board, gate: Gatekeeper, *, host: str = "127.0.0.1") -> None:
        check_loopback(host)
        self.board = board
        self.gate = gate
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams = 0
        self._connections = 0
        self._failures = LoginFailures()
        self._assets = {path: (load_asset(name), kind) for path, (name, kind) in _ASSETS.items()}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self, port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port), after a first refresh of the rows."""
        await self.board.refresh()
        self._server = await asyncio.start_server(
            self._handle, self.host, port, limit=http.MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    # -- connection handling ------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.write(self._json(503, {"error": "too many connections"}))
            writer.close()
            return
        self._connections += 1
        try:
            try:
                request = await http.read_request(reader)
            except http.BadRequest as err:
                writer.write(self._json(err.status, {"error": str(err)}))
                return
            if request is None:
                return
            if not self._host_ok(request):
                writer.write(self._json(421, {"error": "wrong Host header"}))
                return
            if request.path == "/api/events" and request.method == "GET":
                await self._stream(request, writer)
                return
            peer = writer.get_extra_info("peername")
            writer.write(await self._route(request, str(peer[0]) if peer else "?"))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    def _host_ok(self, request: http.Request) -> bool:
        host = request.headers.get("host", "")
        return host in (f"{self.host}:{self.port}", f"localhost:{self.port}")

    def _origin_ok(self, request: http.Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True  # not a browser, or a same-origin GET; CSRF tokens still apply
        return origin in (f"http://{self.host}:{self.port}", f"http://localhost:{self.port}")

    def _json(self, status: int, payload: Any, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        return http.render(status, _json.encode(payload), _JSON, extra=extra)

    def _sid(self, request: http.Request) -> str | None:
        # The header only: a cookie would reach every loopback port, not just this one.
        return request.headers.get(SESSION_HEADER)

    async def _route(self, request: http.Request, peer: str) -> bytes:
        method, path = request.method, request.path
        if path in self._assets:
            if method not in ("GET", "HEAD"):
                return self._json(405, {"error": "method not allowed"}, (("Allow", "GET, HEAD"),))
            body, kind = self._assets[path]
            return http.render(200, body, kind, head_only=method == "HEAD")
        if not path.startswith("/api/"):
            return self._json(404, {"error": "not found"})
        if method == "POST" and not self._origin_ok(request):
            return self._json(403, {"error": "cross-origin request refused"})
        if path == "/api/login" and method == "POST":
            return await self._login(request, peer)
        session = self.gate.session(self._sid(request))
        if session is None:
            return self._json(401, {"error": "login required"})
        if method == "GET":
            if path == "/api/session":
                return self._json(200, {"csrf": session.csrf})
            if path == "/api/state":
                return http.render(200, self.board.encoded, _JSON)
            if path == "/api/logs":
                return await self._logs(request)
            return self._json(404, {"error": "not found"})
        if method != "POST":
            return self._json(405, {"error": "method not allowed"})
        if not self.gate.check_csrf(self._sid(request), request.headers.get("x-csrf-token")):
            return self._json(403, {"error": "missing or wrong CSRF token"})
        if path == "/api/action":
            return await self._action(request)
        if path == "/api/logout":
            self.gate.logout(self._sid(request))
            return self._json(200, {"ok": True})
        return self._json(404, {"error": "not found"})

    async def _login(self, request: http.Request, peer: str) -> bytes:
        try:
            creds = msgspec.json.decode(request.body, type=_Login)
        except msgspec.DecodeError:
            return self._json(400, {"error": "expected JSON {secret} or {code}"})
        granted = self.gate.login(secret=creds.secret, code=creds.code)
        if granted is None:
            delay, line = self._failures.failed(peer, time.monotonic())
            if line is not None:
                _LOG.warning("%s", line)
            await asyncio.sleep(delay)  # guessing is slow (as the gateway's handshake)
            return self._json(401, {"error": "wrong or spent secret"})
        self._failures.succeeded(peer)
        sid, csrf = granted
        return self._json(200, {"session": sid, "csrf": csrf})

    async def _action(self, request: http.Request) -> bytes:
        try:
            action = msgspec.json.decode(request.body, type=_Action)
        except msgspec.DecodeError:
            return self._json(400, {"error": "expected JSON {profile, op}"})
        try:
            result = await self.board.act(action.profile, action.op)
        except ActionError as err:
            return self._json(err.status, {"ok": False, "error": str(err)})
        return self._json(200, result)

    async def _logs(self, request: http.Request) -> bytes:
        name = (request.query.get("profile") or [""])[0]
        lines_text = (request.query.get("lines") or ["50"])[0]
        if not http.is_small_number(lines_text):
            return self._json(400, {"error": "lines must be a number"})
        try:
            lines = await self.board.log_tail(name, int(lines_text))
        except ActionError as err:
            return self._json(err.status, {"error": str(err)})
        return self._json(200, {"profile": name, "lines": lines})

    async def _stream(self, request: http.Request, writer: asyncio.StreamWriter) -> None:
        if self.gate.session(self._sid(request)) is None:
            writer.write(self._json(401, {"error": "login required"}))
            return
        if self._streams >= MAX_STREAMS:
            writer.write(self._json(503, {"error": "too many open pages"}))
            return
        self._streams += 1
        try:
            writer.write(http.stream_head())
            seen = -1
            while not writer.is_closing():
                if self.gate.session(self._sid(request)) is None:
                    break  # logged out: stop feeding this page
                if self.board.version > seen:
                    seen = self.board.version
                    writer.write(b"data: " + self.board.encoded + b"\n\n")
                else:
                    writer.write(b": keepalive\n\n")
                try:
                    # A page that stopped reading must not hold a stream slot forever.
                    await asyncio.wait_for(writer.drain(), 2 * KEEPALIVE_S)
                except TimeoutError:
                    _LOG.info("dashboard: dropped a stream that stopped reading")
                    writer.transport.abort()  # close() would wait for the unread bytes
                    break
                await self.board.wait_newer(seen, KEEPALIVE_S)
        finally:
            self._streams -= 1


async def serve(
    server: DashboardServer, port: int, ready: asyncio.Future[str] | None = None
) -> None:
    """Start ``server`` and run its refresh loop until cancelled."""
    await server.start(port)
    refresher = asyncio.create_task(server.board.run())
    try:
        if ready is not None:
            ready.set_result(server.url)
        await asyncio.Event().wait()
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await server.close()
