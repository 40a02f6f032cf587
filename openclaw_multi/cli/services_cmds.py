"""Services: ``openclaw profiles install|uninstall`` and ``openclaw supervisor install|uninstall``.

A profile has one owner: the supervisor, or a service manager (systemd, launchd) through a
definition installed here. ``install`` hands the profile over (the supervisor stops it and
forgets it), ``uninstall`` hands it back to nobody. ``profiles start|stop|restart`` of a
service-owned profile go through its manager (:func:`run_delegated`), never the supervisor.

Rendering is in ``client/services.py`` (pure), files and manager commands in
``client/service_manager.py``, which files exist in ``profiles/service_files.py``.
"""

from __future__ import annotations

import os
import pwd
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from ..client.service_manager import (
    Action,
    ManagerCall,
    install_file,
    manager_call,
    manager_usable,
    remove_file,
    run_call,
)
from ..client.services import (
    ServiceSpec,
    gateway_spec,
    render_launchd_plist,
    render_systemd_unit,
    supervisor_spec,
)
from ..errors import OpenClawError, ProfileConflictError, UsageError
from ..profiles.config import load_config
from ..profiles.discovery import list_profiles
from ..profiles.lock import identity_is_live, read_identity
from ..profiles.names import parse_profile_name
from ..profiles.paths import resolve_paths
from ..profiles.service_files import (
    ServiceDefinition,
    ServiceKind,
    ServiceScope,
    find_gateway_services,
    find_supervisor_services,
    gateway_label,
    launchd_dir,
    systemd_dir,
)
from .completion_cmds import complete_profile_names
from .profiles_cmds import _forget_desired, _home, _paths, _require_existing, _state

__all__ = [
    "profiles_install",
    "profiles_uninstall",
    "run_delegated",
    "service_owned",
    "supervisor_install",
    "supervisor_uninstall",
]

_MANAGER_TIMEOUT_S = 90.0


def _env(ctx: click.Context) -> dict[str, str]:
    return _state(ctx).env


def _python() -> str:
    # The venv's interpreter as invoked (not resolved through its symlink: the venv's
    # site-packages come from where the interpreter is called).
    return os.path.abspath(sys.executable)


def _login_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _target(system: bool, launchd: bool) -> tuple[ServiceKind, ServiceScope]:
    if system and launchd:
        raise UsageError("give --system or --launchd, not both (launchd agents are per user)")
    if launchd:
        return "launchd", "user"
    return "systemd", "system" if system else "user"


def _directory(kind: ServiceKind, scope: ServiceScope, env: Mapping[str, str]) -> Path:
    found = launchd_dir(env) if kind == "launchd" else systemd_dir(env, scope)
    if found is None:
        raise UsageError("cannot find the home directory for the service file: set HOME")
    return found


def _describe_def(d: ServiceDefinition) -> str:
    scope = " system" if d.scope == "system" else ""
    return f"{d.kind}{scope} service {d.name} ({d.path})"


def _uninstall_flags(d: ServiceDefinition) -> str:
    if d.kind == "launchd":
        return " --launchd"
    return " --system" if d.scope == "system" else ""


def _render(spec: ServiceSpec, kind: ServiceKind) -> bytes:
    if kind == "launchd":
        return render_launchd_plist(spec)
    return render_systemd_unit(spec).encode()


def _call(
    d: ServiceDefinition | tuple[ServiceKind, ServiceScope, str, Path],
    action: Action,
    env: Mapping[str, str],
) -> ManagerCall | None:
    if isinstance(d, ServiceDefinition):
        kind, scope, name, path = d.kind, d.scope, d.name, d.path
    else:
        kind, scope, name, path = d
    return manager_call(kind, scope, action, name=name, path=path, env=env)


