"""``openclaw doctor``: what is wrong with this home's profiles, why, and how to fix it.

Theory of operation. :func:`gather_profiles` reads the disk and the process table once
(identity files, configs, modes and owners, port holders, service definitions) into plain
facts; :func:`diagnose` turns facts into :class:`Finding` values without touching anything,
so every rule is tested with hand-made facts; :func:`apply_fix` performs the one safe action
a finding may carry. The supervisor's side (is it up, what it wants, which sockets it left)
comes in as :class:`SupervisorFacts` from the caller, which may talk to it.

Safe fixes only: remove a stale identity file or a leftover socket, tighten a mode (0600
secret files, 0700 state dirs), start the supervisor when profiles should run. A config
file's contents are never rewritten: a config that does not parse is reported, not touched.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from openclaw_multi.errors import ConfigError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.discovery import list_profiles
from openclaw_multi.profiles.lock import (
    Identity,
    find_port_holder,
    identity_is_live,
    identity_matches_process,
    read_identity,
)
from openclaw_multi.profiles.paths import ProfilePaths
from openclaw_multi.profiles.ports import PORT_BLOCK, blocks_overlap
from openclaw_multi.profiles.service_files import ServiceDefinition, find_gateway_services
from openclaw_multi.protocol.control import ProfileStatus

from .port_claims import profile_ports

__all__ = [
    "SEVERITIES",
    "Finding",
    "FixAction",
    "HostFacts",
    "ProfileFacts",
    "SupervisorFacts",
    "apply_fix",
    "diagnose",
    "gather_profiles",
]

Severity = Literal["error", "warning", "info"]
SEVERITIES: Final[tuple[Severity, ...]] = ("error", "warning", "info")


@dataclass(frozen=True)
class FixAction:
    """The one safe thing ``--fix`` may do for a finding.

    Attributes:
        kind: ``remove-identity``, ``remove-socket``, ``chmod`` or ``start-supervisor``.
        path: The file or directory acted on (None for ``start-supervisor``).
        mode: The mode ``chmod`` sets.
        expect: For ``remove-identity``: the bytes that were judged stale (the file is only
            removed if it still holds exactly them).
    """

    kind: Literal["remove-identity", "remove-socket", "chmod", "start-supervisor"]
    path: Path | None = None
    mode: int | None = None
    expect: bytes | None = None


@dataclass
class Finding:
    """One problem: how bad, a stable code, what, why it matters, how to fix it."""

    severity: Severity
    code: str
    what: str
    why: str
    fix: str
    profile: str | None = None
    path: str | None = None
    action: FixAction | None = None
    fixed: bool = False
    done: str | None = None

    @property
    def fixable(self) -> bool:
        """``--fix`` can apply this one."""
        return self.action is not None

    def to_json(self) -> dict[str, Any]:
        """The documented ``--json`` object (docs/services.md)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "profile": self.profile,
            "what": self.what,
            "why": self.why,
            "fix": self.fix,
            "path": self.path,
            "fixable": self.fixable,
            "fixed": self.fixed,
            "done": self.done,
        }


@dataclass
class ProfileFacts:
    """What the disk and the process table say about one profile."""

    paths: ProfilePaths
    identity_bytes: bytes | None = None
    identity: Identity | None = None
    identity_live: bool = False
    identity_is_gateway: bool = False
    config_error: str | None = None
    config_has_secrets: bool = False
    config_mode: int | None = None
    state_mode: int | None = None
    state_uid: int | None = None
    key_files: list[tuple[Path, int]] = field(default_factory=list)
    port: int | None = None
    port_source: str | None = None
    port_holder: tuple[int, str] | None = None
    services: list[ServiceDefinition] = field(default_factory=list)


@dataclass
class SupervisorFacts:
    """The supervisor's side, gathered by the caller.

    Attributes:
        running: A supervisor answered a ping.
        desired: ``desired.json`` (display name -> should run).
        statuses: Its status reply when running.
        identity_path: ``supervisor.json``.
        identity_stale: That file exists and names a process that is not running.
        sockets: Socket files present in its directory (``supervisor.sock``, ``notify.sock``).
        services: Service definitions installed for the supervisor itself.
        manager_hint: The command that starts the supervisor through its service manager.
    """

    running: bool
    desired: dict[str, bool] = field(default_factory=dict)
    statuses: list[ProfileStatus] | None = None
    identity_path: Path | None = None
    identity_stale: bool = False
    sockets: list[Path] = field(default_factory=list)
    services: list[ServiceDefinition] = field(default_factory=list)
    manager_hint: str | None = None


@dataclass
class HostFacts:
    """Everything :func:`diagnose` looks at."""

    uid: int
    profiles: list[ProfileFacts]
    supervisor: SupervisorFacts
    linger: bool | None = None


