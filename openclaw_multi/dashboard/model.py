"""What the dashboard shows and does: rows, their history, actions and log tails.

Rows come from :func:`~openclaw_multi.client.listing.collect_rows` (the code behind
``openclaw profiles list``), refreshed by one background loop; each refresh is encoded once
and handed to every open page. A short history of each profile's probe latency and RSS is
kept in memory for the sparklines. Actions go to the supervisor through
:class:`~openclaw_multi.client.control.SupervisorClient`, as ``openclaw profiles start``
does. Blocking client calls run in worker threads so the server loop never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from openclaw_multi.client.control import SupervisorClient
from openclaw_multi.client.listing import ProfileRow, collect_rows, rows_to_builtins
from openclaw_multi.client.logtail import last_lines
from openclaw_multi.errors import OpenClawError, SupervisorError, UsageError
from openclaw_multi.profiles.names import parse_profile_name
from openclaw_multi.profiles.paths import resolve_paths
from openclaw_multi.protocol.control import ControlRequest, Restart, Start, Status, Stop

_LOG = logging.getLogger("openclaw.dashboard")
HISTORY_POINTS: Final = 60
PROBE_TIMEOUT_S: Final = 1.0
STATUS_TIMEOUT_S: Final = 2.0
ACTION_TIMEOUT_S: Final = 60.0
MAX_LOG_LINES: Final = 500
OPERATIONS: Final = ("start", "stop", "restart")
SERVICE_OWNERS: Final = frozenset({"systemd", "launchd"})

_json = msgspec.json.Encoder()


class ActionError(Exception):
    """An action the board refuses or the supervisor failed; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Board:
    """The live state of every profile of one home, refreshed every ``interval`` seconds."""

    def __init__(
        self, home: Path, *, env: Mapping[str, str] | None = None, interval: float = 2.0
    ) -> None:
        self.home = home
        self.env = dict(env) if env is not None else None
        self.interval = interval
        self.client = SupervisorClient(home, env=self.env)
        self.rows: list[ProfileRow] = []
        self.history: dict[str, deque[tuple[int, float | None, int | None]]] = {}
        self.version = 0
        self.failures = 0
        self.encoded = b'{"rows":[],"history":{},"supervisorRunning":false,"version":0}'
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()

    # -- refreshing --------------------------------------------------------------------------
    def _collect(self) -> tuple[list[ProfileRow], bool]:
        try:
            reply = self.client.request(Status(), timeout=STATUS_TIMEOUT_S, autostart=False)
            statuses = list(reply.profiles) if reply.ok else None
        except SupervisorError:
            statuses = None
        listing = collect_rows(self.home, statuses, timeout=PROBE_TIMEOUT_S, env=self.env)
        return listing.rows, listing.supervisor_running

    async def refresh(self) -> None:
        """Collect rows once (in a worker thread), record history, wake every stream."""
        rows, supervisor_running = await asyncio.to_thread(self._collect)
        now = int(time.time() * 1000)
        names = {row.name for row in rows}
        for gone in set(self.history) - names:
            del self.history[gone]
        for row in rows:
            points = self.history.setdefault(row.name, deque(maxlen=HISTORY_POINTS))
            points.append((now, row.latency_ms, row.rss_bytes))
        self.rows = rows
        self.version += 1
        self.encoded = _json.encode(
            {
                "version": self.version,
                "generatedAt": now,
                "supervisorRunning": supervisor_running,
                "rows": rows_to_builtins(rows),
                "history": {name: list(points) for name, points in self.history.items()},
            }
        )
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def run(self) -> None:
        """Refresh forever: every ``interval`` seconds, or at once after an action."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
            self._poke.clear()
            try:
                await self.refresh()
            except (OpenClawError, OSError) as err:
                # Keep serving the last snapshot; the next round may well succeed.
                self.failures += 1
                _LOG.warning("dashboard: refresh failed: %s", err)

    async def wait_newer(self, version: int, timeout: float) -> bool:
        """Wait until a snapshot newer than ``version`` exists; False on timeout."""
        if self.version > version:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- actions -----------------------------------------------------------------------------
    def _row(self, name: str) -> ProfileRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise ActionError(404, f"no profile {name!r} on this host")

    async def act(self, name: str, op: str) -> dict[str, Any]:
        """Start, stop or restart one profile through the supervisor.

        Raises:
            ActionError: Unknown profile or operation, a profile systemd/launchd owns, or
                the supervisor failed (its one-line reason).
        """
        if op not in OPERATIONS:
            raise ActionError(400, f"unknown action {op!r} (start, stop or restart)")
        row = self._row(name)
        if row.owner in SERVICE_OWNERS:
            raise ActionError(
                409, f"{name} is run by {row.owner}: use `openclaw profiles {op} {name}`"
            )
        req: ControlRequest
        if op == "start":
            req = Start(profiles=[name])
        elif op == "stop":
            req = Stop(profiles=[name])
        else:
            req = Restart(profiles=[name])

        def call() -> tuple[bool, str | None, str | None]:
            reply = self.client.request(req, timeout=ACTION_TIMEOUT_S, autostart=op != "stop")
            status = next((p for p in reply.profiles if p.name == name), None)
            return reply.ok, reply.error, status.state if status is not None else None

        try:
            ok, error, state = await asyncio.to_thread(call)
        except SupervisorError as err:
            raise ActionError(502, str(err)) from None
        finally:
            self._poke.set()
        if not ok:
            raise ActionError(502, error or f"the supervisor could not {op} {name}")
        return {"ok": True, "profile": name, "op": op, "state": state}

    async def log_tail(self, name: str, lines: int) -> list[str]:
        """The last ``lines`` lines of a known profile's gateway log ([] if none yet)."""
        self._row(name)
        try:
            profile = parse_profile_name(name)
        except UsageError as err:
            raise ActionError(400, str(err)) from None
        paths = resolve_paths(profile, {"HOME": str(self.home)}, explicit=False)
        count = max(1, min(lines, MAX_LOG_LINES))
        try:
            return await asyncio.to_thread(last_lines, paths.log_path, count)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise ActionError(502, f"cannot read the log: {err.strerror}") from None
