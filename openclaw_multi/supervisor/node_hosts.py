"""All supervised node hosts of one home: definitions, units, and the ``node-*`` commands.

The supervisor holds one :class:`NodeHosts`, a :class:`~.defined.DefinedUnits` like
:class:`~.tunnels.Tunnels`: at start it loads ``nodes.json``, adopts node hosts an earlier
supervisor left running, and starts the ones that should run. ``node-start`` defines or
updates one and answers once it is up (or failed); ``node-stop`` answers once it is gone;
``node-list`` reports them all. Every change to a definition or a desired state is saved at
once.
"""

from __future__ import annotations

from pathlib import Path

from openclaw_multi.errors import UsageError
from openclaw_multi.protocol.control import (
    ControlReply,
    NodeHostStatus,
    NodeList,
    NodeStart,
    NodeStop,
)

from .defined import DefinedUnits
from .node_defs import (
    NodeDefinition,
    NodeFiles,
    check_node_url,
    load_nodes,
    parse_node_name,
    save_nodes,
)
from .node_unit import NodeUnit

__all__ = ["NodeHosts", "NodeRequest"]

NodeRequest = NodeStart | NodeStop | NodeList


class NodeHosts(DefinedUnits[NodeUnit, NodeDefinition, NodeFiles, NodeHostStatus]):
    """The node hosts of one supervisor directory."""

    noun = "node host"
    list_hint = "openclaw node status"

    async def handle(self, request: NodeRequest) -> ControlReply:
        """Answer one node request.

        Raises:
            UsageError: A bad name or URL, or an unknown node (the caller makes it an
                ``ok:false`` reply).
        """
        if isinstance(request, NodeList):
            return ControlReply(ok=True, nodes=self.statuses())
        if isinstance(request, NodeStop):
            return await self._stop(parse_node_name(request.name), remove=request.remove)
        name = parse_node_name(request.name)
        old = self.definition_of(name)
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
        return await self._apply(name, definition)

    # --- the hooks -------------------------------------------------------------------------

    def _load(self) -> dict[str, NodeDefinition]:
        return load_nodes(self.files.definitions_path)

    def _save(self, definitions: dict[str, NodeDefinition]) -> None:
        save_nodes(self.files.definitions_path, definitions)

    def _files(self, directory: Path) -> NodeFiles:
        return NodeFiles(directory)

    def _make(self, name: str, definition: NodeDefinition) -> NodeUnit:
        return NodeUnit(name, definition, self.files, self._settings, self._persist)

    def _reply(self, ok: bool, error: str | None, statuses: list[NodeHostStatus]) -> ControlReply:
        return ControlReply(ok=ok, error=error, nodes=statuses)
