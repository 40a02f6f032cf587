"""``openclaw tunnel start|stop|rm|list|logs``: SSH tunnels the supervisor keeps up.

Commands only: the supervisor runs the ssh processes (``supervisor/tunnel.py``); input is
checked here first (names, ``--ssh``, ports, files), so a typo exits 2 before anything runs.
Also :func:`tunnel_target` (``openclaw health --tunnel NAME``) and :func:`tunnel_section`
(the tunnels under ``openclaw profiles list``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

from ..client.target import Target, resolve_target
from ..errors import CredentialsRequired, OpenClawError, SupervisorError, UsageError
from ..profiles.config import load_config
from ..profiles.paths import resolve_paths
from ..protocol.control import ControlReply, TunnelStatus
from ..supervisor.ssh import parse_destination, parse_port_number, parse_tunnel_name
from ..supervisor.tunnel_defs import TunnelFiles, load_tunnels
from .context import CliContext
from .output import echo_log

if TYPE_CHECKING:
    from ..client.control import SupervisorClient

DEFAULT_WAIT_S = 60.0
TUNNEL_CREDENTIALS_REQUIRED = (
    "--tunnel requires explicit credentials for the remote gateway "
    "(--token, --password or --password-file), or --profile NAME whose config has "
    "gateway.remote.token or gateway.remote.password"
)


def _obj(ctx: click.Context) -> CliContext:
    obj: CliContext = ctx.find_root().obj
    return obj


def _home(env: dict[str, str]) -> Path:
    return resolve_paths(None, env, explicit=False).home


def _client(env: dict[str, str]) -> SupervisorClient:
    from ..client.control import SupervisorClient

    return SupervisorClient(_home(env), env=env)


def _files(env: dict[str, str]) -> TunnelFiles:
    from ..client.control import supervisor_dir

    return TunnelFiles(supervisor_dir(_home(env)))


def _absolute_file(raw: str | None, flag: str) -> str | None:
    if raw is None:
        return None
    path = os.path.abspath(os.path.expanduser(raw))
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {raw}: no such file")
    return path


def _port(raw: str | None, what: str) -> int | None:
    return None if raw is None else parse_port_number(raw, what)


def _where(status: TunnelStatus) -> str:
    return f"127.0.0.1:{status.local_port} -> {status.ssh} -> 127.0.0.1:{status.remote_port}"


def _the(reply: ControlReply, name: str) -> TunnelStatus | None:
    return next((t for t in reply.tunnels if t.name == name), None)


@click.group("tunnel")
def tunnel() -> None:
    """SSH tunnels to remote gateways, kept up by the supervisor."""


@tunnel.command("start")
@click.argument("name")
@click.option("--ssh", "ssh", metavar="USER@HOST[:PORT]", help="The SSH server (defines NAME).")
@click.option(
    "--identity", metavar="FILE", help="Private key to offer (only that one; no passphrase)."
)
@click.option(
    "--remote-port", metavar="N", help="Gateway port on the server's loopback (default 18789)."
)
@click.option("--local-port", metavar="N", help="Port on this host's loopback (default: free).")
@click.option(
    "--known-hosts",
    metavar="FILE",
    help="Trust only the host keys in FILE (default: the tunnel's own file, accept-new).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for the tunnel to be healthy.",
)
@click.pass_context
def start_cmd(
    ctx: click.Context,
    name: str,
    ssh: str | None,
    identity: str | None,
    remote_port: str | None,
    local_port: str | None,
    known_hosts: str | None,
    timeout: float,
) -> None:
    """Define tunnel NAME (with --ssh) and start it; wait until it is healthy.

    Without --ssh, NAME must exist and starts as defined; given options replace the stored
    ones (a running tunnel whose definition changed reconnects).
    """
    from ..protocol.control import TunnelStart

    parse_tunnel_name(name)
    if ssh is not None:
        parse_destination(ssh)
    request = TunnelStart(
        name=name,
        ssh=ssh,
        identity=_absolute_file(identity, "--identity"),
        remote_port=_port(remote_port, "--remote-port"),
        local_port=_port(local_port, "--local-port"),
        known_hosts=_absolute_file(known_hosts, "--known-hosts"),
    )
    started = time.monotonic()
    reply = _client(_obj(ctx).env).request(request, timeout=timeout, autostart=True)
    elapsed = time.monotonic() - started
    status = _the(reply, name)
    if not reply.ok:
        raise OpenClawError(f"tunnel {name}: {reply.error or 'failed to start'}")
    assert status is not None
    pid = f"pid {status.pid}, " if status.pid is not None else ""
    click.echo(f"{name}: running ({pid}{_where(status)}) in {elapsed:.2f}s")
    click.echo(f"reach the remote gateway: openclaw health --tunnel {name} --token ...")


@tunnel.command("stop")
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_WAIT_S)
@click.pass_context
def stop_cmd(ctx: click.Context, name: str, timeout: float) -> None:
    """Stop tunnel NAME (its ssh ends; the definition is kept)."""
    _stop(ctx, name, timeout, remove=False)


@tunnel.command("rm")
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_WAIT_S)
@click.pass_context
def rm_cmd(ctx: click.Context, name: str, timeout: float) -> None:
    """Stop tunnel NAME and forget it (definition, known_hosts; the log is kept)."""
    _stop(ctx, name, timeout, remove=True)


def _stop(ctx: click.Context, name: str, timeout: float, *, remove: bool) -> None:
    from ..protocol.control import TunnelStop

    parse_tunnel_name(name)
    started = time.monotonic()
    # Autostart: an ssh left by a crashed supervisor is adopted by the new one, then stopped.
    reply = _client(_obj(ctx).env).request(
        TunnelStop(name=name, remove=remove), timeout=timeout, autostart=True
    )
    if not reply.ok:
        raise OpenClawError(f"tunnel {name}: {reply.error or 'failed to stop'}")
    verb = "removed" if remove else "stopped"
    click.echo(f"{name}: {verb} in {time.monotonic() - started:.2f}s")


# --- list --------------------------------------------------------------------------------


class TunnelRow(msgspec.Struct, kw_only=True, rename="camel"):
    """One tunnel in ``openclaw tunnel list --json`` (documented in docs/tunnels.md)."""

    name: str
    state: str
    desired: bool
    health: str
    pid: int | None
    local_port: int
    remote_port: int
    ssh: str
    restarts: int | None
    last_exit: int | None
    last_error: str | None
    started_at: float | None
    identity: str | None
    known_hosts: str | None
    strict_host_keys: bool
    log_path: str | None
    supervised: bool


def _health(status: TunnelStatus) -> str:
    if status.state != "RUNNING" or status.healthy is False:
        return "down"
    return "ok" if status.healthy else "unknown"


def _rows(env: dict[str, str]) -> tuple[list[TunnelRow], bool]:
    """Every tunnel: the supervisor's view, else the stored definitions (all STOPPED)."""
    from ..protocol.control import TunnelList

    client = _client(env)
    if client.is_running():
        reply = client.request(TunnelList(), timeout=5.0, autostart=False)
        if not reply.ok:
            raise SupervisorError(reply.error or "the supervisor refused tunnel-list")
        return [_row(s, supervised=True) for s in reply.tunnels], True
    files = _files(env)
    rows = []
    for name, definition in sorted(load_tunnels(files.definitions_path).items()):
        status = TunnelStatus(
            name=name,
            state="STOPPED",
            desired=definition.desired,
            ssh=definition.ssh,
            local_port=definition.local_port,
            remote_port=definition.remote_port,
            identity=definition.identity,
            known_hosts=definition.known_hosts or str(files.known_hosts_path(name)),
            strict_host_keys=definition.known_hosts is not None,
            log_path=str(files.log_path(name)),
        )
        rows.append(_row(status, supervised=False))
    return rows, False


