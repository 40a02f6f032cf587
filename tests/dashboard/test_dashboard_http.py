"""The dashboard's HTTP surface without a browser: secret, sessions, CSRF, Host/Origin,
headers, the live stream, log tails, bad input, and the CLI's own errors."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from openclaw_multi.dashboard.auth import Gatekeeper
from openclaw_multi.dashboard.model import Board
from openclaw_multi.dashboard.server import DashboardServer, check_loopback
from openclaw_multi.errors import UsageError
from tests.browser.harness import URL_LINE, Dashboard, start_dashboard
from tests.conftest import clean_env, wait_until

Reply = tuple[int, dict[str, str], bytes]


def call(
    dash: Dashboard,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


SESSION = "X-Dashboard-Session"


def login(dash: Dashboard) -> tuple[str, str]:
    """(session id, CSRF token) of a fresh session."""
    status, headers, body = call(dash, "POST", "/api/login", {"secret": dash.secret})
    assert status == 200, body
    assert "set-cookie" not in headers
    granted = json.loads(body)
    return granted["session"], granted["csrf"]


@pytest.fixture
def dash(home: Path) -> Iterator[Dashboard]:
    for name, port in (("alpha", 41001), ("beta", 41031)):
        state = home / f".openclaw-{name}"
        state.mkdir(mode=0o700)
        (state / "openclaw.json").write_text(json.dumps({"gateway": {"port": port}}))
    logs = home / ".openclaw-alpha" / "logs"
    logs.mkdir()
    (logs / "gateway.log").write_text("".join(f"line {i}\n" for i in range(100)))
    # beta is handed to systemd: the dashboard must not drive it behind systemd's back.
    units = home / "units"
    units.mkdir()
    (units / "openclaw-gateway-beta.service").write_text("[Service]\n")
    env = clean_env(home, OPENCLAW_SYSTEMD_DIR=str(units))
    started = start_dashboard(home, env, "--interval", "0.3")
    try:
        yield started
    finally:
        started.stop()


def test_page_is_static_with_strict_headers(dash: Dashboard) -> None:
    status, headers, body = call(dash, "GET", "/")
    assert status == 200
    csp = headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert b"alpha" not in body and b'<script src="/app.js"' in body
    for asset, kind in (("/app.js", "text/javascript"), ("/app.css", "text/css")):
        status, headers, _ = call(dash, "GET", asset)
        assert status == 200 and headers["content-type"].startswith(kind)
    assert call(dash, "GET", "/nope")[0] == 404
    assert call(dash, "POST", "/")[0] == 405


def test_data_needs_the_secret(dash: Dashboard) -> None:
    for path in ("/api/state", "/api/session", "/api/events", "/api/logs?profile=alpha"):
        status, _, body = call(dash, "GET", path)
        assert status == 401, path
        assert b"alpha" not in body
        status, _, body = call(dash, "GET", path, headers={SESSION: "forged"})
        assert status == 401 and b"alpha" not in body
    status, headers, body = call(dash, "POST", "/api/login", {"secret": dash.secret + "x"})
    assert status == 401 and "set-cookie" not in headers
    assert call(dash, "POST", "/api/login", {})[0] == 401
    assert call(dash, "POST", "/api/login", {"code": "guess"})[0] == 401
    assert call(dash, "POST", "/api/login", "not an object")[0] == 400

    status, headers, body = call(dash, "POST", "/api/login", {"secret": dash.secret})
    assert status == 200
    # No cookie: browsers send a 127.0.0.1 cookie to every port of the host.
    assert "set-cookie" not in headers
    granted = json.loads(body)
    csrf = granted["csrf"]
    jar = {SESSION: granted["session"]}
    status, _, body = call(dash, "GET", "/api/state", headers=jar)
    state = json.loads(body)
    assert status == 200
    assert [r["name"] for r in state["rows"]] == ["alpha", "beta"]
    assert set(state["history"]) == {"alpha", "beta"}
    assert json.loads(call(dash, "GET", "/api/session", headers=jar)[2]) == {"csrf": csrf}
    # The session id as a cookie (what another loopback port would be sent) reads nothing,
    # nor does the CSRF token in its place.
    for name in (f"ocdash_{dash.port}", "session", SESSION):
        for path in ("/api/state", "/api/session", "/api/events", "/api/logs?profile=alpha"):
            cookie_only = {"Cookie": f"{name}={granted['session']}"}
            assert call(dash, "GET", path, headers=cookie_only)[0] == 401, (name, path)
    assert call(dash, "GET", "/api/state", headers={SESSION: csrf})[0] == 401
    # The secret is printed once (the URL) and never again, whatever happened since.
    assert dash.output.read_text().count(dash.secret) == 1


def test_actions_need_the_csrf_token(dash: Dashboard) -> None:
    sid, csrf = login(dash)
    action = {"profile": "alpha", "op": "start"}
    for headers in (
        {SESSION: sid},
        {SESSION: sid, "X-CSRF-Token": ""},
        {SESSION: sid, "X-CSRF-Token": csrf + "x"},
        {"X-CSRF-Token": csrf},  # token without the session
        {"Cookie": f"ocdash_{dash.port}={sid}", "X-CSRF-Token": csrf},  # a cookie is no session
    ):
        status, _, body = call(dash, "POST", "/api/action", action, headers)
        assert status in (401, 403), (headers, body)
    # A second session's token does not work with the first session.
    _, other_csrf = login(dash)
    status, _, _ = call(
        dash, "POST", "/api/action", action, {SESSION: sid, "X-CSRF-Token": other_csrf}
    )
    assert status == 403
    ok = {SESSION: sid, "X-CSRF-Token": csrf}
    # A cross-origin POST is refused even with the right token.
    foreign = {**ok, "Origin": "http://evil.example"}
    assert call(dash, "POST", "/api/action", action, foreign)[0] == 403
    status, _, body = call(dash, "POST", "/api/action", {"profile": "ghost", "op": "stop"}, ok)
    assert status == 404 and b"ghost" in body
    status, _, body = call(dash, "POST", "/api/action", {"profile": "beta", "op": "start"}, ok)
    assert status == 409 and json.loads(body)["error"] == (
        "beta is run by systemd: use `openclaw profiles start beta`"
    )
    status, _, body = call(dash, "POST", "/api/action", {"profile": "alpha", "op": "nuke"}, ok)
    assert status == 400 and b"nuke" in body
    assert call(dash, "POST", "/api/action", {"profile": "alpha"}, ok)[0] == 400
    assert call(dash, "GET", "/api/action", headers=ok)[0] == 404
    # Logout needs the token too, and ends the session.
    assert call(dash, "POST", "/api/logout", {}, {SESSION: sid})[0] == 403
    same_origin = {**ok, "Origin": f"http://127.0.0.1:{dash.port}"}
    assert call(dash, "POST", "/api/logout", {}, same_origin)[0] == 200
    assert call(dash, "GET", "/api/state", headers={SESSION: sid})[0] == 401


def test_host_header_must_name_the_dashboard(dash: Dashboard) -> None:
    # A DNS-rebinding page reaches us as Host: evil.example:PORT.
    status, _, _ = call(dash, "GET", "/", headers={"Host": f"evil.example:{dash.port}"})
    assert status == 421
    status, _, _ = call(dash, "GET", "/", headers={"Host": f"localhost:{dash.port}"})
    assert status == 200


def test_log_tail_and_stream(dash: Dashboard) -> None:
    sid, _ = login(dash)
    jar = {SESSION: sid}
    status, _, body = call(dash, "GET", "/api/logs?profile=alpha&lines=3", headers=jar)
    assert status == 200 and json.loads(body)["lines"] == ["line 97", "line 98", "line 99"]
    status, _, body = call(dash, "GET", "/api/logs?profile=beta", headers=jar)
    assert status == 200 and json.loads(body)["lines"] == []
    assert call(dash, "GET", "/api/logs?profile=ghost", headers=jar)[0] == 404
    assert call(dash, "GET", "/api/logs?profile=alpha&lines=x", headers=jar)[0] == 400

    with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:
        sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{dash.port}\r\n"
            f"{SESSION}: {sid}\r\n\r\n".encode()
        )
        data = b""
        # Two whole snapshots: the current one at once, then the next refresh.
        while data.count(b"\ndata: ") < 2 or not data.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    head, _, stream = data.partition(b"\r\n\r\n")
    assert b"text/event-stream" in head and b"Content-Security-Policy" in head
    events = [json.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: ")]
    assert len(events) >= 2 and events[1]["version"] > events[0]["version"]
    assert [r["name"] for r in events[0]["rows"]] == ["alpha", "beta"]


def test_bad_requests_get_one_line_errors(dash: Dashboard) -> None:
    with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    big = {"secret": "x" * 10000}
    assert call(dash, "POST", "/api/login", big)[0] == 413
    # Digits Python's int() refuses (a latin-1 superscript, more than int's 4300-digit limit)
    # are a 400 too, never an exception that drops the connection unanswered.
    for length in (b"\xb2", b"9" * 5000):
        with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:
            sock.sendall(b"POST /api/login HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n")
            assert sock.recv(100).startswith((b"HTTP/1.1 400", b"HTTP/1.1 413"))
    sid, _ = login(dash)
    for lines in ("%C2%B2", "9" * 5000):
        status, _, body = call(
            dash, "GET", f"/api/logs?profile=alpha&lines={lines}", None, {SESSION: sid}
        )
        assert status == 400 and json.loads(body)["error"].startswith("lines must be")


def test_idle_connections_are_capped(dash: Dashboard) -> None:
    """Sockets that never send a request cannot pile up without bound."""
    from openclaw_multi.dashboard.server import MAX_CONNECTIONS

    idle: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", dash.port), timeout=10))

        # The server counts a socket once it has accepted it: wait until one more is refused.
        def refused() -> bool:
            # A full request: under the cap it is answered 200 at once, past it 503.
            with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:
                sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{dash.port}\r\n\r\n".encode())
                return sock.recv(100).startswith(b"HTTP/1.1 503")

        wait_until(refused, 20.0, "a connection past the cap refused with 503")
    finally:
        for sock in idle:
            sock.close()
    # Once they are gone the page is served again.
    wait_until(lambda: call(dash, "GET", "/")[0] == 200, 20.0, "the page after the flood")


def test_assets_are_all_local() -> None:
    """No third-party asset: nothing in the page loads from another origin."""
    ui = Path(__file__).resolve().parents[2] / "openclaw_multi" / "dashboard" / "ui"
    for asset in ui.iterdir():
        text = asset.read_text()
        assert "https://" not in text and "//cdn" not in text, asset
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), asset


def test_one_time_code_logs_in_once() -> None:
    gate = Gatekeeper()
    code = gate.one_time_code()
    first = gate.login(code=code)
    assert first is not None
    assert gate.login(code=code) is None
    sid, csrf = first
    assert gate.check_csrf(sid, csrf) and not gate.check_csrf(sid, "x")
    assert not gate.check_csrf(None, csrf)
    assert gate.login(secret=gate.secret) is not None
    assert gate.login(secret="") is None and gate.login() is None


def test_an_unspent_one_time_code_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A code left unspent in a browser's argv (visible in ps) stops working."""
    from openclaw_multi.dashboard import auth

    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    gate = Gatekeeper()
    stale = gate.one_time_code()
    clock[0] += auth.CODE_TTL_S - 1
    fresh = gate.one_time_code()
    clock[0] += 2
    assert gate.login(code=stale) is None
    assert gate.login(code=fresh) is not None