def _run_steps(
    kind: ServiceKind,
    scope: ServiceScope,
    calls: Sequence[ManagerCall],
    env: Mapping[str, str],
) -> bool:
    """Run ``calls`` if the manager is usable; else print them for a person. True if run."""
    if not calls:
        return True
    if not manager_usable(kind, scope, env):
        tool = "systemctl" if kind == "systemd" else "launchctl"
        where = " (no user manager answers)" if kind == "systemd" and scope == "user" else ""
        click.echo(f"{tool} cannot be used here{where}; run:")
        for call in calls:
            click.echo(f"  {call.shown}")
        return False
    for call in calls:
        code, output = run_call(call, env, _MANAGER_TIMEOUT_S)
        if code != 0:
            raise OpenClawError(f"{call.shown} failed (exit {code}): {output or 'no output'}")
        click.echo(f"ran: {call.shown}")
    return True


# --- profiles install / uninstall --------------------------------------------------------

_SYSTEM = click.option("--system", is_flag=True, help="A system unit (/etc/systemd/system; root).")
_LAUNCHD = click.option("--launchd", is_flag=True, help="A launchd agent (~/Library/LaunchAgents).")
_DRY_RUN = click.option(
    "--dry-run", is_flag=True, help="Print what would be written; change nothing."
)
_NO_START = click.option(
    "--no-start", is_flag=True, help="Write the definition only; do not enable or start it."
)


@click.command("install")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@_SYSTEM
@_LAUNCHD
@_DRY_RUN
@_NO_START
@click.pass_context
def profiles_install(
    ctx: click.Context, name: str | None, system: bool, launchd: bool, dry_run: bool, no_start: bool
) -> None:
    """Run profile NAME's gateway as a systemd (or launchd) service instead of the supervisor.

    Writes openclaw-gateway-NAME.service (0644, no secrets), takes the profile away from the
    supervisor, and enables + starts the unit when systemctl can be used (else prints the
    commands to run). Re-running it rewrites the definition.
    """
    kind, scope = _target(system, launchd)
    env = _env(ctx)
    paths = _paths(ctx, name)
    shown = paths.display_name
    if (
        kind == "launchd"
        and paths.name is not None
        and gateway_label(paths.name) == gateway_label(None)
    ):
        raise UsageError(f"profile {shown}: its launchd label would be the default profile's")
    _require_existing(paths)
    load_config(paths.config_path)  # a broken config is exit 78 now, not a unit failing later
    others = [d for d in find_gateway_services(paths, env) if (d.kind, d.scope) != (kind, scope)]
    if others:
        d = others[0]
        raise ProfileConflictError(
            f"profile {shown} already has a {_describe_def(d)}: a profile has one owner; "
            f"remove it first: openclaw profiles uninstall {shown}{_uninstall_flags(d)}"
        )
    home = _home(ctx)
    directory = _directory(kind, scope, env)
    filename = f"{gateway_label(paths.name)}.plist" if kind == "launchd" else None
    spec = gateway_spec(
        paths.name,
        python=_python(),
        home=home,
        env=env,
        scope=scope,
        run_as=_login_name(),
        log_path=paths.log_dir / "gateway.stderr.log",
        launchd=kind == "launchd",
    )
    path = directory / (filename or spec.name)
    data = _render(spec, kind)
    if dry_run:
        click.echo(f"would write {path} (mode 0644):")
        click.echo(data.decode().rstrip("\n"))
        return
    try:
        if kind == "launchd":
            paths.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        replaced = install_file(path, data)
    except OSError as err:
        hint = " (a system unit needs root)" if scope == "system" else ""
        raise OpenClawError(f"cannot write {path}: {err.strerror or err}{hint}") from None
    click.echo(f"{'updated' if replaced else 'wrote'} {path}")
    # Hand over: the supervisor stops the gateway it runs and forgets the profile.
    _forget_desired(ctx, home, shown)
    identity = read_identity(paths.identity_path)
    calls: list[ManagerCall] = []
    reload = _call((kind, scope, spec.name, path), "reload", env)
    if reload is not None:
        calls.append(reload)
    if identity is not None and identity_is_live(identity) and not no_start:
        click.echo(
            f"{shown}: a gateway already runs (pid {identity.pid}, started outside the "
            f"supervisor); stop it, then start the service"
        )
        no_start = True
    enable = _call((kind, scope, spec.name, path), "enable", env)
    if not no_start and enable is not None:
        calls.append(enable)
    ran = _run_steps(kind, scope, calls, env)
    if no_start and enable is not None:
        click.echo(f"start it with: {enable.shown}")
    elif ran and not no_start:
        live = read_identity(paths.identity_path)
        if live is not None and identity_is_live(live):
            click.echo(f"{shown}: running under {kind} (pid {live.pid}, port {live.port})")