def _row(status: TunnelStatus, *, supervised: bool) -> TunnelRow:
    return TunnelRow(
        name=status.name,
        state=status.state,
        desired=status.desired,
        health=_health(status) if supervised else "unknown",
        pid=status.pid,
        local_port=status.local_port,
        remote_port=status.remote_port,
        ssh=status.ssh,
        restarts=status.restarts if supervised else None,
        last_exit=status.last_exit,
        last_error=status.last_error,
        started_at=status.started_at,
        identity=status.identity,
        known_hosts=status.known_hosts,
        strict_host_keys=status.strict_host_keys,
        log_path=status.log_path,
        supervised=supervised,
    )


_COLUMNS = ("NAME", "STATE", "HEALTH", "PID", "LOCAL", "SSH", "REMOTE", "RESTARTS", "LAST-ERROR")


def _table(rows: list[TunnelRow]) -> list[str]:
    cells = [list(_COLUMNS)]
    for r in rows:
        cells.append(
            [
                r.name,
                r.state,
                r.health,
                "-" if r.pid is None else str(r.pid),
                f"127.0.0.1:{r.local_port}",
                r.ssh,
                str(r.remote_port),
                "-" if r.restarts is None else str(r.restarts),
                r.last_error or "-",
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in cells]


def _unhealthy(row: TunnelRow) -> bool:
    return row.desired and row.health != "ok"


@tunnel.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON schema.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every tunnel with its state and health (exit 1 when a desired one is not healthy)."""
    rows, supervised = _rows(_obj(ctx).env)
    if as_json:
        click.echo(msgspec.json.encode(rows).decode())
    elif not rows:
        click.echo("no tunnels yet: openclaw tunnel start NAME --ssh user@host")
    else:
        for line in _table(rows):
            click.echo(line)
        if not supervised:
            click.echo("(supervisor not running: definitions only)")
    if any(_unhealthy(r) for r in rows):
        ctx.exit(1)


def tunnel_section(client: SupervisorClient) -> list[str]:
    """The ``tunnels`` section under ``openclaw profiles list`` (empty when there are none)."""
    from ..protocol.control import TunnelList

    try:
        reply = client.request(TunnelList(), timeout=2.0, autostart=False)
    except SupervisorError:
        return []
    rows = [_row(s, supervised=True) for s in reply.tunnels] if reply.ok else []
    if not rows:
        return []
    return ["", "tunnels:", *_table(rows)]


# --- logs --------------------------------------------------------------------------------


@tunnel.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl+C stops).")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True)
@click.pass_context
def logs_cmd(ctx: click.Context, name: str, follow: bool, lines: int) -> None:
    """Print the last lines of tunnel NAME's log (ssh's own output, and each start)."""
    parse_tunnel_name(name)
    echo_log(_files(_obj(ctx).env).log_path(name), lines, follow=follow, what=f"tunnel {name}")


# --- health --tunnel ---------------------------------------------------------------------


def _local_port(env: dict[str, str], name: str) -> int:
    """The tunnel's local port: from the supervisor, else from its stored definition."""
    from ..protocol.control import TunnelList

    client = _client(env)
    if client.is_running():
        reply = client.request(TunnelList(), timeout=5.0, autostart=False)
        status = _the(reply, name)
        if status is not None:
            return status.local_port
    else:
        definition = load_tunnels(_files(env).definitions_path).get(name)
        if definition is not None:
            return definition.local_port
    raise UsageError(f"no tunnel {name} (see: openclaw tunnel list)")