# --- gathering (reads only) ------------------------------------------------------------


def _mode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode), st.st_uid


def _has_secrets(paths: ProfilePaths) -> bool:
    config = load_config(paths.config_path)
    auth, remote = config.gateway.auth, config.gateway.remote
    return bool(auth.token or auth.password or remote.token or remote.password)


def _gather_one(paths: ProfilePaths, env: Mapping[str, str]) -> ProfileFacts:
    facts = ProfileFacts(paths=paths)
    with contextlib.suppress(OSError):
        facts.identity_bytes = paths.identity_path.read_bytes()
    if facts.identity_bytes is not None:
        facts.identity = read_identity(paths.identity_path)
        if facts.identity is not None:
            facts.identity_live = identity_is_live(facts.identity)
            facts.identity_is_gateway = identity_matches_process(facts.identity)
    try:
        facts.config_has_secrets = _has_secrets(paths)
    except ConfigError as err:
        facts.config_error = str(err)
    found = _mode(paths.config_path)
    facts.config_mode = found[0] if found else None
    found = _mode(paths.state_dir)
    if found is not None:
        facts.state_mode, facts.state_uid = found
    keys = paths.state_dir / "identity"
    with contextlib.suppress(OSError):
        for entry in sorted(keys.iterdir()):
            mode = _mode(entry)
            if mode is not None and entry.is_file():
                facts.key_files.append((entry, mode[0]))
    facts.services = find_gateway_services(paths, env)
    return facts


def gather_profiles(home: Path, env: Mapping[str, str]) -> list[ProfileFacts]:
    """Read the facts of every profile under ``home`` (nothing is changed).

    Args:
        home: The profiles' home.
        env: The environment (for service definition directories).
    """
    ports = {p.paths.state_dir: p for p in profile_ports(home)}
    result: list[ProfileFacts] = []
    for paths in list_profiles(home):
        facts = _gather_one(paths, env)
        claim = ports.get(paths.state_dir)
        if claim is not None:
            facts.port, facts.port_source = claim.port, claim.source
            if not facts.identity_live:
                facts.port_holder = find_port_holder(claim.port)
        result.append(facts)
    return result


# --- diagnosis (pure) ------------------------------------------------------------------


def _owner_of(p: ProfileFacts, sup: SupervisorFacts) -> str | None:
    if p.services:
        return p.services[0].kind
    name = p.paths.display_name
    if sup.desired.get(name):
        return "supervisor"
    for status in sup.statuses or ():
        if status.name == name and (status.desired or status.pid is not None):
            return "supervisor"
    return None


def _stale_identity(p: ProfileFacts) -> Finding | None:
    if p.identity_bytes is None or p.identity_live:
        return None
    name = p.paths.display_name
    if p.identity is None:
        what = f"profile {name}: identity file {p.paths.identity_path} is unreadable or corrupt"
    else:
        what = (
            f"profile {name}: identity file names pid {p.identity.pid} (port "
            f"{p.identity.port}), which is not running (dead, or the pid was reused)"
        )
    return Finding(
        severity="warning",
        code="stale-identity",
        profile=name,
        path=str(p.paths.identity_path),
        what=what,
        why="a gateway that died without cleaning up left it; tools reading it see a "
        "gateway that is not there (the next gateway start reclaims it too)",
        fix=f"remove {p.paths.identity_path}",
        action=FixAction("remove-identity", p.paths.identity_path, expect=p.identity_bytes),
    )


def _unowned(p: ProfileFacts, sup: SupervisorFacts) -> Finding | None:
    if not (p.identity_live and p.identity is not None) or _owner_of(p, sup) is not None:
        return None
    held = any(
        s.name == p.paths.display_name and s.pid == p.identity.pid for s in sup.statuses or ()
    )
    if held:
        return None
    name = p.paths.display_name
    return Finding(
        severity="warning",
        code="unowned-gateway",
        profile=name,
        what=f"profile {name}: gateway pid {p.identity.pid} (port {p.identity.port}) runs "
        "without an owner (neither the supervisor nor a service manager)",
        why="nobody restarts it if it dies, and nobody stops it at logout or shutdown; "
        "it was probably started by hand with `openclaw gateway run`",
        fix=f"hand it to the supervisor: openclaw profiles start {name} (it adopts the "
        f"running gateway), or install a service: openclaw profiles install {name}",
    )