def test_loopback_only(home: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "::", "localhost.example"):
        with pytest.raises(UsageError, match="loopback only"):
            check_loopback(host)
        with pytest.raises(UsageError):
            DashboardServer(Board(home), Gatekeeper(), host=host)
    check_loopback("127.0.0.1")
    check_loopback("::1")


def test_cli_opens_the_browser_with_a_one_time_code(home: Path, tmp_path: Path) -> None:
    """The browser gets a one-time code (spent on first use), never the printed secret."""
    seen = tmp_path / "opened.txt"
    fake = tmp_path / "fake-browser"
    fake.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    fake.chmod(0o755)
    env = clean_env(home, BROWSER=str(fake))
    output = home / "dashboard.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw_multi.cli.main", "dashboard"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        opened = wait_until(lambda: seen.exists() and seen.read_text(), 20.0, "the browser")
        match = URL_LINE.search(output.read_text())
        assert match is not None
        dash = Dashboard(proc, match.group(1), int(match.group(2)), match.group(3), output)
        assert isinstance(opened, str) and opened.startswith(dash.url + "#code=")
        assert dash.secret not in opened
        code = opened.split("#code=", 1)[1]
        status, _, granted = call(dash, "POST", "/api/login", {"code": code})
        assert status == 200 and json.loads(granted)["session"]
        assert call(dash, "POST", "/api/login", {"code": code})[0] == 401
    finally:
        Dashboard(proc, "", 0, "", output).stop()


