"""Who may see the dashboard: a per-run secret, one-time codes, sessions and CSRF tokens.

The command prints a URL whose fragment (``#secret=...``) carries the run's secret: a
fragment never reaches a server, so it lands in no access log. The page posts it to
``/api/login`` and gets back a session id (sent back in the ``X-Dashboard-Session`` header
on every API call, never as a cookie) plus a CSRF token that it must echo in
``X-CSRF-Token`` on every action. A one-time code (spent on first use)
is what the command hands to the browser it opens, so a process list shows nothing reusable;
one the browser never spends expires after ``CODE_TTL_S``.
Nothing here is ever written to disk: a new run means a new secret.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from openclaw_multi.protocol.limits import FailedAuthThrottle

MAX_SESSIONS: Final = 64
SESSION_TTL_S: Final = 12 * 3600.0
MAX_CODES: Final = 16
CODE_TTL_S: Final = 120.0
# Refused logins logged per peer and minute; past that, one line says the rest are not.
LOGGED_FAILURES_PER_MINUTE: Final = 5
FAILURE_WINDOW_S: Final = 60.0
MAX_FAILURE_PEERS: Final = 1024


@dataclass
class Session:
    """One logged-in browser."""

    csrf: str
    created: float


class Gatekeeper:
    """The secret of this run and the sessions it has granted."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        self._codes: dict[str, float] = {}  # code -> issued at (monotonic), oldest first
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def one_time_code(self) -> str:
        """A code that logs in exactly once (for the browser the command opens)."""
        if len(self._codes) >= MAX_CODES:
            del self._codes[next(iter(self._codes))]
        code = secrets.token_urlsafe(24)
        self._codes[code] = time.monotonic()
        return code

    def login(
        self, *, secret: str | None = None, code: str | None = None
    ) -> tuple[str, str] | None:
        """Trade the secret or an unspent code for (session id, CSRF token); None if wrong."""
        granted = False
        if secret is not None:
            granted = hmac.compare_digest(secret.encode(), self.secret.encode())
        elif code is not None:
            # A code sits in the argv of the browser it was handed to: it must not stay valid
            # there for as long as this command runs if that browser never spent it.
            now = time.monotonic()
            for stale in [k for k, at in self._codes.items() if now - at > CODE_TTL_S]:
                del self._codes[stale]
            # Compare against every code so the time taken says nothing about which matched.
            match = None
            for known in self._codes:
                if hmac.compare_digest(code.encode(), known.encode()):
                    match = known
            if match is not None:
                del self._codes[match]
                granted = True
        if not granted:
            return None
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(csrf=csrf, created=time.monotonic())
        return sid, csrf

    def session(self, sid: str | None) -> Session | None:
        """The live session behind a session id, if any."""
        if not sid:
            return None
        found = self._sessions.get(sid)
        if found is None:
            return None
        if time.monotonic() - found.created > SESSION_TTL_S:
            del self._sessions[sid]
            return None
        return found

    def check_csrf(self, sid: str | None, token: str | None) -> bool:
        """True when ``token`` is the CSRF token of the session behind ``sid``."""
        found = self.session(sid)
        if found is None or not token:
            return False
        return hmac.compare_digest(token.encode(), found.csrf.encode())

    def logout(self, sid: str | None) -> None:
        """Forget a session."""
        if sid:
            self._sessions.pop(sid, None)


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass
class LoginFailures:
    """Refused logins per peer: how long to hold back each reply, and which to log.

    Guessing is slowed as on the gateway (0.5 s doubling to 5 s, forgotten on success), and a
    guesser cannot fill the log: the first ``LOGGED_FAILURES_PER_MINUTE`` refusals of a peer
    in a minute get a line each, the next one a line saying the rest are not logged, and the
    first line of the following minute says how many were left out.
    """

    throttle: FailedAuthThrottle = field(default_factory=FailedAuthThrottle)
    _windows: dict[str, _Window] = field(default_factory=dict)
    _unlogged: dict[str, int] = field(default_factory=dict)

    def failed(self, peer: str, now: float) -> tuple[float, str | None]:
        """Count a refused login from ``peer`` at monotonic ``now``.

        Returns:
            (seconds to delay the refusal, the line to log or None to stay quiet).
        """
        delay = self.throttle.record_failure(peer, now)
        window = self._windows.get(peer)
        if window is None or now - window.started >= FAILURE_WINDOW_S:
            if len(self._windows) >= MAX_FAILURE_PEERS and peer not in self._windows:
                self._forget_oldest()
            window = self._windows[peer] = _Window(started=now)
        window.count += 1
        if window.count <= LOGGED_FAILURES_PER_MINUTE:
            line = f"dashboard: refused a login from {peer}; reply delayed {delay:.1f}s"
            skipped = self._unlogged.pop(peer, 0)
            if skipped:
                line += f" ({skipped} more refused in the previous minute, not logged)"
            return delay, line
        self._unlogged[peer] = self._unlogged.get(peer, 0) + 1
        if window.count == LOGGED_FAILURES_PER_MINUTE + 1:
            return delay, (
                f"dashboard: more refused logins from {peer}; not logging them for the rest "
                "of this minute"
            )
        return delay, None

    def succeeded(self, peer: str) -> None:
        """A login from ``peer`` worked: its next failure is not delayed."""
        self.throttle.record_success(peer)

    def _forget_oldest(self) -> None:
        oldest = min(self._windows, key=lambda p: self._windows[p].started)
        del self._windows[oldest]
        self._unlogged.pop(oldest, None)
