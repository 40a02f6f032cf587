"""Service definitions of a profile: the systemd units and launchd plists that run its gateway.

A profile's gateway has exactly one owner: the supervisor, or a service manager (systemd or
launchd) through a definition file installed by ``openclaw profiles install``. This module
names those files, says where they live, and finds the ones that exist for a profile, so
every part agrees on the owner: the CLI (delegation, listings, ``doctor``) and the supervisor
(which never adopts a gateway a service manager owns).

Names:

==========  ==================================  ===================================
profile     systemd unit                        launchd label (plist = label.plist)
==========  ==================================  ===================================
default     ``openclaw-gateway.service``        ``ai.openclaw.gateway``
work        ``openclaw-gateway-work.service``   ``ai.openclaw.work``
supervisor  ``openclaw-supervisor.service``     ``ai.openclaw.multi.supervisor``
==========  ==================================  ===================================

Directories (``OPENCLAW_SYSTEMD_DIR``, ``OPENCLAW_SYSTEMD_SYSTEM_DIR`` and
``OPENCLAW_LAUNCHD_DIR`` replace them, for tests and unusual layouts):
systemd user units in ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``), system
units in ``/etc/systemd/system``, launchd agents in ``~/Library/LaunchAgents``.

A definition belongs to a home: it carries ``OPENCLAW_HOME`` when it was installed with one
(always for a system unit); one without it belongs to the user's ``$HOME``. So a test home,
or another user's home, never claims a unit of the real one.
"""

from __future__ import annotations

import os
import plistlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from .paths import HOME_ENV, ProfilePaths

__all__ = [
    "LAUNCHD_DIR_ENV",
    "SUPERVISOR_LABEL",
    "SUPERVISOR_UNIT",
    "SYSTEMD_DIR_ENV",
    "SYSTEMD_SYSTEM_DIR_ENV",
    "ServiceDefinition",
    "ServiceKind",
    "ServiceScope",
    "definition_home",
    "find_gateway_services",
    "find_supervisor_services",
    "gateway_label",
    "gateway_unit",
    "launchd_dir",
    "systemd_dir",
]

SYSTEMD_DIR_ENV: Final = "OPENCLAW_SYSTEMD_DIR"
SYSTEMD_SYSTEM_DIR_ENV: Final = "OPENCLAW_SYSTEMD_SYSTEM_DIR"
LAUNCHD_DIR_ENV: Final = "OPENCLAW_LAUNCHD_DIR"
SUPERVISOR_UNIT: Final = "openclaw-supervisor.service"
# Dotted, so no profile name (letters, digits, "_", "-") can ever produce it.
SUPERVISOR_LABEL: Final = "ai.openclaw.multi.supervisor"
_SYSTEM_DIR: Final = Path("/etc/systemd/system")

ServiceKind = Literal["systemd", "launchd"]
ServiceScope = Literal["user", "system"]


@dataclass(frozen=True)
class ServiceDefinition:
    """One installed definition file.

    Attributes:
        kind: ``systemd`` or ``launchd``.
        scope: ``user`` (a user unit, a LaunchAgent) or ``system`` (a system unit).
        name: The unit name (``openclaw-gateway-work.service``) or launchd label.
        path: The file.
    """

    kind: ServiceKind
    scope: ServiceScope
    name: str
    path: Path


def gateway_unit(name: str | None) -> str:
    """The systemd unit name of a profile's gateway (None: the default profile)."""
    return "openclaw-gateway.service" if name is None else f"openclaw-gateway-{name}.service"


def gateway_label(name: str | None) -> str:
    """The launchd label of a profile's gateway (None: the default profile)."""
    return "ai.openclaw.gateway" if name is None else f"ai.openclaw.{name}"


def _get(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key, "")
    return value or None