@click.command("uninstall")
@click.argument("name", required=False, shell_complete=complete_profile_names)
@_SYSTEM
@_LAUNCHD
@click.pass_context
def profiles_uninstall(ctx: click.Context, name: str | None, system: bool, launchd: bool) -> None:
    """Remove profile NAME's service definition (stopping the service when possible).

    Without --system or --launchd: every user-level definition (systemd user unit, launchd
    agent). The profile itself (config, state) is kept; afterwards nothing owns it until
    `openclaw profiles start NAME` gives it to the supervisor.
    """
    env = _env(ctx)
    paths = _paths(ctx, name)
    found = find_gateway_services(paths, env)
    _uninstall(found, system, launchd, f"profile {paths.display_name}", env)


def _uninstall(
    found: list[ServiceDefinition],
    system: bool,
    launchd: bool,
    what: str,
    env: Mapping[str, str],
) -> None:
    if system and launchd:
        raise UsageError("give --system or --launchd, not both")
    if system:
        chosen = [d for d in found if d.kind == "systemd" and d.scope == "system"]
    elif launchd:
        chosen = [d for d in found if d.kind == "launchd"]
    else:
        chosen = [d for d in found if d.scope == "user"]
    if not chosen:
        click.echo(f"{what}: no service installed")
        return
    for d in chosen:
        usable = manager_usable(d.kind, d.scope, env)
        stop = _call(d, "disable", env)
        if usable and stop is not None:
            code, output = run_call(stop, env, _MANAGER_TIMEOUT_S)
            click.echo(f"ran: {stop.shown}" + (f" (exit {code}: {output})" if code else ""))
        try:
            removed = remove_file(d)
        except OSError as err:
            hint = " (a system unit needs root)" if d.scope == "system" else ""
            raise OpenClawError(f"cannot remove {d.path}: {err.strerror or err}{hint}") from None
        for path in removed:
            click.echo(f"removed {path}")
        reload = _call(d, "reload", env)
        if usable:
            if reload is not None:
                code, output = run_call(reload, env, _MANAGER_TIMEOUT_S)
                click.echo(f"ran: {reload.shown}" + (f" (exit {code}: {output})" if code else ""))
            continue
        tool = "systemctl" if d.kind == "systemd" else "launchctl"
        steps = [c.shown for c in (_call(d, "stop", env), reload) if c is not None]
        if d.kind == "launchd":
            steps = [c.shown for c in (_call(d, "disable", env),) if c is not None]
        click.echo(
            f"{tool} cannot be used here; if it runs the service, run: " + " && ".join(steps)
        )


# --- supervisor install / uninstall ------------------------------------------------------


@click.command("install")
@_SYSTEM
@_LAUNCHD
@_DRY_RUN
@_NO_START
@click.pass_context
def supervisor_install(
    ctx: click.Context, system: bool, launchd: bool, dry_run: bool, no_start: bool
) -> None:
    """Run the supervisor as a systemd (or launchd) service (`--foreground`, Type=notify).

    Its gateways survive its restarts (KillMode=process). A supervisor already running
    outside the service is left alone: stop it first (`openclaw supervisor stop`) so the
    service's one can take the home's lock.
    """
    kind, scope = _target(system, launchd)
    env = _env(ctx)
    home = _home(ctx)
    others = [d for d in find_supervisor_services(home, env) if (d.kind, d.scope) != (kind, scope)]
    if others:
        d = others[0]
        raise ProfileConflictError(
            f"the supervisor already has a {_describe_def(d)}; remove it first: "
            f"openclaw supervisor uninstall{_uninstall_flags(d)}"
        )
    spec = supervisor_spec(
        python=_python(),
        home=home,
        env=env,
        scope=scope,
        run_as=_login_name(),
        log_path=home / ".openclaw-supervisor" / "supervisor.stderr.log",
        launchd=kind == "launchd",
    )
    directory = _directory(kind, scope, env)
    path = directory / (f"{spec.name}.plist" if kind == "launchd" else spec.name)
    data = _render(spec, kind)
    if dry_run:
        click.echo(f"would write {path} (mode 0644):")
        click.echo(data.decode().rstrip("\n"))
        return
    try:
        replaced = install_file(path, data)
    except OSError as err:
        hint = " (a system unit needs root)" if scope == "system" else ""
        raise OpenClawError(f"cannot write {path}: {err.strerror or err}{hint}") from None
    click.echo(f"{'updated' if replaced else 'wrote'} {path}")
    calls = [c for c in (_call((kind, scope, spec.name, path), "reload", env),) if c is not None]
    enable = _call((kind, scope, spec.name, path), "enable", env)
    if not no_start and enable is not None:
        calls.append(enable)
    _run_steps(kind, scope, calls, env)
    if no_start and enable is not None:
        click.echo(f"start it with: {enable.shown}")


