"""``openclaw supervisor ...``: run the supervisor in the foreground, ask its status, stop it.

The supervisor itself is a program (``python -m openclaw_multi.supervisor``); these commands
start it or talk to it over its control socket, never import its internals.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import msgspec

from ..errors import SupervisorError
from ..profiles.paths import resolve_paths
from ..protocol.control import Shutdown, Status

__all__ = ["supervisor"]


def _home(ctx: click.Context) -> Path:
    env: dict[str, str] = ctx.find_root().obj.env
    return resolve_paths(None, env, explicit=False).home


@click.group("supervisor")
def supervisor() -> None:
    """The per-user supervisor that keeps profiles' gateways running."""


@supervisor.command("run")
@click.option(
    "--stop-gateways",
    is_flag=True,
    help="On SIGTERM/SIGINT stop the gateways too (default: they keep serving).",
)
def run_cmd(stop_gateways: bool) -> None:
    """Run the supervisor in the foreground (for a terminal, systemd or a container).

    Replaces this process with ``python -m openclaw_multi.supervisor --foreground``, so
    signals reach the supervisor directly.
    """
    argv = [sys.executable, "-m", "openclaw_multi.supervisor", "--foreground"]
    if stop_gateways:
        argv.append("--stop-gateways")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as err:
        raise SupervisorError(f"cannot run the supervisor: {err.strerror or err}") from None


@supervisor.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Is the supervisor running, and what does it hold? (Never starts it.)

    Exit status 0 when it is running, 1 when it is not.
    """
    from ..client.control import SupervisorClient

    client = SupervisorClient(_home(ctx))
    if not client.is_running():
        if as_json:
            click.echo(msgspec.json.encode({"running": False, "profiles": []}).decode())
        else:
            click.echo("supervisor: not running")
        ctx.exit(1)
    reply = client.request(Status(), timeout=5.0, autostart=False)
    if not reply.ok:
        raise SupervisorError(reply.error or "the supervisor refused status")
    if as_json:
        payload = {"running": True, "profiles": msgspec.to_builtins(reply.profiles)}
        click.echo(msgspec.json.encode(payload).decode())
        return
    click.echo(f"supervisor: running ({len(reply.profiles)} profile(s))")
    for p in reply.profiles:
        desired = "up" if p.desired else "down"
        pid = f" pid {p.pid}" if p.pid is not None else ""
        extra = f" last error: {p.last_error}" if p.last_error else ""
        click.echo(f"  {p.name}: {p.state} (desired {desired}){pid} restarts {p.restarts}{extra}")


@supervisor.command("stop")
@click.option("--all", "all_", is_flag=True, help="Stop every gateway too.")
@click.pass_context
def stop_cmd(ctx: click.Context, all_: bool) -> None:
    """Stop the supervisor; its gateways keep serving unless --all."""
    from ..client.control import SupervisorClient

    client = SupervisorClient(_home(ctx))
    if not client.is_running():
        click.echo("supervisor: not running")
        return
    reply = client.request(Shutdown(stop_gateways=all_), timeout=60.0, autostart=False)
    if not reply.ok:
        raise SupervisorError(reply.error or "the supervisor refused to stop")
    if all_:
        click.echo("supervisor: stopped, with its gateways")
    else:
        click.echo("supervisor: stopped (gateways keep serving)")