def test_cli_without_a_display_only_prints(home: Path) -> None:
    """Over SSH (no display, no $BROWSER) no text browser takes over the terminal."""
    env = clean_env(home)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        env.pop(name, None)
    output = home / "dashboard.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw_multi.cli.main", "dashboard"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    dash = Dashboard(proc, "", 0, "", output)
    try:
        wait_until(lambda: "no display" in output.read_text(), 20.0, "the no-display note")
        assert URL_LINE.search(output.read_text())
    finally:
        dash.stop()


def test_cli_port_in_use_and_bad_port(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "openclaw_multi.cli.main",
                "dashboard",
                "--no-open",
                "--port",
                str(port),
            ],
            env=clean_env(home),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use"
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "openclaw_multi.cli.main", "dashboard", "--port", "70000"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "70000" in done.stderr


def test_a_failed_refresh_keeps_the_last_snapshot(home: Path) -> None:
    """One failing round (home unreadable for a moment) neither stops the loop nor blanks rows."""
    import asyncio

    state = home / ".openclaw-alpha"
    state.mkdir()
    (state / "openclaw.json").write_text("{}")
    board = Board(home, env=clean_env(home), interval=0.01)
    real = board._collect
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(5, "Input/output error")
        return real()

    board._collect = flaky  # type: ignore[method-assign]

    async def scenario() -> None:
        await board.refresh()
        first = board.version
        loop = asyncio.create_task(board.run())
        try:
            async with asyncio.timeout(10):
                while board.version < first + 2:
                    await board.wait_newer(board.version, 1.0)
        finally:
            loop.cancel()
        assert board.failures == 1
        assert [row.name for row in board.rows] == ["alpha"]

    asyncio.run(scenario())