def tunnel_target(
    obj: CliContext,
    name: str,
    *,
    token: str | None,
    password: str | None,
    password_file: Path | None,
    tls_fingerprint: str | None = None,
) -> Target:
    """The remote gateway behind tunnel ``name`` (``ws://127.0.0.1:<local>/``, or ``wss://``
    with a certificate pin), and the credentials to send it.

    Credentials: ``--token``/``--password``/``--password-file``; else, only when
    ``--profile NAME`` was given, that profile's ``gateway.remote.token``/``password`` (and
    its ``tlsFingerprint`` when no ``--tls-fingerprint``). Never a profile's own
    ``gateway.auth`` secrets or the environment's: those belong to a local gateway. Nothing
    found: :class:`CredentialsRequired`.
    """
    parse_tunnel_name(name)
    profile = obj.profile()
    pin = tls_fingerprint
    if not token and not password and password_file is None:
        profile_name, explicit = profile
        if not explicit:
            raise CredentialsRequired(TUNNEL_CREDENTIALS_REQUIRED)
        paths = resolve_paths(profile_name, obj.env, explicit=True)
        remote = load_config(paths.config_path).gateway.remote
        token, password = remote.token or None, remote.password or None
        if not token and not password:
            raise CredentialsRequired(
                f"{TUNNEL_CREDENTIALS_REQUIRED} (profile {paths.display_name} has neither)"
            )
        pin = pin or remote.tls_fingerprint
    port = _local_port(obj.env, name)
    target = resolve_target(
        profile,
        obj.env,
        url=f"{'wss' if pin else 'ws'}://127.0.0.1:{port}/",
        token=token,
        password=password,
        password_file=password_file,
        tls_fingerprint=pin,
    )
    return _retag(target, name, port)


def _retag(target: Target, name: str, port: int) -> Target:
    import dataclasses

    fields: dict[str, Any] = {"source": f"tunnel {name}", "port": port}
    return dataclasses.replace(target, **fields)