def systemd_dir(env: Mapping[str, str], scope: ServiceScope) -> Path | None:
    """Where systemd units of ``scope`` are installed (None: no home to put user units in)."""
    if scope == "system":
        override = _get(env, SYSTEMD_SYSTEM_DIR_ENV)
        return Path(override) if override else _SYSTEM_DIR
    override = _get(env, SYSTEMD_DIR_ENV)
    if override:
        return Path(override)
    config = _get(env, "XDG_CONFIG_HOME")
    if config and os.path.isabs(config):
        return Path(config) / "systemd" / "user"
    home = _get(env, "HOME")
    return Path(home) / ".config" / "systemd" / "user" if home else None


def launchd_dir(env: Mapping[str, str]) -> Path | None:
    """Where launchd agents are installed (None: no home)."""
    override = _get(env, LAUNCHD_DIR_ENV)
    if override:
        return Path(override)
    home = _get(env, "HOME")
    return Path(home) / "Library" / "LaunchAgents" if home else None


_UNIT_HOME = re.compile(r'^\s*Environment\s*=\s*"?OPENCLAW_HOME=([^"\n]*)"?\s*$', re.MULTILINE)


def definition_home(path: Path) -> str | None:
    """The ``OPENCLAW_HOME`` a definition file sets, or None (unset, or unreadable)."""
    try:
        if path.suffix == ".plist":
            with path.open("rb") as f:
                data = plistlib.load(f)
            env = data.get("EnvironmentVariables") if isinstance(data, dict) else None
            value = env.get(HOME_ENV) if isinstance(env, dict) else None
            return value if isinstance(value, str) and value else None
        match = _UNIT_HOME.search(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, plistlib.InvalidFileException):
        return None
    return match.group(1).strip() or None if match else None


def _belongs(path: Path, home: Path, env: Mapping[str, str]) -> bool:
    declared = definition_home(path)
    if declared is None:
        user_home = _get(env, "HOME")
        return user_home is not None and _same(Path(user_home), home)
    return _same(Path(declared), home)


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _candidates(
    unit: str, label: str, env: Mapping[str, str]
) -> list[tuple[ServiceKind, ServiceScope, str, Path]]:
    found: list[tuple[ServiceKind, ServiceScope, str, Path]] = []
    user_units = systemd_dir(env, "user")
    if user_units is not None:
        found.append(("systemd", "user", unit, user_units / unit))
    system_units = systemd_dir(env, "system")
    if system_units is not None:
        found.append(("systemd", "system", unit, system_units / unit))
    agents = launchd_dir(env)
    if agents is not None:
        found.append(("launchd", "user", label, agents / f"{label}.plist"))
    return found


def _existing(
    candidates: list[tuple[ServiceKind, ServiceScope, str, Path]],
    home: Path,
    env: Mapping[str, str],
) -> list[ServiceDefinition]:
    result: list[ServiceDefinition] = []
    seen: set[str] = set()
    for kind, scope, name, path in candidates:
        key = os.path.realpath(path)
        if key in seen or not path.is_file() or not _belongs(path, home, env):
            continue
        seen.add(key)
        result.append(ServiceDefinition(kind=kind, scope=scope, name=name, path=path))
    return result


def find_gateway_services(paths: ProfilePaths, env: Mapping[str, str]) -> list[ServiceDefinition]:
    """The definition files installed for a profile's gateway (empty: none).

    Args:
        paths: The profile (its ``home`` decides which definitions belong to it).
        env: The environment: ``HOME``, ``XDG_CONFIG_HOME`` and the directory overrides.

    Returns:
        systemd user unit, systemd system unit, launchd plist: those that exist, in that order.
    """
    candidates = _candidates(gateway_unit(paths.name), gateway_label(paths.name), env)
    return _existing(candidates, paths.home, env)


def find_supervisor_services(home: Path, env: Mapping[str, str]) -> list[ServiceDefinition]:
    """The definition files installed for the supervisor of ``home``."""
    return _existing(_candidates(SUPERVISOR_UNIT, SUPERVISOR_LABEL, env), home, env)