class _FloodBoard:
    """A board whose every wait brings a new 256 KiB snapshot: a stream that is not read
    fills the socket buffers within a few rounds."""

    def __init__(self) -> None:
        self.version = 1
        self.encoded = b'{"pad":"' + b"x" * 256 * 1024 + b'"}'

    async def refresh(self) -> None:
        return None

    async def wait_newer(self, version: int, timeout: float) -> bool:
        await asyncio.sleep(0)
        self.version += 1
        return True


def test_a_stream_that_stops_reading_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """writer.drain() is bounded: a page that stops reading frees its stream slot."""
    from openclaw_multi.dashboard import server as server_mod

    monkeypatch.setattr(server_mod, "KEEPALIVE_S", 0.25)

    async def scenario() -> None:
        gate = Gatekeeper()
        granted = gate.login(secret=gate.secret)
        assert granted is not None
        dash = DashboardServer(cast(Board, _FloodBoard()), gate)
        await dash.start(0)
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, ("127.0.0.1", dash.port))
            head = (
                f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{dash.port}\r\n"
                f"{SESSION}: {granted[0]}\r\n\r\n"
            )
            await loop.sock_sendall(sock, head.encode())
            try:
                # The stream opens (a slot taken), then this client never reads again.
                deadline = loop.time() + 20.0
                while dash._streams == 0:
                    assert loop.time() < deadline, "the stream never opened"
                    await asyncio.sleep(0.01)
                while dash._streams != 0:
                    assert loop.time() < deadline, "a stalled stream still holds its slot"
                    await asyncio.sleep(0.05)
            finally:
                sock.close()
        finally:
            await dash.close()

    asyncio.run(asyncio.wait_for(scenario(), 30.0))


