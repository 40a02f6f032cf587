"""All supervised node hosts of one home: definitions, units, and the ``node-*`` commands.

The supervisor holds one :class:`NodeHosts`, run like :class:`~.tunnels.Tunnels`: at start it
loads ``nodes.json``, adopts node hosts an earlier supervisor left running, and starts the
ones that should run. ``node-start`` defines or updates one and answers once it is up (or
failed); ``node-stop`` answers once it is gone; ``node-list`` reports them all. Every change
to a definition or a desired state is saved at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from openclaw_multi.errors import UsageError
from openclaw_multi.protocol.control import (
    ControlReply,
    NodeHostStatus,
    NodeList,
    NodeStart,
    NodeStop,
)

from .node_defs import (
    NodeDefinition,
    NodeFiles,
    check_node_url,
    load_nodes,
    parse_node_name,
    save_nodes,
)
from .node_unit import NodeUnit
from .policy import RestartPolicy
from .states import ProcessState

__all__ = ["NodeHosts", "NodeRequest"]

_LOG = logging.getLogger("openclaw.supervisor")

NodeRequest = NodeStart | NodeStop | NodeList


class NodeHosts:
    """The node hosts of one supervisor directory."""

    def __init__(
        self,
        directory: Path,
        home: Path,
        *,
        policy: RestartPolicy,
        probe_timeout: float,
        base_env: Mapping[str, str],
    ) -> None:
        self.files = NodeFiles(directory)
        self._home = home
        self._policy = policy
        self._probe_timeout = probe_timeout
        self._base_env = base_env
        self._units: dict[str, NodeUnit] = {}

    # --- life of the supervisor --------------------------------------------------------

    def load(self) -> None:
        """Make a unit for every stored node host and adopt the ones still running."""
        for name, definition in sorted(load_nodes(self.files.definitions_path).items()):
            self._units[name] = self._make(name, definition)
        for unit in self._units.values():
            unit.try_adopt()

    def launch(self) -> None:
        """Start every unit's driver (desired ones get started)."""
        for unit in self._units.values():
            unit.launch()

    async def close(self, *, stop_process: bool) -> None:
        """End supervision; stop the processes only if asked (else they are adopted later)."""
        await asyncio.gather(*(u.close(stop_process=stop_process) for u in self._units.values()))

    def statuses(self) -> list[NodeHostStatus]:
        """Every node host, by name."""
        return [self._units[n].status() for n in sorted(self._units)]

    def owns_pid(self, pid: int) -> bool:
        """Is ``pid`` one of the node hosts?"""
        return any(u.owns_pid(pid) for u in self._units.values())

    # --- commands ------------------------------------------------------------------------

    async def handle(self, request: NodeRequest) -> ControlReply:
        """Answer one node request.

        Raises:
            UsageError: A bad name or URL, or an unknown node (the caller makes it an
                ``ok:false`` reply).
        """
        if isinstance(request, NodeList):
            return ControlReply(ok=True, nodes=self.statuses())
        if isinstance(request, NodeStop):
            return await self._stop(request)
        return await self._start(request)

    async def _start(self, request: NodeStart) -> ControlReply:
        name = parse_node_name(request.name)
        unit = self._units.get(name)
        old = unit.definition if unit is not None else None
        if request.url is not None:
            url = check_node_url(request.url)
        elif old is not None:
            url = old.url
        else:
            raise UsageError(f"no node host {name} yet: give --url ws://... to define it")
        display_name = request.display_name
        if display_name is None and old is not None:
            display_name = old.display_name
        definition = NodeDefinition(
            url=url, display_name=display_name, desired=old.desired if old else False
        )
        if unit is None:
            unit = self._make(name, definition)
            self._units[name] = unit
            unit.launch()
            restart = False
        else:
            running = unit.state in (ProcessState.STARTING, ProcessState.RUNNING)
            restart = unit.redefine(definition) and running
        self._persist()
        result = await (unit.restart() if restart else unit.start())
        self._persist()
        return ControlReply(ok=result is None, error=result, nodes=[unit.status()])

    async def _stop(self, request: NodeStop) -> ControlReply:
        name = parse_node_name(request.name)
        unit = self._units.get(name)
        if unit is None:
            raise UsageError(f"no node host {name} (see: openclaw node status)")
        result = await unit.stop()
        status = unit.status()
        if result is None and request.remove:
            unit.discard()
            del self._units[name]
            self.files.remove_pid(name)
        self._persist()
        return ControlReply(ok=result is None, error=result, nodes=[status])

    # --- helpers -------------------------------------------------------------------------

    def _make(self, name: str, definition: NodeDefinition) -> NodeUnit:
        return NodeUnit(
            name,
            definition,
            self.files,
            home=self._home,
            policy=self._policy,
            probe_timeout=self._probe_timeout,
            persist=self._persist,
            base_env=self._base_env,
        )

    def _persist(self) -> None:
        stored = {name: unit.stored() for name, unit in self._units.items()}
        try:
            save_nodes(self.files.definitions_path, stored)
        except OSError as err:
            _LOG.error("cannot write %s: %s", self.files.definitions_path, err)