def _port_findings(profiles: Sequence[ProfileFacts]) -> list[Finding]:
    found: list[Finding] = []
    live_pids = {p.identity.pid for p in profiles if p.identity_live and p.identity is not None}
    with_ports = [p for p in profiles if p.port is not None]
    for i, a in enumerate(with_ports):
        for b in with_ports[i + 1 :]:
            assert a.port is not None and b.port is not None
            if not blocks_overlap(a.port, b.port):
                continue
            an, bn = a.paths.display_name, b.paths.display_name
            found.append(
                Finding(
                    severity="error",
                    code="port-overlap",
                    profile=an,
                    what=f"profiles {an} (port {a.port}, {a.port_source}) and {bn} (port "
                    f"{b.port}, {b.port_source}): port blocks overlap",
                    why=f"each gateway uses {PORT_BLOCK} ports from its base; the second of "
                    "the two to start is refused (exit 78)",
                    fix=f"give one of them another gateway.port, at least {PORT_BLOCK} away, "
                    f"in {b.paths.config_path} (doctor never edits configs)",
                )
            )
    for p in with_ports:
        holder = p.port_holder
        if holder is None or holder[0] in live_pids:
            continue
        name = p.paths.display_name
        found.append(
            Finding(
                severity="error",
                code="port-taken",
                profile=name,
                what=f"profile {name}: port {p.port} is held by pid {holder[0]} ({holder[1]}), "
                "which is not an openclaw gateway of this home",
                why="the profile's gateway cannot bind its port and will exit 78",
                fix=f"stop pid {holder[0]}, or set another gateway.port in {p.paths.config_path}",
            )
        )
    return found


def _duplicates(p: ProfileFacts, sup: SupervisorFacts) -> Finding | None:
    name = p.paths.display_name
    owners = [f"{d.kind} ({d.path})" for d in p.services]
    if p.services and sup.desired.get(name):
        owners.append("the supervisor (desired up)")
    if len(owners) < 2:
        return None
    return Finding(
        severity="error",
        code="duplicate-owner",
        profile=name,
        what=f"profile {name} has {len(owners)} owners: {', '.join(owners)}",
        why="each would start its own gateway; one loses the profile lock and exits 78, "
        "and the winner changes with every restart",
        fix="keep one: openclaw profiles uninstall "
        f"{name} [--system|--launchd] removes a service; openclaw profiles rm {name} (without "
        "--purge) takes it out of the supervisor's desired state",
    )


def _config_invalid(p: ProfileFacts) -> Finding | None:
    if p.config_error is None:
        return None
    return Finding(
        severity="error",
        code="config-invalid",
        profile=p.paths.display_name,
        path=str(p.paths.config_path),
        what=p.config_error,
        why="the gateway refuses to start with it (exit 78)",
        fix=f"edit {p.paths.config_path} at the position named (doctor never rewrites it)",
    )


def _modes(p: ProfileFacts, uid: int) -> list[Finding]:
    found: list[Finding] = []
    name = p.paths.display_name
    if p.state_uid is not None and p.state_uid != uid:
        found.append(
            Finding(
                severity="error",
                code="state-dir-foreign-owner",
                profile=name,
                path=str(p.paths.state_dir),
                what=f"profile {name}: state dir {p.paths.state_dir} belongs to uid "
                f"{p.state_uid}, not to you (uid {uid})",
                why="another user controls this profile's config, keys and lock; the gateway "
                "may not be able to write its files",
                fix=f"chown -R {uid} {p.paths.state_dir} (as root), or use your own home",
            )
        )
        return found  # not ours: modes are not ours to change either
    if p.config_has_secrets and p.config_mode is not None and p.config_mode & 0o077:
        found.append(
            Finding(
                severity="error",
                code="secret-readable",
                profile=name,
                path=str(p.paths.config_path),
                what=f"profile {name}: {p.paths.config_path} holds a gateway secret and is "
                f"mode {p.config_mode:04o} (readable by others)",
                why="anyone who can read it can connect to the gateway as an operator",
                fix=f"chmod 600 {p.paths.config_path}",
                action=FixAction("chmod", p.paths.config_path, mode=0o600),
            )
        )
    for path, mode in p.key_files:
        if mode & 0o077:
            found.append(
                Finding(
                    severity="error",
                    code="secret-readable",
                    profile=name,
                    path=str(path),
                    what=f"profile {name}: device key {path} is mode {mode:04o} "
                    "(readable by others)",
                    why="the key is the gateway's device identity; a copy impersonates it",
                    fix=f"chmod 600 {path}",
                    action=FixAction("chmod", path, mode=0o600),
                )
            )
    if p.state_mode is not None and p.state_mode & 0o077:
        found.append(
            Finding(
                severity="warning",
                code="state-dir-open",
                profile=name,
                path=str(p.paths.state_dir),
                what=f"profile {name}: state dir {p.paths.state_dir} is mode "
                f"{p.state_mode:04o} (others can look inside)",
                why="logs, sockets and future files inherit the exposure",
                fix=f"chmod 700 {p.paths.state_dir}",
                action=FixAction("chmod", p.paths.state_dir, mode=0o700),
            )
        )
    return found


