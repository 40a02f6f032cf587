"""Profile names: the one rule for what a profile may be called.

Pure: plain strings in, a canonical name (or ``None`` for the default profile) out.
The rule matches OpenClaw's, so an existing ``~/.openclaw-<name>`` directory is the same
profile here.
"""

from __future__ import annotations

import re

from openclaw_multi.errors import UsageError

__all__ = [
    "DEFAULT_DISPLAY_NAME",
    "DEV_PROFILE",
    "display_name",
    "is_valid_name",
    "parse_profile_name",
]

DEFAULT_DISPLAY_NAME = "default"
DEV_PROFILE = "dev"

# 1-64 chars; the first may not be "_" or "-" so a name never looks like a flag.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_INVALID_NAME = 'Invalid --profile (use letters, numbers, "_", "-" only)'
_DEV_WITH_PROFILE = "--dev cannot be combined with --profile"


def is_valid_name(raw: str) -> bool:
    """Tell whether ``raw`` follows the name rule (``default`` counts as valid).

    Args:
        raw: A candidate name, exactly as typed.

    Returns:
        True if :func:`parse_profile_name` would accept it.
    """
    return _NAME_RE.fullmatch(raw) is not None


def parse_profile_name(raw: str | None, *, dev: bool = False) -> str | None:
    """Turn what a person typed into the canonical profile name.

    Args:
        raw: The ``--profile`` value (or ``OPENCLAW_PROFILE``), or None if not given.
        dev: True if ``--dev`` was given; it means the profile ``dev``.

    Returns:
        The name with its case kept, or None for the default (unnamed) profile: when
        nothing was given, or ``raw`` is ``default`` in any case.

    Raises:
        UsageError: ``dev`` together with a ``raw`` name, or a name outside the rule.
    """
    if dev:
        if raw is not None:
            raise UsageError(_DEV_WITH_PROFILE)
        return DEV_PROFILE
    if raw is None:
        return None
    if not is_valid_name(raw):
        raise UsageError(_INVALID_NAME)
    if raw.lower() == DEFAULT_DISPLAY_NAME:
        return None
    return raw


def display_name(name: str | None) -> str:
    """Name a profile for people: ``default`` for the unnamed one.

    Args:
        name: A canonical name from :func:`parse_profile_name`.

    Returns:
        The name to print.
    """
    return DEFAULT_DISPLAY_NAME if name is None else name
