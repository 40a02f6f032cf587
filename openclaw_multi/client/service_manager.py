"""Installing definition files and asking systemd or launchd to act on them.

The files: written atomically, mode 0644 (units hold no secret; systemd reads them as
another user for system units), into a directory created if missing. Removing one also
removes the ``*.wants/`` links ``systemctl enable`` made, so nothing dangles when no manager
is there to ``disable`` it.

The managers: ``systemctl`` (``--user`` for user units) and ``launchctl``. A manager is
*usable* when its program exists and answers (``systemctl --user show-environment`` exits 0:
a user manager runs for us; a system unit also needs root). When it is not, commands print
the exact command a person should run instead of guessing. ``OPENCLAW_SYSTEMCTL`` and
``OPENCLAW_LAUNCHCTL`` name the programs (for tests and unusual installs; empty: none).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from openclaw_multi.profiles.atomic import write_file_atomic
from openclaw_multi.profiles.service_files import ServiceDefinition, ServiceKind, ServiceScope

__all__ = [
    "Action",
    "ManagerCall",
    "install_file",
    "manager_call",
    "manager_usable",
    "remove_file",
    "run_call",
]

SYSTEMCTL_ENV: Final = "OPENCLAW_SYSTEMCTL"
LAUNCHCTL_ENV: Final = "OPENCLAW_LAUNCHCTL"
UNIT_MODE: Final = 0o644
_ANSWER_TIMEOUT_S: Final = 5.0

Action = Literal["start", "stop", "restart", "enable", "disable", "reload"]


def install_file(path: Path, data: bytes) -> bool:
    """Write a definition file atomically (0644), creating its directory.

    Returns:
        True if a file was already there (this replaced it).

    Raises:
        OSError: The directory cannot be created or written (a system unit needs root).
    """
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, data, UNIT_MODE)
    return existed


def remove_file(definition: ServiceDefinition) -> list[Path]:
    """Remove a definition file and the enablement links that point at it.

    Returns:
        Every path removed (the file first).

    Raises:
        OSError: The file cannot be removed.
    """
    removed: list[Path] = []
    definition.path.unlink()
    removed.append(definition.path)
    if definition.kind != "systemd":
        return removed
    with contextlib.suppress(OSError):
        for wants in definition.path.parent.iterdir():
            if not wants.is_dir() or not wants.name.endswith((".wants", ".requires")):
                continue
            link = wants / definition.name
            if link.is_symlink():
                link.unlink()
                removed.append(link)
    return removed


def _program(kind: ServiceKind, env: Mapping[str, str]) -> str | None:
    key, name = (SYSTEMCTL_ENV, "systemctl") if kind == "systemd" else (LAUNCHCTL_ENV, "launchctl")
    if key in env:
        chosen = env[key]
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    if kind == "launchd" and sys.platform != "darwin":
        return None
    return shutil.which(name, path=env.get("PATH"))


@dataclass(frozen=True)
class ManagerCall:
    """One command for a service manager: what runs, and what a person would type.

    Attributes:
        argv: The command with the program as found (None when there is none).
        shown: The same with the plain program name (``sudo`` first for a system unit
            when we are not root), for messages.
    """

    argv: list[str] | None
    shown: str


def _launchd_domain() -> str:
    return f"gui/{os.getuid()}"


def manager_call(
    kind: ServiceKind,
    scope: ServiceScope,
    action: Action,
    *,
    name: str,
    path: Path | None,
    env: Mapping[str, str],
) -> ManagerCall | None:
    """The command doing ``action`` to a service, or None when the manager has no such step.

    Args:
        kind: ``systemd`` or ``launchd``.
        scope: ``user`` or ``system``.
        action: ``start``, ``stop``, ``restart``, ``enable`` (and start), ``disable``
            (and stop), ``reload`` (re-read definitions).
        name: Unit name or launchd label.
        path: The definition file (launchd's ``bootstrap`` needs it).
        env: The environment (which program; ``PATH``).
    """
    args: list[str]
    if kind == "systemd":
        tool = ["systemctl"] if scope == "system" else ["systemctl", "--user"]
        steps: dict[Action, list[str]] = {
            "start": ["start", name],
            "stop": ["stop", name],
            "restart": ["restart", name],
            "enable": ["enable", "--now", name],
            "disable": ["disable", "--now", name],
            "reload": ["daemon-reload"],
        }
        args = tool[1:] + steps[action]
    else:
        target = f"{_launchd_domain()}/{name}"
        launch: dict[Action, list[str]] = {
            "start": ["kickstart", target],
            # SIGTERM: the gateway exits 0, which KeepAlive(SuccessfulExit=false) leaves alone.
            "stop": ["kill", "SIGTERM", target],
            "restart": ["kickstart", "-k", target],
            "enable": ["bootstrap", _launchd_domain(), str(path)],
            "disable": ["bootout", target],
        }
        if action not in launch:
            return None
        args = launch[action]
    plain = "systemctl" if kind == "systemd" else "launchctl"
    sudo = "sudo " if scope == "system" and os.geteuid() != 0 else ""
    shown = sudo + shlex.join([plain, *args])
    program = _program(kind, env)
    return ManagerCall(argv=[program, *args] if program else None, shown=shown)


def manager_usable(kind: ServiceKind, scope: ServiceScope, env: Mapping[str, str]) -> bool:
    """Whether the manager can be asked to act here and now.

    systemd: ``systemctl`` exists and ``systemctl [--user] show-environment`` exits 0 (a
    manager answers); a system unit also needs root. launchd: ``launchctl`` exists.
    """
    program = _program(kind, env)
    if program is None:
        return False
    if kind == "launchd":
        return True
    if scope == "system" and os.geteuid() != 0:
        return False
    probe = (
        [program, "show-environment"]
        if scope == "system"
        else [program, "--user", "show-environment"]
    )
    try:
        done = subprocess.run(
            probe,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_ANSWER_TIMEOUT_S,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def run_call(call: ManagerCall, env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    """Run a manager command.

    Returns:
        ``(exit status, its output on one line)``; status 127 when there is no program,
        124 on timeout.
    """
    if call.argv is None:
        return 127, f"{call.shown.split()[0]}: not found"
    try:
        done = subprocess.run(
            call.argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {timeout:.0f}s"
    except OSError as err:
        return 127, str(err.strerror or err)
    text = (done.stderr or done.stdout or b"").decode(errors="replace")
    return done.returncode, " ".join(text.split())