def _supervisor_findings(facts: HostFacts) -> list[Finding]:
    sup = facts.supervisor
    found: list[Finding] = []
    if sup.running:
        return found
    if sup.identity_stale and sup.identity_path is not None:
        found.append(
            Finding(
                severity="warning",
                code="stale-identity",
                path=str(sup.identity_path),
                what=f"supervisor identity {sup.identity_path} names a process that is not running",
                why="the supervisor died without cleaning up",
                fix=f"remove {sup.identity_path}",
                action=FixAction("remove-identity", sup.identity_path),
            )
        )
    for sock in sup.sockets:
        found.append(
            Finding(
                severity="warning",
                code="leftover-socket",
                path=str(sock),
                what=f"socket file {sock} is left over: no supervisor is running",
                why="a dead supervisor left it; clients get 'connection refused' from it "
                "(the next supervisor replaces it)",
                fix=f"remove {sock}",
                action=FixAction("remove-socket", sock),
            )
        )
    by_name = {p.paths.display_name: p for p in facts.profiles}
    wanted = sorted(
        n for n, up in sup.desired.items() if up and not (n in by_name and by_name[n].services)
    )
    if wanted:
        via_manager = bool(sup.services)
        found.append(
            Finding(
                severity="error",
                code="supervisor-down",
                what=f"the supervisor is not running, but {len(wanted)} profile(s) should "
                f"run: {', '.join(wanted)}",
                why="nothing restarts those gateways if they die, and the stopped ones stay down",
                fix=sup.manager_hint
                if via_manager and sup.manager_hint
                else "start it: openclaw profiles start " + " ".join(wanted),
                action=None if via_manager else FixAction("start-supervisor"),
            )
        )
    return found


def _linger(facts: HostFacts) -> Finding | None:
    user_units = [
        d for p in facts.profiles for d in p.services if d.kind == "systemd" and d.scope == "user"
    ] + [d for d in facts.supervisor.services if d.kind == "systemd" and d.scope == "user"]
    if not user_units or facts.linger is not False:
        return None
    return Finding(
        severity="info",
        code="linger-off",
        what=f"{len(user_units)} systemd user unit(s) installed, but lingering is off "
        "for this user",
        why="user units start at login and stop at logout; without lingering they do not "
        "run at boot",
        fix="loginctl enable-linger $USER",
    )


def diagnose(facts: HostFacts) -> list[Finding]:
    """Every finding, errors first (then warnings, then info), in a stable order.

    Args:
        facts: From :func:`gather_profiles` and the caller's :class:`SupervisorFacts`.
    """
    found: list[Finding] = []
    sup = facts.supervisor
    for p in facts.profiles:
        for finding in (
            _config_invalid(p),
            _stale_identity(p),
            _unowned(p, sup),
            _duplicates(p, sup),
        ):
            if finding is not None:
                found.append(finding)
        found.extend(_modes(p, facts.uid))
    found.extend(_port_findings(facts.profiles))
    found.extend(_supervisor_findings(facts))
    linger = _linger(facts)
    if linger is not None:
        found.append(linger)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: (order[f.severity], f.code, f.profile or ""))


# --- fixing (the safe actions only) ----------------------------------------------------


def apply_fix(finding: Finding, start_supervisor: Callable[[], None]) -> None:
    """Apply ``finding``'s safe action; set ``fixed`` and ``done`` (never raises OSError).

    Args:
        finding: A finding with an ``action``.
        start_supervisor: Starts this home's supervisor (raises OpenClawError on failure).
    """
    action = finding.action
    if action is None:
        return
    try:
        finding.done = _act(action, start_supervisor)
        finding.fixed = True
    except OSError as err:
        finding.done = f"could not fix: {err.strerror or err}"


def _act(action: FixAction, start_supervisor: Callable[[], None]) -> str:
    path = action.path
    if action.kind == "start-supervisor":
        start_supervisor()
        return "started the supervisor"
    assert path is not None
    if action.kind == "chmod":
        assert action.mode is not None
        os.chmod(path, action.mode)
        return f"chmod {action.mode:o} {path}"
    if action.kind == "remove-socket":
        st = path.lstat()
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(0, f"{path} is not a socket any more")
        path.unlink()
        return f"removed {path}"
    # remove-identity: only the very bytes judged stale (a new gateway may have written it).
    current = path.read_bytes()
    if action.expect is not None and current != action.expect:
        raise OSError(0, f"{path} changed since it was checked")
    identity = read_identity(path)
    if identity is not None and identity_is_live(identity):
        raise OSError(0, f"{path} names a running process now")
    path.unlink()
    return f"removed {path}"
