"""``openclaw doctor [--fix] [--json]``: find (and safely fix) what is wrong with this home.

The rules are in ``client/doctor.py``; this command gathers the supervisor's side (it may
talk to the supervisor, never starts it unless ``--fix`` decides the supervisor should run),
prints findings grouped by severity, and exits 1 when an error-severity finding remains.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click
import msgspec

from ..client.doctor import (
    SEVERITIES,
    Finding,
    HostFacts,
    SupervisorFacts,
    apply_fix,
    diagnose,
    gather_profiles,
)
from ..client.service_manager import manager_call
from ..errors import SupervisorError
from ..profiles.lock import process_start_time
from ..profiles.paths import resolve_paths
from ..profiles.service_files import find_supervisor_services
from ..protocol.control import Status
from .output import paint, use_colour

__all__ = ["doctor"]

_TONE = {"error": "red", "warning": "yellow", "info": "cyan"}


def _supervisor_facts(home: Path, env: dict[str, str]) -> SupervisorFacts:
    from ..client.control import SupervisorClient
    from ..supervisor.desired import load_desired
    from ..supervisor.home import supervisor_paths

    sup = supervisor_paths(home)
    client = SupervisorClient(home, env=env)
    running = client.is_running()
    facts = SupervisorFacts(running=running, desired=load_desired(sup.desired_path))
    if running:
        try:
            reply = client.request(Status(), timeout=5.0, autostart=False)
            facts.statuses = list(reply.profiles) if reply.ok else None
        except SupervisorError:
            facts.statuses = None
    facts.identity_path = sup.identity_path
    facts.identity_stale = not running and _identity_stale(sup.identity_path)
    for path in (sup.socket_path, sup.notify_path):
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                facts.sockets.append(path)
        except OSError:
            continue
    facts.services = find_supervisor_services(home, env)
    if facts.services:
        d = facts.services[0]
        call = manager_call(d.kind, d.scope, "start", name=d.name, path=d.path, env=env)
        facts.manager_hint = f"start its service: {call.shown}" if call is not None else None
    return facts


def _identity_stale(path: Path) -> bool:
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    try:
        data = msgspec.json.decode(raw)
        pid, start = int(data["pid"]), int(data["startTime"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return True
    return process_start_time(pid) != start


def _linger(env: dict[str, str]) -> bool | None:
    """Whether systemd keeps this user's manager without a login (None: cannot tell)."""
    user = env.get("USER") or env.get("LOGNAME")
    base = Path("/var/lib/systemd/linger")
    if not user or not base.is_dir():
        return None
    return (base / user).exists()


def _gather(home: Path, env: dict[str, str]) -> HostFacts:
    return HostFacts(
        uid=os.getuid(),
        profiles=gather_profiles(home, env),
        supervisor=_supervisor_facts(home, env),
        linger=_linger(env),
    )


def _print(findings: list[Finding], colour: bool) -> None:
    fixed = [f for f in findings if f.fixed]
    if fixed:
        click.echo(paint(f"fixed ({len(fixed)}):", colour, fg="green", bold=True))
        for f in fixed:
            click.echo(f"  [{f.code}] {f.done}")
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity and not f.fixed]
        if not group:
            continue
        title = {"error": "errors", "warning": "warnings", "info": "info"}[severity]
        click.echo(paint(f"{title} ({len(group)}):", colour, fg=_TONE[severity], bold=True))
        for f in group:
            click.echo(f"  [{f.code}] {f.what}")
            click.echo(f"      why: {f.why}")
            fix = f.fix + (" (--fix does this)" if f.fixable else "")
            if f.done is not None:  # a fix that was tried and failed
                fix += f"; {f.done}"
            click.echo(f"      fix: {fix}")
    remaining = [f for f in findings if not f.fixed]
    if not remaining:
        click.echo(paint("no problems found", colour, fg="green"))


@click.command("doctor")
@click.option("--fix", "fix", is_flag=True, help="Apply the safe fixes (never edits a config).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON array.")
@click.pass_context
def doctor(ctx: click.Context, fix: bool, as_json: bool) -> None:
    """Check this home's profiles, services and supervisor; say what is wrong and how to fix it.

    Exit status 1 when an error-severity finding remains (after --fix), else 0.
    """
    env: dict[str, str] = ctx.find_root().obj.env
    home = resolve_paths(None, env, explicit=False).home
    findings = diagnose(_gather(home, env))
    if fix:

        def start_supervisor() -> None:
            from ..client.control import SupervisorClient

            reply = SupervisorClient(home, env=env).request(Status(), timeout=10.0, autostart=True)
            if not reply.ok:
                raise SupervisorError(reply.error or "the supervisor refused status")

        # Sockets first: a new supervisor replaces them anyway, and removing them after it
        # started would cut it off.
        order = {"remove-socket": 0, "remove-identity": 1, "chmod": 2, "start-supervisor": 3}
        todo = [f for f in findings if f.action is not None]
        for finding in sorted(todo, key=lambda f: order[f.action.kind if f.action else ""]):
            try:
                apply_fix(finding, start_supervisor)
            except SupervisorError as err:
                finding.done = f"could not fix: {err}"
    if as_json:
        click.echo(msgspec.json.encode([f.to_json() for f in findings]).decode())
    else:
        _print(findings, use_colour())
    if any(f.severity == "error" and not f.fixed for f in findings):
        ctx.exit(1)