def test_refused_logins_are_slowed_and_their_logging_is_bounded() -> None:
    from openclaw_multi.dashboard.auth import LOGGED_FAILURES_PER_MINUTE, LoginFailures

    failures = LoginFailures()
    lines = []
    delays = []
    for i in range(20):
        delay, line = failures.failed("127.0.0.1", 1000.0 + i)
        delays.append(delay)
        lines.append(line)
    # Slowed as the gateway's handshake: 0.5 s doubling to 5 s.
    assert delays[:6] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    logged = [line for line in lines if line is not None]
    assert len(logged) == LOGGED_FAILURES_PER_MINUTE + 1
    assert all("refused a login from 127.0.0.1" in line for line in logged[:-1])
    assert "not logging them" in logged[-1]
    # Another peer has its own budget; the next minute says how many were left out.
    assert failures.failed("::1", 1001.0)[1] is not None
    delay, line = failures.failed("127.0.0.1", 1000.0 + 61)
    assert line is not None and "15 more refused in the previous minute" in line
    # A success forgets the slowing (the next failure is back to 0.5 s).
    failures.succeeded("127.0.0.1")
    assert failures.failed("127.0.0.1", 1062.0)[0] == 0.5


def test_a_refused_login_reply_is_delayed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Through the server: each refusal waits its delay; the log holds at most N+1 lines."""
    from openclaw_multi.dashboard.auth import LOGGED_FAILURES_PER_MINUTE

    async def post_login(port: int, secret: str) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"secret": secret}).encode()
        writer.write(
            f"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = await reader.read()
        writer.close()
        return int(answer.split(b" ", 2)[1]), loop.time() - started

    async def scenario() -> None:
        gate = Gatekeeper()
        dash = DashboardServer(cast(Board, _FloodBoard()), gate)
        # Short delays keep the test quick; the shape is the unit test's.
        dash._failures.throttle.initial = 0.05
        dash._failures.throttle.maximum = 0.2
        await dash.start(0)
        try:
            for attempt in range(LOGGED_FAILURES_PER_MINUTE + 4):
                status, took = await post_login(dash.port, "wrong")
                assert status == 401
                assert took >= min(0.2, 0.05 * 2**attempt) * 0.9, (attempt, took)
            status, _ = await post_login(dash.port, gate.secret)
            assert status == 200
        finally:
            await dash.close()

    with caplog.at_level(logging.WARNING, logger="openclaw.dashboard"):
        asyncio.run(asyncio.wait_for(scenario(), 30.0))
    refused = [r.getMessage() for r in caplog.records if "login" in r.getMessage()]
    assert len(refused) == LOGGED_FAILURES_PER_MINUTE + 1, refused
    assert "wrong" not in " ".join(refused)  # what was typed is never logged
