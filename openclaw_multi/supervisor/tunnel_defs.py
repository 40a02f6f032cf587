"""Tunnel definitions on disk, and where each tunnel's files live.

``<home>/.openclaw-supervisor/tunnels.json`` (mode 0600, always written atomically)::

    {"version": 1, "tunnels": {"office": {"ssh": "me@office.example:2222",
      "remotePort": 18789, "localPort": 41022, "identity": "/home/me/.ssh/id_ed25519",
      "knownHosts": null, "desired": true}}}

``desired`` is the tunnel's desired state, kept like the profiles' ``desired.json``: a
restarted supervisor brings back what should run. Per tunnel, under ``tunnels/`` (0700):
``<name>.log`` (ssh's stderr, a file), ``<name>.known_hosts`` (its own host keys, unless
``knownHosts`` names the person's file) and ``<name>.pid`` (the ssh process, for adoption).

Loading, the pid file and the handling of a bad file are shared with node hosts
(:mod:`.definitions`): a corrupt file is moved aside to ``tunnels.json.corrupt``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic

from .definitions import Definition, ProcessPid, UnitFiles, load_definitions
from .ssh import parse_destination, parse_tunnel_name

__all__ = [
    "SshPid",
    "TunnelDefinition",
    "TunnelFiles",
    "load_tunnels",
    "save_tunnels",
]

SshPid = ProcessPid
"""``<name>.pid``: the ssh process a supervisor started, so the next one can adopt it."""


class TunnelDefinition(Definition, frozen=True, kw_only=True, rename="camel"):
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


class _TunnelsFile(msgspec.Struct, kw_only=True):
    version: int = 1
    tunnels: dict[str, TunnelDefinition] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(_TunnelsFile)
_ENCODER = msgspec.json.Encoder(order="sorted")


class TunnelFiles(UnitFiles):
    """The tunnel files of one supervisor directory: ``tunnels.json`` and ``tunnels/``."""

    definitions_name = "tunnels.json"
    units_dir_name = "tunnels"

    @property
    def tunnels_dir(self) -> Path:
        """``tunnels/``: logs, known_hosts and pid files."""
        return self.units_dir

    def log_path(self, name: str) -> Path:
        """ssh's stdout and stderr (appended; rotated to ``.1`` at spawn once over 1 MiB)."""
        return self.tunnels_dir / f"{name}.log"

    def known_hosts_path(self, name: str) -> Path:
        """The tunnel's own known_hosts (accept-new on the first connection)."""
        return self.tunnels_dir / f"{name}.known_hosts"


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
    return load_definitions(path, lambda raw: _DECODER.decode(raw).tunnels, _valid, "tunnel")


def save_tunnels(path: Path, tunnels: dict[str, TunnelDefinition]) -> None:
    """Write the definitions atomically (mode 0600).

    Raises:
        OSError: The directory is not writable, the disk is full, ...
    """
    write_file_atomic(path, _ENCODER.encode(_TunnelsFile(tunnels=dict(tunnels))), 0o600)
