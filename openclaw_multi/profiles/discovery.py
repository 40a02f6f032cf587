"""Finding the profiles that exist on disk under a home directory."""

from __future__ import annotations

from pathlib import Path

from openclaw_multi.errors import UsageError

from .names import parse_profile_name
from .paths import ProfilePaths, resolve_paths

__all__ = ["SUPERVISOR_DIR_NAME", "list_profiles"]

# The supervisor's own state dir sits beside the profiles' and is not a profile.
SUPERVISOR_DIR_NAME = ".openclaw-supervisor"
_PREFIX = ".openclaw-"


def _profile_name(dir_name: str) -> tuple[bool, str | None]:
    """(is a profile dir, its name) for one entry of home."""
    if dir_name == ".openclaw":
        return True, None
    if not dir_name.startswith(_PREFIX) or dir_name == SUPERVISOR_DIR_NAME:
        return False, None
    try:
        name = parse_profile_name(dir_name[len(_PREFIX) :])
    except UsageError:
        return False, None
    # ".openclaw-default" is not where the default profile lives, so it is no profile.
    return name is not None, name


def list_profiles(home: Path) -> list[ProfilePaths]:
    """List every profile with a state directory under ``home``.

    Paths come from :func:`resolve_paths` with only ``HOME`` set, so environment
    overrides of the caller never move a listed profile.

    Args:
        home: The home directory (``OPENCLAW_HOME`` or ``$HOME``).

    Returns:
        ``<home>/.openclaw`` and each ``<home>/.openclaw-<valid name>`` directory (not
        ``.openclaw-supervisor``), sorted by display name; empty if ``home`` is missing.
    """
    env = {"HOME": str(home)}
    found: list[ProfilePaths] = []
    try:
        entries = list(home.iterdir())
    except OSError:
        return []
    for entry in entries:
        is_profile, name = _profile_name(entry.name)
        if is_profile and entry.is_dir():
            found.append(resolve_paths(name, env, explicit=False))
    found.sort(key=lambda p: p.display_name)
    return found
