"""All SSH tunnels of one home: definitions, units, and the tunnel commands of the control socket.

The supervisor holds one :class:`Tunnels` (a :class:`~.defined.DefinedUnits`). At start-up
it loads ``tunnels.json``, adopts ssh processes an earlier supervisor left running (pid +
start time + command line), and starts the tunnels that should run. ``tunnel-start`` defines
or updates a tunnel and answers once it is healthy (or failed); ``tunnel-stop`` answers once
ssh is gone; ``tunnel-list`` reports them all. Every change to a definition or a desired
state is saved at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Final

from openclaw_multi.errors import OpenClawError, UsageError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.discovery import list_profiles
from openclaw_multi.profiles.ports import resolve_port
from openclaw_multi.protocol.control import (
    ControlReply,
    TunnelList,
    TunnelStart,
    TunnelStatus,
    TunnelStop,
)

from .defined import DefinedUnits
from .ssh import DEFAULT_REMOTE_PORT, parse_destination, parse_tunnel_name
from .tunnel import TunnelUnit
from .tunnel_defs import TunnelDefinition, TunnelFiles, load_tunnels, save_tunnels

__all__ = ["Tunnels"]

_PROFILE_BLOCK: Final = 20
"""A profile's gateway uses base..base+19: a tunnel's local port stays out of every block."""

TunnelRequest = TunnelStart | TunnelStop | TunnelList


class Tunnels(DefinedUnits[TunnelUnit, TunnelDefinition, TunnelFiles, TunnelStatus]):
    """The tunnels of one supervisor directory."""

    noun = "tunnel"
    list_hint = "openclaw tunnel list"

    async def handle(self, request: TunnelRequest) -> ControlReply:
        """Answer one tunnel request.

        Raises:
            UsageError: A bad name, destination, path or port (the caller makes it an
                ``ok:false`` reply).
        """
        if isinstance(request, TunnelList):
            return ControlReply(ok=True, tunnels=self.statuses())
        name = parse_tunnel_name(request.name)
        if isinstance(request, TunnelStop):
            return await self._stop(name, remove=request.remove)
        definition = self._definition(name, request, self.definition_of(name))
        return await self._apply(name, definition)

    # --- the hooks -------------------------------------------------------------------------

    def _load(self) -> dict[str, TunnelDefinition]:
        return load_tunnels(self.files.definitions_path)

    def _save(self, definitions: dict[str, TunnelDefinition]) -> None:
        save_tunnels(self.files.definitions_path, definitions)

    def _files(self, directory: Path) -> TunnelFiles:
        return TunnelFiles(directory)

    def _make(self, name: str, definition: TunnelDefinition) -> TunnelUnit:
        return TunnelUnit(name, definition, self.files, self._settings, self._persist)

    def _reply(self, ok: bool, error: str | None, statuses: list[TunnelStatus]) -> ControlReply:
        return ControlReply(ok=ok, error=error, tunnels=statuses)

    def _remove_files(self, name: str) -> None:
        super()._remove_files(name)
        with contextlib.suppress(FileNotFoundError):
            self.files.known_hosts_path(name).unlink()

    # --- defining --------------------------------------------------------------------------

    def _definition(
        self, name: str, request: TunnelStart, old: TunnelDefinition | None
    ) -> TunnelDefinition:
        """The new definition: the request's fields over the stored ones (checked)."""
        if request.ssh is None and old is None:
            raise UsageError(f"no tunnel {name} yet: give --ssh user@host to define it")
        ssh = str(parse_destination(request.ssh)) if request.ssh is not None else None
        identity = _existing_file(request.identity, "--identity")
        known_hosts = _existing_file(request.known_hosts, "--known-hosts")
        remote_port = request.remote_port or (old.remote_port if old else DEFAULT_REMOTE_PORT)
        local_port = request.local_port or (old.local_port if old else None)
        others = {u.definition.local_port: n for n, u in self._units.items() if n != name}
        if local_port is None:
            local_port = self._free_local_port(set(others))
        elif local_port in others:
            raise UsageError(f"local port {local_port} is tunnel {others[local_port]}'s")
        return TunnelDefinition(
            ssh=ssh if ssh is not None else old.ssh if old else "",
            remote_port=remote_port,
            local_port=local_port,
            identity=identity if identity is not None else (old.identity if old else None),
            known_hosts=(
                known_hosts if known_hosts is not None else (old.known_hosts if old else None)
            ),
            desired=old.desired if old else False,
        )

    def _free_local_port(self, taken: set[int]) -> int:
        """A free loopback port, outside every profile's port block and other tunnels'."""
        blocks: list[int] = []
        for paths in list_profiles(self._settings.home):
            with contextlib.suppress(OpenClawError):
                config = load_config(paths.config_path)
                blocks.append(resolve_port(paths.name, config_port=config.gateway.port))
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port in taken or any(b <= port < b + _PROFILE_BLOCK for b in blocks):
                continue
            return port
        raise UsageError("no free local port found: give --local-port N")


def _existing_file(raw: str | None, flag: str) -> str | None:
    """An absolute path to an existing file, or None when not given.

    Raises:
        UsageError: Relative (the CLI sends absolute paths), or not a file.
    """
    if raw is None:
        return None
    if not os.path.isabs(raw):
        raise UsageError(f"{flag} {raw}: give an absolute path")
    if not os.path.isfile(raw):
        raise UsageError(f"{flag} {raw}: no such file")
    return raw
