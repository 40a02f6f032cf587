"""``openclaw dashboard``: one loopback page for every profile of this host."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sys
import webbrowser
from typing import Any

import click

from .. import runtime
from ..errors import OpenClawError, PortInUseError
from ..profiles.paths import resolve_paths
from .context import CliContext


def _has_browser(env: dict[str, str]) -> bool:
    """Whether opening a browser makes sense: a desktop, or an explicit ``$BROWSER``.

    Over SSH without a display, :mod:`webbrowser` would fall back to a text browser that
    takes over this terminal; printing the URL is better there.
    """
    if env.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


@click.command("dashboard")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option("--no-open", is_flag=True, help="Print the URL but do not open a browser.")
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60.0),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes of the rows.",
)
@click.pass_obj
def dashboard(obj: CliContext, port: int, no_open: bool, interval: float) -> None:
    """Serve the host dashboard on 127.0.0.1 until Ctrl+C.

    Lists every profile (state, health, latency, port, uptime, restarts, RSS, clients)
    live, with start/stop/restart and a log tail per profile. The printed URL carries this
    run's secret in its fragment (#...), which browsers never send to the server.
    """
    # Imported here: the server pulls in psutil and the listing, which other commands skip.
    from ..dashboard.auth import Gatekeeper
    from ..dashboard.model import Board
    from ..dashboard.server import DashboardServer, serve

    home = resolve_paths(None, obj.env, explicit=False).home
    board = Board(home, env=obj.env, interval=interval)
    gate = Gatekeeper()
    server = DashboardServer(board, gate)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str] = loop.create_future()
        task = asyncio.create_task(serve(server, port, ready))
        waiting: set[asyncio.Future[Any]] = {task, ready}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task in done and not ready.done():
            task.result()  # raises the bind error
        url = ready.result()
        click.echo(f"Dashboard of {home}: {url}#secret={gate.secret}")
        click.echo(
            "The secret is valid until this command stops (Ctrl+C); a new browser tab needs"
            " this URL again."
        )
        if not no_open:
            if not _has_browser(obj.env):
                click.echo("(no display: open the URL above in a browser)")
            else:
                target = f"{url}#code={gate.one_time_code()}"
                if not await asyncio.to_thread(webbrowser.open, target):
                    click.echo("(no browser found: open the URL above yourself)")
        await task

    try:
        runtime.run(main())
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on 127.0.0.1 is already in use") from None
        raise OpenClawError(f"cannot serve on 127.0.0.1:{port}: {err.strerror}") from None
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            click.echo("dashboard stopped")
