"""The desired state on disk: which profiles should run, kept across supervisor restarts.

Format (``desired.json``, mode 0600, always written atomically)::

    {"version": 1, "profiles": {"work": true, "default": false}}

Keys are display names (``default`` is the unnamed profile). An absent or empty file is a
valid state (nothing should run). A corrupt file, or an entry with an invalid name, is
logged and treated as absent: the supervisor must come up even after a bad write by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic
from openclaw_multi.profiles.names import display_name, parse_profile_name

__all__ = ["DesiredState", "load_desired", "save_desired"]

_LOG = logging.getLogger("openclaw.supervisor")


class DesiredState(msgspec.Struct, kw_only=True):
    """The file's content: profile display name -> should it run."""

    version: int = 1
    profiles: dict[str, bool] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(DesiredState)
_ENCODER = msgspec.json.Encoder(order="sorted")


def load_desired(path: Path) -> dict[str, bool]:
    """Read the desired state. Never raises.

    Args:
        path: ``desired.json``.

    Returns:
        Display name -> desired; empty when the file is missing, empty or corrupt.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        _LOG.warning("cannot read %s (%s): treating desired state as empty", path, err)
        return {}
    if not raw.strip():
        return {}
    try:
        state = _DECODER.decode(raw)
    except msgspec.DecodeError as err:
        _LOG.warning("corrupt %s (%s): treating desired state as empty", path, err)
        return {}
    desired: dict[str, bool] = {}
    for name, up in state.profiles.items():
        try:
            canonical = parse_profile_name(name)
        except UsageError:
            _LOG.warning("%s: ignoring invalid profile name %r", path, name)
            continue
        desired[display_name(canonical)] = up
    return desired


def save_desired(path: Path, desired: dict[str, bool]) -> None:
    """Write the desired state atomically (mode 0600).

    Raises:
        OSError: The directory is not writable, the disk is full, ...
    """
    write_file_atomic(path, _ENCODER.encode(DesiredState(profiles=dict(desired))), 0o600)
