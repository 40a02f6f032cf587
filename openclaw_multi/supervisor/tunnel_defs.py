"""Tunnel definitions on disk, and where each tunnel's files live.

``<home>/.openclaw-supervisor/tunnels.json`` (mode 0600, always written atomically)::

    {"version": 1, "tunnels": {"office": {"ssh": "me@office.example:2222",
      "remotePort": 18789, "localPort": 41022, "identity": "/home/me/.ssh/id_ed25519",
      "knownHosts": null, "desired": true}}}

``desired`` is the tunnel's desired state, kept like the profiles' ``desired.json``: a
restarted supervisor brings back what should run. Per tunnel, under ``tunnels/`` (0700):
``<name>.log`` (ssh's stderr, a file), ``<name>.known_hosts`` (its own host keys, unless
``knownHosts`` names the person's file) and ``<name>.pid`` (the ssh process, for adoption).

A missing or empty file means no tunnels. A corrupt one is moved aside to
``tunnels.json.corrupt`` (and logged): definitions are a person's input, never silently
overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic

from .ssh import parse_destination, parse_tunnel_name

__all__ = [
    "SshPid",
    "TunnelDefinition",
    "TunnelFiles",
    "load_tunnels",
    "save_tunnels",
]

_LOG = logging.getLogger("openclaw.supervisor")


class TunnelDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One tunnel as defined by ``openclaw tunnel start``.

    Attributes:
        ssh: ``[user@]host[:port]``.
        remote_port: The gateway port on the SSH server's loopback.
        local_port: The port on this host's loopback (chosen once, then kept).
        identity: A private key file, or None (ssh's defaults and agent).
        known_hosts: The person's known_hosts file (strict), or None (the tunnel's own,
            accept-new).
        desired: Whether it should run.
    """

    ssh: str
    remote_port: int
    local_port: int
    identity: str | None = None
    known_hosts: str | None = None
    desired: bool = False


class _TunnelsFile(msgspec.Struct, kw_only=True):
    version: int = 1
    tunnels: dict[str, TunnelDefinition] = msgspec.field(default_factory=dict)


class SshPid(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``<name>.pid``: the ssh process a supervisor started, so the next one can adopt it."""

    pid: int
    start_time: int


_DECODER = msgspec.json.Decoder(_TunnelsFile)
_ENCODER = msgspec.json.Encoder(order="sorted")
_PID_DECODER = msgspec.json.Decoder(SshPid)


@dataclass(frozen=True)
class TunnelFiles:
    """The tunnel files of one supervisor directory."""

    directory: Path
    """``<home>/.openclaw-supervisor``."""

    @property
    def definitions_path(self) -> Path:
        """``tunnels.json``."""
        return self.directory / "tunnels.json"

    @property
    def tunnels_dir(self) -> Path:
        """``tunnels/``: logs, known_hosts and pid files."""
        return self.directory / "tunnels"

    def log_path(self, name: str) -> Path:
        """ssh's stdout and stderr (appended; rotated to ``.1`` at spawn once over 1 MiB)."""
        return self.tunnels_dir / f"{name}.log"

    def known_hosts_path(self, name: str) -> Path:
        """The tunnel's own known_hosts (accept-new on the first connection)."""
        return self.tunnels_dir / f"{name}.known_hosts"

    def pid_path(self, name: str) -> Path:
        """The running ssh's pid and start time."""
        return self.tunnels_dir / f"{name}.pid"

    def ensure_dir(self) -> None:
        """Create ``tunnels/`` (0700)."""
        self.tunnels_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.tunnels_dir, 0o700)

    def read_pid(self, name: str) -> SshPid | None:
        """The recorded ssh process, or None."""
        try:
            return _PID_DECODER.decode(self.pid_path(name).read_bytes())
        except (OSError, msgspec.DecodeError):
            return None

    def write_pid(self, name: str, pid: SshPid) -> None:
        """Record the ssh process (atomic, 0600)."""
        write_file_atomic(self.pid_path(name), msgspec.json.encode(pid), 0o600)

    def remove_pid(self, name: str) -> None:
        """Forget the ssh process (it is gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_path(name).unlink()


def _valid(name: str, definition: TunnelDefinition) -> bool:
    try:
        parse_tunnel_name(name)
        parse_destination(definition.ssh)
    except UsageError:
        return False
    return all(1 <= p <= 65535 for p in (definition.local_port, definition.remote_port))


def load_tunnels(path: Path) -> dict[str, TunnelDefinition]:
    """Read the definitions. Never raises.

    Returns:
        Name -> definition; empty when the file is missing or empty. A corrupt file is
        moved aside (``.corrupt``) and logged; an invalid entry is skipped and logged.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        _LOG.error("cannot read %s (%s): no tunnels loaded", path, err)
        return {}
    if not raw.strip():
        return {}
    try:
        state = _DECODER.decode(raw)
    except msgspec.DecodeError as err:
        aside = path.with_name(path.name + ".corrupt")
        _LOG.error("corrupt %s (%s): moved aside to %s", path, err, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return {}
    tunnels: dict[str, TunnelDefinition] = {}
    for name, definition in state.tunnels.items():
        if _valid(name, definition):
            tunnels[name] = definition
        else:
            _LOG.warning("%s: ignoring invalid tunnel %r", path, name)
    return tunnels


def save_tunnels(path: Path, tunnels: dict[str, TunnelDefinition]) -> None:
    """Write the definitions atomically (mode 0600).

    Raises:
        OSError: The directory is not writable, the disk is full, ...
    """
    write_file_atomic(path, _ENCODER.encode(_TunnelsFile(tunnels=dict(tunnels))), 0o600)
