"""``openclaw profiles ...``: create, start, stop, list, show, logs, rm and reset profiles.

Commands only: the work is in ``client/`` (listing, port claims, log tail, the supervisor's
control client) and ``profiles/``. Every failure is an :class:`OpenClawError` subclass, so
the root group prints one ``error: ...`` line and picks the exit code (0 ok, 1 failure,
2 usage, 78 config/conflict).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

from ..client.listing import (
    HEALTH_DEGRADED,
    HEALTH_OK,
    ProfileRow,
    collect_rows,
    row_is_unhealthy,
    rows_to_builtins,
)
from ..client.port_claims import check_port_claim, configured_port
from ..errors import (
    ConfigError,
    LockHeldError,
    OpenClawError,
    SupervisorError,
    UsageError,
)
from ..profiles.config import ProfileConfig, load_config, load_raw_config, save_config_atomic
from ..profiles.lock import ProfileLock, identity_is_live, read_identity
from ..profiles.names import display_name, parse_profile_name
from ..profiles.paths import ProfilePaths, resolve_paths
from ..profiles.ports import derived_port, parse_port
from ..protocol.control import (
    ControlReply,
    ControlRequest,
    ProfileStatus,
    Reset,
    Restart,
    Start,
    Status,
    Stop,
)
from .completion_cmds import complete_profile_names
from .context import CliContext
from .output import echo_log, use_colour

if TYPE_CHECKING:
    from ..client.control import SupervisorClient

BIND_CHOICES = ("loopback", "lan", "tailnet", "auto", "custom")
DEFAULT_WAIT_S = 60.0
_LIST_PROBE_TIMEOUT_S = 1.0


def _state(ctx: click.Context) -> CliContext:
    obj: CliContext = ctx.find_root().obj
    return obj


def _home(ctx: click.Context) -> Path:
    return resolve_paths(None, _state(ctx).env, explicit=False).home


def _select(ctx: click.Context, raw: str | None) -> tuple[str | None, bool]:
    """NAME if given (it must agree with a global --profile/--dev), else the global choice."""
    state = _state(ctx)
    if raw is None:
        return state.profile()
    name = parse_profile_name(raw)
    root = ctx.find_root()
    if root.params.get("profile_flag") is not None or root.params.get("dev"):
        chosen, _explicit = state.profile()
        if chosen != name:
            raise UsageError(
                f"profile {display_name(name)} and --profile {display_name(chosen)} disagree"
            )
    return name, True


def _paths(ctx: click.Context, raw: str | None) -> ProfilePaths:
    name, explicit = _select(ctx, raw)
    return resolve_paths(name, _state(ctx).env, explicit=explicit)


def _require_existing(paths: ProfilePaths) -> None:
    if not paths.state_dir.is_dir():
        raise OpenClawError(
            f"no profile {paths.display_name} (no {paths.state_dir}); "
            f"create it with: openclaw profiles create {paths.display_name}"
        )


def _supervisor(ctx: click.Context) -> SupervisorClient:
    from ..client.control import SupervisorClient

    return SupervisorClient(_home(ctx), env=_state(ctx).env)


def _request(client: SupervisorClient, req: ControlRequest, **kwargs: Any) -> ControlReply:
    reply = client.request(req, **kwargs)
    if not reply.ok:
        raise SupervisorError(reply.error or "the supervisor refused the command")
    return reply


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@click.group("profiles")
def profiles() -> None:
    """Create, run and inspect profiles (one isolated gateway each)."""


# --- create ----------------------------------------------------------------------------


def _auth_section(gateway: dict[str, Any]) -> dict[str, Any]:
    auth = gateway.get("auth")
    if not isinstance(auth, dict):
        auth = {}
        gateway["auth"] = auth
    return auth


@profiles.command("create")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@click.option("--port", "port_raw", metavar="N", help="Base port (default: derived from NAME).")
@click.option("--bind", type=click.Choice(BIND_CHOICES), help="gateway.bind (default loopback).")
@click.option(
    "--custom-bind-host", metavar="HOST", help="gateway.customBindHost for --bind custom."
)
@click.option("--token", metavar="T", help="Use token auth with this token.")
@click.option("--generate-token", is_flag=True, help="Use token auth with a new random token.")
@click.option("--show-token", is_flag=True, help="Print the generated token (kept off by default).")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Start from this config (JSON5), e.g. profiles/work.json5.",
)
@click.pass_context
def create_cmd(
    ctx: click.Context,
    name: str | None,
    port_raw: str | None,
    bind: str | None,
    custom_bind_host: str | None,
    token: str | None,
    generate_token: bool,
    show_token: bool,
    from_file: Path | None,
) -> None:
    """Create profile NAME: its state dir (0700) and config openclaw.json (0600).

    The port block (base..base+19) must not overlap another profile's, and the base port
    must be free; otherwise nothing is written and the exit status is 78.
    """
    if token is not None and generate_token:
        raise UsageError("give --token or --generate-token, not both")
    if token is not None and not token.strip():
        raise UsageError("--token is empty")
    if show_token and not generate_token:
        raise UsageError("--show-token only applies to --generate-token")
    paths = _paths(ctx, name)
    if paths.config_path.exists():
        raise OpenClawError(f"profile {paths.display_name} already exists ({paths.config_path})")
    if from_file is not None and not from_file.is_file():
        raise UsageError(f"--from {from_file}: no such file")
    data: dict[str, Any] = load_raw_config(from_file) if from_file is not None else {}
    gateway = data.get("gateway")
    if gateway is None:
        gateway = {}
        data["gateway"] = gateway
    if not isinstance(gateway, dict):
        raise ConfigError(f"{from_file}: gateway must be an object")
    if port_raw is not None:
        port, how = parse_port(port_raw), "given"
    elif gateway.get("port") is not None:
        port, how = parse_port(gateway["port"]), f"from {from_file}"
    else:
        port, how = derived_port(paths.name), "derived from the name"
    gateway["port"] = port
    if bind is not None:
        gateway["bind"] = bind
    if custom_bind_host is not None:
        gateway["customBindHost"] = custom_bind_host
    generated: str | None = None
    if generate_token:
        generated = secrets.token_urlsafe(32)
        auth = _auth_section(gateway)
        auth["mode"], auth["token"] = "token", generated
    elif token is not None:
        auth = _auth_section(gateway)
        auth["mode"], auth["token"] = "token", token
    # Check the whole result as the gateway will read it, before anything is written.
    try:
        config = msgspec.convert(data, type=ProfileConfig)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{from_file or 'config'}: {err}") from None
    section = config.gateway
    if section.bind == "custom" and not section.custom_bind_host:
        raise UsageError("--bind custom needs --custom-bind-host HOST")
    if section.bind != "loopback" and section.auth.mode not in ("token", "password"):
        raise UsageError(
            f"--bind {section.bind} exposes the gateway beyond this host: "
            "add --generate-token (or --token T)"
        )
    if section.auth.mode == "token" and not section.auth.token:
        raise UsageError(
            f"auth mode token{f' (from {from_file})' if from_file else ''} needs a token: "
            "add --generate-token (or --token T)"
        )
    check_port_claim(paths, port)
    _write_new_config(paths, data)
    out = click.echo
    out(f"created profile {paths.display_name}")
    out(f"  state dir: {paths.state_dir}")
    out(f"  config:    {paths.config_path}")
    out(f"  port:      {port} ({how})")
    out(f"  bind:      {section.bind}")
    mode = section.auth.mode or ("token" if section.auth.token else "none")
    if generated is not None:
        where = f"stored in {paths.config_path} at gateway.auth.token"
        if show_token:
            out(f"  auth:      token ({where})")
            out(f"  token:     {generated}")
        else:
            out(f"  auth:      token ({where}; not printed, use --show-token to see it)")
    else:
        out(f"  auth:      {mode}")
    out(f"start it with: openclaw profiles start {paths.display_name}")


def _write_new_config(paths: ProfilePaths, data: dict[str, Any]) -> None:
    """Create the state dir (0700) if needed and write the config atomically (0600)."""
    existed = paths.state_dir.exists()
    paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not existed:
        os.chmod(paths.state_dir, 0o700)  # mkdir's mode is filtered by the umask
    save_config_atomic(paths.config_path, data)


# --- start / stop / restart --------------------------------------------------------------


def _target_names(ctx: click.Context, names: Sequence[str], all_: bool) -> list[str]:
    if all_ and names:
        raise UsageError("give profile names or --all, not both")
    if all_:
        return []
    if not names:
        return [_paths(ctx, None).display_name]
    root = ctx.find_root()
    if len(names) > 1 and (root.params.get("profile_flag") or root.params.get("dev")):
        raise UsageError("give profile names or --profile, not both")
    seen: list[str] = []
    for raw in names:
        shown = _paths(ctx, raw).display_name
        if shown not in seen:
            seen.append(shown)
    return seen


def _precheck_start(
    home: Path, ctx: click.Context, names: list[str], all_: bool, *, create_missing: bool
) -> None:
    """The create rule again, before the supervisor spawns anything (exit 78 on conflict).

    With ``create_missing`` (``start``), a profile without a state dir is created first with
    what ``profiles create NAME`` writes (derived port, loopback, the gateway's default auth),
    and the person is told so: ``openclaw profiles start work`` works on a fresh machine.
    """
    from ..profiles.discovery import list_profiles

    targets = list_profiles(home) if all_ else [_paths(ctx, n) for n in names]
    for paths in targets:
        if not all_ and not paths.state_dir.exists() and create_missing:
            port = derived_port(paths.name)
            check_port_claim(paths, port)
            _write_new_config(paths, {"gateway": {"port": port}})
            click.echo(f"{paths.display_name}: created (port {port}, config {paths.config_path})")
            continue
        if not all_:
            _require_existing(paths)
        port, _source = configured_port(paths)  # ConfigError (78) names file:line:col
        check_port_claim(paths, port)


def _describe(status: ProfileStatus, elapsed: float) -> str:
    state = status.state.lower()
    details = []
    if status.pid is not None:
        details.append(f"pid {status.pid}")
    if status.port is not None:
        details.append(f"port {status.port}")
    inner = f" ({', '.join(details)})" if details else ""
    return f"{status.name}: {state}{inner} in {elapsed:.2f}s"


def _failure_text(status: ProfileStatus) -> str:
    if status.last_error:
        return status.last_error
    if status.last_exit is not None:
        return f"gateway exited with status {status.last_exit} ({status.state})"
    return f"gateway is {status.state}"


def _one_request(
    client: SupervisorClient, op: str, name: str, timeout: float
) -> tuple[ProfileStatus | None, str | None]:
    """Ask the supervisor to act on one profile; it answers once the profile got there.

    Returns:
        (the profile's status, None) on success, or (status if known, one-line reason).
    """
    req: ControlRequest
    if op == "start":
        req = Start(profiles=[name])
    elif op == "stop":
        req = Stop(profiles=[name])
    else:
        req = Restart(profiles=[name])
    try:
        reply = client.request(req, timeout=timeout, autostart=False)
    except SupervisorError as err:
        return None, str(err)
    status = next((p for p in reply.profiles if p.name == name), None)
    if reply.ok and status is not None:
        return status, None
    if reply.error:
        return status, reply.error
    return status, _failure_text(status) if status is not None else f"cannot {op} {name}"


def _lifecycle(
    ctx: click.Context,
    op: str,
    names: Sequence[str],
    all_: bool,
    timeout: float,
) -> None:
    home = _home(ctx)
    targets = _target_names(ctx, names, all_)
    # A profile systemd or launchd owns is driven through it, never by the supervisor too.
    from .services_cmds import run_delegated, service_owned

    owned = service_owned(ctx, home, None if all_ else targets)
    failures: dict[str, tuple[str, ProfileStatus | None]] = {
        n: (reason, None) for n, reason in run_delegated(ctx, op, owned, timeout).items()
    }
    targets = [t for t in targets if t not in owned]
    if owned and not all_ and not targets:
        _raise_failures(op, failures, len(owned))
        return
    if op in ("start", "restart"):
        _precheck_start(home, ctx, targets, all_, create_missing=op == "start")
    client = _supervisor(ctx)
    # One autostarting request first, so the per-profile requests below never race to
    # start the supervisor.
    known = _request(client, Status(), timeout=10.0, autostart=True).profiles
    if all_:
        if op == "stop":
            targets = [p.name for p in known if p.desired or p.state != "STOPPED"]
        else:
            targets = [p.name for p in known]
        targets = [t for t in targets if t not in owned]
        if not targets:
            if not owned:
                click.echo(f"no profiles to {op}")
            _raise_failures(op, failures, len(owned))
            return
    started = time.monotonic()
    # The supervisor answers each request once its profile is ready (or stopped, or failed):
    # one request per profile, concurrently, so each line is printed as soon as it is known.
    with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
        futures = {pool.submit(_one_request, client, op, n, timeout): n for n in targets}
        for future in as_completed(futures):
            name = futures[future]
            status, reason = future.result()
            elapsed = time.monotonic() - started
            if reason is None and status is not None:
                click.echo(_describe(status, elapsed))
                continue
            reason = reason or f"cannot {op} {name}"
            click.echo(f"{name}: failed in {elapsed:.2f}s: {reason}")
            failures[name] = (reason, status)
    _raise_failures(op, failures, len(targets) + len(owned))


def _raise_failures(
    op: str, failures: dict[str, tuple[str, ProfileStatus | None]], total: int
) -> None:
    if not failures:
        return
    exit78 = any(s is not None and s.last_exit == 78 for _r, s in failures.values())
    if len(failures) == 1:
        name, (reason, _status) = next(iter(failures.items()))
        message = reason if name in reason else f"{name}: {reason}"
    else:
        listed = ", ".join(sorted(failures))
        message = f"{len(failures)} of {total} profiles failed to {op}: {listed}"
    if exit78:
        raise ConfigError(message)
    raise OpenClawError(message)


_TARGETS = click.argument(
    "names", nargs=-1, metavar="[NAME]...", shell_complete=complete_profile_names
)
_ALL = click.option("--all", "all_", is_flag=True, help="Every profile.")
_WAIT = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for each profile.",
)


@profiles.command("start")
@_TARGETS
@_ALL
@_WAIT
@click.pass_context
def start_cmd(ctx: click.Context, names: tuple[str, ...], all_: bool, timeout: float) -> None:
    """Start profiles' gateways (the supervisor is started if needed); wait until ready."""
    _lifecycle(ctx, "start", names, all_, timeout)


@profiles.command("stop")
@_TARGETS
@_ALL
@_WAIT
@click.pass_context
def stop_cmd(ctx: click.Context, names: tuple[str, ...], all_: bool, timeout: float) -> None:
    """Stop profiles' gateways; wait until their port and lock are free."""
    _lifecycle(ctx, "stop", names, all_, timeout)


@profiles.command("restart")
@_TARGETS
@_ALL
@_WAIT
@click.pass_context
def restart_cmd(ctx: click.Context, names: tuple[str, ...], all_: bool, timeout: float) -> None:
    """Restart profiles' gateways; wait until the new ones are ready."""
    _lifecycle(ctx, "restart", names, all_, timeout)


@profiles.command("reset")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@click.pass_context
def reset_cmd(ctx: click.Context, name: str | None) -> None:
    """Clear FATAL (and the restart history) of profile NAME."""
    shown = _paths(ctx, name).display_name
    client = _supervisor(ctx)
    if not client.is_running():
        click.echo(f"{shown}: nothing to reset (the supervisor is not running)")
        return
    reply = _request(client, Reset(profiles=[shown]), autostart=False)
    for status in reply.profiles:
        if status.name == shown:
            click.echo(f"{shown}: {status.state.lower()}")
            return
    click.echo(f"{shown}: reset")


# --- list / show -----------------------------------------------------------------------


def _supervisor_statuses(ctx: click.Context) -> list[ProfileStatus] | None:
    """The supervisor's view, or None when it is not running (never autostarted here)."""
    client = _supervisor(ctx)
    if not client.is_running():
        return None
    try:
        reply = client.request(Status(), timeout=2.0, autostart=False)
    except SupervisorError as err:
        _echo_err(f"warning: supervisor not answering ({err}); showing identity files only")
        return None
    if not reply.ok:
        _echo_err(f"warning: supervisor refused status ({reply.error})")
        return None
    return list(reply.profiles)


def _desired_on_disk(home: Path) -> list[str]:
    """Profiles desired.json wants up (the listing's owner column while the supervisor is down)."""
    from ..supervisor.desired import load_desired
    from ..supervisor.home import supervisor_paths

    return [n for n, up in load_desired(supervisor_paths(home).desired_path).items() if up]


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    mib = value / (1024 * 1024)
    return f"{mib:.0f}M" if mib >= 10 else f"{mib:.1f}M"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


_COLUMNS = (
    "NAME",
    "STATE",
    "HEALTH",
    "OWNER",
    "PID",
    "PORT",
    "BIND",
    "UPTIME",
    "RESTARTS",
    "LAST-EXIT",
    "CLIENTS",
    "RSS",
    "VERSION",
)


def _table_row(row: ProfileRow) -> list[str]:
    health = row.health
    if row.latency_ms is not None:
        health += f" {row.latency_ms:.0f}ms" if row.latency_ms >= 1 else " <1ms"
    return [
        row.name,
        row.state,
        health,
        row.owner,
        _cell(row.pid),
        _cell(row.port),
        _cell(row.bind),
        _fmt_duration(row.uptime_s),
        _cell(row.restarts),
        _cell(row.last_exit),
        _cell(row.clients),
        _fmt_bytes(row.rss_bytes),
        _cell(row.version),
    ]


def _render_table(rows: list[ProfileRow], colour: bool) -> list[str]:
    cells = [list(_COLUMNS)] + [_table_row(r) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    out = []
    for index, line in enumerate(cells):
        padded = [text.ljust(widths[i]) for i, text in enumerate(line)]
        if colour and index > 0:
            row = rows[index - 1]
            tone = {HEALTH_OK: "green", HEALTH_DEGRADED: "yellow"}.get(row.health, "red")
            if row.health != HEALTH_OK and not row.should_run:
                tone = "bright_black"
            padded[2] = click.style(padded[2], fg=tone)
        elif colour:
            padded = [click.style(p, bold=True) for p in padded]
        out.append("  ".join(padded).rstrip())
    return out


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON schema.")
@click.option("--timings", is_flag=True, hidden=True, help="Print phase timings to stderr.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool, timings: bool) -> None:
    """One row per profile on this host, with live health probes.

    Exit status 1 when any profile that should run (desired by the supervisor, or running)
    is not healthy.
    """
    started = time.perf_counter()
    home = _home(ctx)
    statuses = _supervisor_statuses(ctx)
    supervisor_s = time.perf_counter() - started
    listing = collect_rows(
        home,
        statuses,
        timeout=_LIST_PROBE_TIMEOUT_S,
        env=_state(ctx).env,
        desired_on_disk=_desired_on_disk(home) if statuses is None else (),
    )
    if as_json:
        click.echo(msgspec.json.encode(rows_to_builtins(listing.rows)).decode())
    elif not listing.rows:
        click.echo("no profiles yet: create one with `openclaw profiles create NAME`")
    else:
        for line in _render_table(listing.rows, use_colour()):
            click.echo(line)
        if statuses is None:
            click.echo("(supervisor not running: states from identity files and probes)")
    if not as_json and statuses is not None:
        from .tunnel_cmds import tunnel_section  # SSH tunnels, when there are any

        for line in tunnel_section(_supervisor(ctx)):
            click.echo(line)
    if timings:
        _echo_err(
            f"timings: supervisor {supervisor_s * 1000:.1f}ms "
            f"collect {listing.collect_seconds * 1000:.1f}ms "
            f"probe {listing.probe_seconds * 1000:.1f}ms "
            f"command {(time.perf_counter() - started) * 1000:.1f}ms"
        )
    if any(row_is_unhealthy(r) for r in listing.rows):
        ctx.exit(1)


@profiles.command("show")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Paths, port, bind, auth mode (never the secret), state and pid of profile NAME."""
    paths = _paths(ctx, name)
    statuses = _supervisor_statuses(ctx)
    known = statuses is not None and any(s.name == paths.display_name for s in statuses)
    if not known:
        _require_existing(paths)
    config = load_config(paths.config_path)
    identity = read_identity(paths.identity_path)
    live = identity is not None and identity_is_live(identity)
    status = next((s for s in statuses or () if s.name == paths.display_name), None)
    if live and identity is not None:
        port, port_source = identity.port, "running"
    else:
        port, port_source = configured_port(paths)
    auth = config.gateway.auth
    auth_mode = auth.mode or ("token" if auth.token else "password" if auth.password else "none")
    pid = status.pid if status is not None and status.pid is not None else None
    if pid is None and live and identity is not None:
        pid = identity.pid
    if status is not None and not (status.pid is None and live):
        state = status.state
    else:
        state = "RUNNING" if live else "STOPPED"
    info: dict[str, Any] = {
        "name": paths.display_name,
        "stateDir": str(paths.state_dir),
        "configPath": str(paths.config_path),
        "logPath": str(paths.log_path),
        "port": port,
        "portSource": port_source,
        "bind": config.gateway.bind,
        "authMode": auth_mode,
        "state": state,
        "desired": status.desired if status is not None else None,
        "pid": pid,
        "version": identity.version if live and identity is not None else None,
        "lastError": status.last_error if status is not None else None,
    }
    if as_json:
        click.echo(msgspec.json.encode(info).decode())
        return
    labels = {
        "name": "profile",
        "stateDir": "state dir",
        "configPath": "config",
        "logPath": "log",
        "port": "port",
        "bind": "bind",
        "authMode": "auth",
        "state": "state",
        "desired": "desired",
        "pid": "pid",
        "version": "version",
        "lastError": "last error",
    }
    for key, label in labels.items():
        value = info[key]
        if key == "port":
            value = f"{port} ({port_source})"
        if value is None:
            continue
        click.echo(f"{label + ':':<11} {value}")


# --- logs -------------------------------------------------------------------------------


@profiles.command("logs")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl+C stops).")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="How many of the last lines to print.",
)
@click.pass_context
def logs_cmd(ctx: click.Context, name: str | None, follow: bool, lines: int) -> None:
    """Print the last lines of profile NAME's gateway log (state dir/logs/gateway.log)."""
    paths = _paths(ctx, name)
    _require_existing(paths)
    echo_log(paths.log_path, lines, follow=follow, what=f"profile {paths.display_name}")


# --- rm ---------------------------------------------------------------------------------


def _forget_desired(ctx: click.Context, home: Path, shown: str) -> None:
    """Take the profile out of the supervisor's desired state (running or not)."""
    client = _supervisor(ctx)
    if client.is_running():
        _request(client, Stop(profiles=[shown]), timeout=30.0, autostart=False)
        return
    from ..supervisor.desired import load_desired, save_desired
    from ..supervisor.home import supervisor_paths

    sup = supervisor_paths(home)
    desired = load_desired(sup.desired_path)
    if shown in desired:
        del desired[shown]
        save_desired(sup.desired_path, desired)


@profiles.command("rm")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@click.option("--purge", is_flag=True, help="Also delete the state dir (config, logs, keys).")
@click.option("--yes", is_flag=True, help="Do not ask before --purge deletes.")
@click.pass_context
def rm_cmd(ctx: click.Context, name: str | None, purge: bool, yes: bool) -> None:
    """Remove profile NAME from the supervisor; with --purge also delete its state dir.

    Refused while its gateway runs (stop it first).
    """
    paths = _paths(ctx, name)
    home = _home(ctx)
    _require_existing(paths)
    from ..profiles.service_files import find_gateway_services

    for service in find_gateway_services(paths, _state(ctx).env):
        flag = " --launchd" if service.kind == "launchd" else ""
        flag = " --system" if service.scope == "system" else flag
        raise OpenClawError(
            f"profile {paths.display_name} is installed as a {service.kind} service "
            f"({service.path}); remove it first: openclaw profiles uninstall "
            f"{paths.display_name}{flag}"
        )
    identity = read_identity(paths.identity_path)
    if identity is not None and identity_is_live(identity):
        raise OpenClawError(
            f"profile {paths.display_name} is running (pid {identity.pid}, port "
            f"{identity.port}); stop it first: openclaw profiles stop {paths.display_name}"
        )
    statuses = _supervisor_statuses(ctx)
    status = next((s for s in statuses or () if s.name == paths.display_name), None)
    if status is not None and status.pid is not None:
        raise OpenClawError(
            f"profile {paths.display_name} is {status.state} (pid {status.pid}); "
            f"stop it first: openclaw profiles stop {paths.display_name}"
        )
    if purge:
        _check_purge_target(paths)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("--purge deletes files: confirm with --yes when not on a terminal")
            if not click.confirm(
                f"Delete {paths.state_dir} and everything in it (config, logs, keys)?",
                default=False,
            ):
                raise OpenClawError("not removed")
    _forget_desired(ctx, home, paths.display_name)
    if not purge:
        click.echo(
            f"removed profile {paths.display_name} from the supervisor; "
            f"kept {paths.state_dir} (delete it with --purge)"
        )
        return
    # Hold the profile's own lock while deleting: a gateway starting now fails instead of
    # running in a directory that disappears under it.
    lock = ProfileLock(paths)
    try:
        lock.acquire()
    except LockHeldError as err:
        raise OpenClawError(f"{err}; stop it first") from None
    try:
        shutil.rmtree(paths.state_dir)
    except OSError as err:
        raise OpenClawError(f"cannot delete {paths.state_dir}: {err.strerror or err}") from None
    finally:
        lock.release()
    click.echo(f"removed profile {paths.display_name} and deleted {paths.state_dir}")


def _check_purge_target(paths: ProfilePaths) -> None:
    target = Path(os.path.realpath(paths.state_dir))
    home = Path(os.path.realpath(paths.home))
    if target == Path("/") or target == home or target in home.parents:
        raise UsageError(f"refusing to delete {paths.state_dir}: it is or contains the home")
