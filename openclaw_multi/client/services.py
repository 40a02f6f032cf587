"""Service definitions as text: systemd units and launchd plists, of a gateway or the supervisor.

Pure string building (values in, text out; nothing touches the disk), so every line is
tested by value. What goes in, and why:

* ``ExecStart`` / ``ProgramArguments``: the absolute interpreter of this installation and
  ``-m openclaw_multi.gateway --profile NAME --quiet`` (``--quiet``: the gateway logs to its
  own rotated file; systemd's journal gets only start-up errors). No secret is ever on a
  command line or in a definition: tokens stay in the profile's config file (0600).
* Environment: the profile's selector only, ``OPENCLAW_PROFILE=<name>``, plus
  ``OPENCLAW_HOME`` when it is set (always for a system unit, which has no login home of
  ours). Nothing else from the installing shell: another profile's ``OPENCLAW_*`` would leak.
* ``Type=notify`` + ``NotifyAccess=main``: the gateway sends ``READY=1`` once it serves, so
  ``systemctl start`` returns when it is ready; ``WatchdogSec=`` with the gateway's
  ``WATCHDOG=1`` every half period catches a hung loop.
* ``Restart=always`` but ``RestartPreventExitStatus=78``: exit 78 is the gateway's "do not
  restart me" (bad config, port taken, profile locked). ``StartLimitBurst=5`` in 60 s mirrors
  the supervisor's burst limit.
* ``KillMode=control-group`` for a gateway (everything it started goes with it);
  ``KillMode=process`` for the supervisor, whose gateways must survive its restarts.
* launchd: ``KeepAlive`` with ``SuccessfulExit=false`` restarts a gateway that failed and
  leaves one that exited 0 alone. launchd has no equivalent of ``RestartPreventExitStatus``:
  a gateway exiting 78 is retried every ``ThrottleInterval`` seconds (docs/services.md).
"""

from __future__ import annotations

import plistlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from openclaw_multi.profiles.names import display_name
from openclaw_multi.profiles.service_files import (
    SUPERVISOR_LABEL,
    SUPERVISOR_UNIT,
    ServiceScope,
    gateway_label,
    gateway_unit,
)

__all__ = [
    "EXIT_DO_NOT_RESTART",
    "RESTART_SEC",
    "START_LIMIT_BURST",
    "START_LIMIT_INTERVAL_SEC",
    "TIMEOUT_START_SEC",
    "TIMEOUT_STOP_SEC",
    "WATCHDOG_SEC",
    "ServiceSpec",
    "gateway_spec",
    "render_launchd_plist",
    "render_systemd_unit",
    "supervisor_spec",
]

EXIT_DO_NOT_RESTART: Final = 78
RESTART_SEC: Final = 1
START_LIMIT_BURST: Final = 5
START_LIMIT_INTERVAL_SEC: Final = 60
TIMEOUT_START_SEC: Final = 30
TIMEOUT_STOP_SEC: Final = 15
"""A gateway drains in under a second; this bounds a stuck one."""
WATCHDOG_SEC: Final = 30
LAUNCHD_THROTTLE_S: Final = 10
"""launchd's own default; the shortest respawn interval of a KeepAlive job."""