@click.command("uninstall")
@_SYSTEM
@_LAUNCHD
@click.pass_context
def supervisor_uninstall(ctx: click.Context, system: bool, launchd: bool) -> None:
    """Remove the supervisor's service definition (stopping the service when possible)."""
    env = _env(ctx)
    _uninstall(find_supervisor_services(_home(ctx), env), system, launchd, "supervisor", env)


# --- start / stop / restart through the owner ----------------------------------------------


def service_owned(
    ctx: click.Context, home: Path, names: Sequence[str] | None
) -> dict[str, list[ServiceDefinition]]:
    """The profiles among ``names`` (None: every profile on disk) a service manager owns."""
    env = _env(ctx)
    if names is None:
        candidates = list_profiles(home)
    else:
        candidates = [
            resolve_paths(parse_profile_name(n), {"HOME": str(home)}, explicit=False) for n in names
        ]
    owned: dict[str, list[ServiceDefinition]] = {}
    for paths in candidates:
        found = find_gateway_services(paths, env)
        if found:
            owned[paths.display_name] = found
    return owned


def run_delegated(
    ctx: click.Context,
    op: str,
    owned: Mapping[str, list[ServiceDefinition]],
    timeout: float,
) -> dict[str, str]:
    """Start/stop/restart each service-owned profile through its manager; print one line each.

    Returns:
        Profile name -> one-line reason, for those that failed or could not be asked.
    """
    env = _env(ctx)
    failures: dict[str, str] = {}
    home = _home(ctx)
    for name in sorted(owned):
        started = time.monotonic()
        found = owned[name]
        if len(found) > 1:
            listed = "; ".join(_describe_def(d) for d in found)
            failures[name] = (
                f"{name} has more than one service definition ({listed}): see openclaw doctor"
            )
            click.echo(f"{name}: failed in 0.00s: {failures[name]}")
            continue
        d = found[0]
        action: Action = "start" if op == "start" else "stop" if op == "stop" else "restart"
        call = _call(d, action, env)
        assert call is not None
        if not manager_usable(d.kind, d.scope, env):
            tool = "systemctl" if d.kind == "systemd" else "launchctl"
            failures[name] = (
                f"{name} is run by {d.kind} ({d.path}) and {tool} cannot be used here; "
                f"run: {call.shown}"
            )
            click.echo(f"{name}: failed in 0.00s: {failures[name]}")
            continue
        code, output = run_call(call, env, max(timeout, 1.0))
        elapsed = time.monotonic() - started
        if code != 0:
            failures[name] = f"{call.shown} failed (exit {code}): {output or 'no output'}"
            click.echo(f"{name}: failed in {elapsed:.2f}s: {failures[name]}")
            continue
        paths = resolve_paths(parse_profile_name(name), {"HOME": str(home)}, explicit=False)
        identity = read_identity(paths.identity_path)
        if op != "stop" and identity is not None and identity_is_live(identity):
            state = f"running (pid {identity.pid}, port {identity.port})"
        else:
            state = "stopped" if op == "stop" else f"{op}ed"
        click.echo(f"{name}: {state} via {d.kind} in {elapsed:.2f}s")
    return failures
