"""What a defined unit keeps on disk: shared by tunnels (:mod:`.tunnel_defs`) and node hosts
(:mod:`.node_defs`).

* A definitions file (``tunnels.json``, ``nodes.json``; mode 0600, always written
  atomically) maps a name to a :class:`Definition`, whose ``desired`` is kept like the
  profiles' ``desired.json``: a restarted supervisor brings back what should run.
* A directory of per-unit files (0700) holding ``<name>.pid`` (:class:`ProcessPid`: the
  process a supervisor started, so the next one can adopt it instead of starting a second).

A missing or empty definitions file means none. A corrupt one is moved aside to
``<file>.corrupt`` and logged, an invalid entry is skipped and logged: definitions are a
person's input, never silently overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import msgspec

from openclaw_multi.profiles.atomic import write_file_atomic

__all__ = ["Definition", "ProcessPid", "UnitFiles", "load_definitions"]

_LOG = logging.getLogger("openclaw.supervisor")


class Definition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What every definition has.

    Attributes:
        desired: Whether it should run.
    """

    desired: bool = False


class ProcessPid(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``<name>.pid``: pid and start time of the process a supervisor started."""

    pid: int
    start_time: int


_PID_DECODER = msgspec.json.Decoder(ProcessPid)

D = TypeVar("D", bound=Definition)


@dataclass(frozen=True)
class UnitFiles:
    """The files of one kind of defined unit in one supervisor directory.

    A subclass names its definitions file and its per-unit directory.
    """

    directory: Path
    """``<home>/.openclaw-supervisor``."""

    definitions_name: ClassVar[str] = ""
    units_dir_name: ClassVar[str] = ""

    @property
    def definitions_path(self) -> Path:
        """The definitions file."""
        return self.directory / self.definitions_name

    @property
    def units_dir(self) -> Path:
        """The per-unit files' directory."""
        return self.directory / self.units_dir_name

    def pid_path(self, name: str) -> Path:
        """The running process's pid and start time."""
        return self.units_dir / f"{name}.pid"

    def ensure_dir(self) -> None:
        """Create the per-unit directory (0700)."""
        self.units_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.units_dir, 0o700)

    def read_pid(self, name: str) -> ProcessPid | None:
        """The recorded process, or None."""
        try:
            return _PID_DECODER.decode(self.pid_path(name).read_bytes())
        except (OSError, msgspec.DecodeError):
            return None

    def write_pid(self, name: str, pid: ProcessPid) -> None:
        """Record the process (atomic, 0600)."""
        write_file_atomic(self.pid_path(name), msgspec.json.encode(pid), 0o600)

    def remove_pid(self, name: str) -> None:
        """Forget the process (it is gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_path(name).unlink()


def load_definitions(
    path: Path,
    decode: Callable[[bytes], Mapping[str, D]],
    valid: Callable[[str, D], bool],
    noun: str,
) -> dict[str, D]:
    """Read a definitions file. Never raises (see the module docstring for bad files).

    Args:
        path: The file.
        decode: Its bytes to name -> definition (raises ``msgspec.DecodeError``).
        valid: Whether one entry is usable (else it is skipped and logged).
        noun: What an entry is, for the log (``tunnel``, ``node host``).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        _LOG.error("cannot read %s (%s): no %ss loaded", path, err, noun)
        return {}
    if not raw.strip():
        return {}
    try:
        entries = decode(raw)
    except msgspec.DecodeError as err:  # ValidationError included
        aside = path.with_name(path.name + ".corrupt")
        _LOG.error("corrupt %s (%s): moved aside to %s", path, err, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return {}
    loaded: dict[str, D] = {}
    for name, definition in entries.items():
        if valid(name, definition):
            loaded[name] = definition
        else:
            _LOG.warning("%s: ignoring invalid %s %r", path, noun, name)
    return loaded