Role = Literal["gateway", "supervisor"]


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a definition says, independent of the service manager.

    Attributes:
        role: ``gateway`` or ``supervisor``.
        name: The unit name (``openclaw-gateway-work.service``) or launchd label.
        description: One line for ``systemctl status``.
        argv: The command, absolute interpreter first.
        environment: ``(key, value)`` pairs to set.
        scope: ``user`` or ``system``.
        run_as: The user a system unit runs as (``User=``); None for user units.
        log_path: Where launchd sends stdout/stderr (systemd uses its journal).
        remove_hint: The command that uninstalls it, for the header comment.
    """

    role: Role
    name: str
    description: str
    argv: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    scope: ServiceScope = "user"
    run_as: str | None = None
    log_path: str | None = None
    remove_hint: str = ""


def _environment(
    profile: str | None, role: Role, env: Mapping[str, str], home: Path, scope: ServiceScope
) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if role == "gateway":
        pairs.append(("OPENCLAW_PROFILE", display_name(profile)))
    if env.get("OPENCLAW_HOME") or scope == "system":
        pairs.append(("OPENCLAW_HOME", str(home)))
    return tuple(pairs)


def gateway_spec(
    profile: str | None,
    *,
    python: str,
    home: Path,
    env: Mapping[str, str],
    scope: ServiceScope = "user",
    run_as: str | None = None,
    log_path: Path | None = None,
    launchd: bool = False,
) -> ServiceSpec:
    """The definition of one profile's gateway.

    Args:
        profile: Canonical profile name (None: the default profile).
        python: Absolute path of the interpreter that has openclaw_multi installed.
        home: The profiles' home (``OPENCLAW_HOME`` or ``HOME``).
        env: The installing environment (only whether ``OPENCLAW_HOME`` is set is read).
        scope: ``user`` or ``system``.
        run_as: For a system unit, the user to run as.
        log_path: launchd's stdout/stderr file.
        launchd: Name it with the launchd label instead of the unit name.
    """
    shown = display_name(profile)
    argv = (python, "-m", "openclaw_multi.gateway", "--profile", shown, "--quiet")
    system = " --system" if scope == "system" else ""
    flag = " --launchd" if launchd else system
    return ServiceSpec(
        role="gateway",
        name=gateway_label(profile) if launchd else gateway_unit(profile),
        description=f"OpenClaw gateway (profile {shown})",
        argv=argv,
        environment=_environment(profile, "gateway", env, home, scope),
        scope=scope,
        run_as=run_as if scope == "system" else None,
        log_path=str(log_path) if log_path is not None else None,
        remove_hint=f"openclaw profiles uninstall {shown}{flag}",
    )


def supervisor_spec(
    *,
    python: str,
    home: Path,
    env: Mapping[str, str],
    scope: ServiceScope = "user",
    run_as: str | None = None,
    log_path: Path | None = None,
    launchd: bool = False,
) -> ServiceSpec:
    """The definition of the supervisor of ``home`` (``--foreground``; it sends READY=1)."""
    system = " --system" if scope == "system" else ""
    flag = " --launchd" if launchd else system
    return ServiceSpec(
        role="supervisor",
        name=SUPERVISOR_LABEL if launchd else SUPERVISOR_UNIT,
        description="OpenClaw supervisor (keeps this user's profile gateways running)",
        argv=(python, "-m", "openclaw_multi.supervisor", "--foreground"),
        environment=_environment(None, "supervisor", env, home, scope),
        scope=scope,
        run_as=run_as if scope == "system" else None,
        log_path=str(log_path) if log_path is not None else None,
        remove_hint=f"openclaw supervisor uninstall{flag}",
    )


# --- systemd ---------------------------------------------------------------------------

_SPECIAL = set(" \t\"'\\;")


def _unit_word(word: str, *, exec_line: bool) -> str:
    """One argument as systemd reads it (systemd.service(5)).

    ``%`` starts a specifier everywhere and ``$`` a variable in ``ExecStart``: both doubled.
    """
    word = word.replace("%", "%%")
    if exec_line:
        word = word.replace("$", "$$")
    if word and not (_SPECIAL & set(word)):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _environment_line(key: str, value: str) -> str:
    return "Environment=" + _unit_word(f"{key}={value}", exec_line=False)


def render_systemd_unit(spec: ServiceSpec) -> str:
    """The unit file text of ``spec`` (mode 0644 on disk: it holds no secret)."""
    gateway = spec.role == "gateway"
    lines = [
        "# Written by openclaw-multi. No secrets here: tokens stay in the profile's config (0600).",
        f"# Remove with: {spec.remove_hint}",
        "[Unit]",
        f"Description={spec.description}",
    ]
    if spec.scope == "system":
        lines += ["Wants=network-online.target", "After=network-online.target"]
    else:
        lines.append("After=network.target")
    lines += [
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(_unit_word(a, exec_line=True) for a in spec.argv),
    ]
    lines += [_environment_line(k, v) for k, v in spec.environment]
    if spec.run_as is not None:
        lines += [f"User={_unit_word(spec.run_as, exec_line=False)}"]
    lines += [
        "Restart=always" if gateway else "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"RestartPreventExitStatus={EXIT_DO_NOT_RESTART}",
        # A supervisor's gateways outlive it (docs/supervisor.md); a gateway takes its own
        # children along.
        "KillMode=control-group" if gateway else "KillMode=process",
        f"TimeoutStartSec={TIMEOUT_START_SEC}",
        f"TimeoutStopSec={TIMEOUT_STOP_SEC if gateway else 30}",
    ]
    if gateway:
        lines.append(f"WatchdogSec={WATCHDOG_SEC}")
    lines += [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target" if spec.scope == "system" else "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


# --- launchd ---------------------------------------------------------------------------


def render_launchd_plist(spec: ServiceSpec) -> bytes:
    """The launchd property list of ``spec`` (XML, mode 0644 on disk)."""
    plist: dict[str, object] = {
        "Label": spec.name,
        "ProgramArguments": list(spec.argv),
        "EnvironmentVariables": dict(spec.environment),
        "RunAtLoad": True,
        # Restart after a failure or a crash; an exit 0 (asked to stop) is final. launchd
        # cannot exempt one status (78): see docs/services.md.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": LAUNCHD_THROTTLE_S,
        "ExitTimeOut": TIMEOUT_STOP_SEC,
        "ProcessType": "Background",
        "Umask": 0o077,
    }
    if spec.log_path is not None:
        plist["StandardOutPath"] = spec.log_path
        plist["StandardErrorPath"] = spec.log_path
    return plistlib.dumps(plist, sort_keys=False)
