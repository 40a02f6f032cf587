"""The systemd watchdog: ``WATCHDOG=1`` every half period while the event loop turns.

systemd (``WatchdogSec=``) passes ``WATCHDOG_USEC`` (the period) and ``WATCHDOG_PID`` (who
must ping) to the main process; a ping missing for a whole period gets the service killed
with SIGABRT and restarted (sd_watchdog_enabled(3)). The pings come from a task on the
gateway's own loop, so a blocked loop stops them: that is the point. Half the period is the
interval sd_watchdog_enabled(3) recommends.

A ``WATCHDOG_PID`` naming another process means the variables were inherited (from a
supervisor running under systemd, say) and are not ours: then nothing is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

from .notify import notify

__all__ = ["start_watchdog", "watchdog_interval"]

_TASKS: set[asyncio.Task[None]] = set()


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings, or None when no watchdog is asked of process ``pid``.

    Args:
        env: The environment (``WATCHDOG_USEC``, ``WATCHDOG_PID``).
        pid: This process's id.

    Returns:
        Half of ``WATCHDOG_USEC`` in seconds, when it is a positive integer and
        ``WATCHDOG_PID`` is absent or equals ``pid``; else None.
    """
    raw = env.get("WATCHDOG_USEC", "").strip()
    if not raw.isdigit() or int(raw) <= 0:
        return None
    owner = env.get("WATCHDOG_PID", "").strip()
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(raw) / 2 / 1_000_000


async def _ping(interval: float, send: Callable[[str], object]) -> None:
    while True:
        send("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog(
    env: Mapping[str, str] | None = None, send: Callable[[str], object] = notify
) -> asyncio.Task[None] | None:
    """Start pinging on the running loop when a watchdog is asked for (call once ready).

    The task lives until the loop ends (``asyncio.Runner`` cancels it).

    Returns:
        The task, or None when there is no watchdog to feed.
    """
    interval = watchdog_interval(os.environ if env is None else env, os.getpid())
    if interval is None:
        return None
    task = asyncio.get_running_loop().create_task(_ping(interval, send), name="watchdog")
    _TASKS.add(task)  # the loop keeps only a weak reference to tasks
    task.add_done_callback(_TASKS.discard)
    return task
