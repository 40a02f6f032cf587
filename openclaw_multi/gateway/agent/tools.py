"""Node commands offered to a backend as tools.

The tool list is taken once per run from the nodes that are connected and whose command
surface an operator approved (node_pairing.py): one tool per command both declared and
approved. A tool's name is the command with dots as
underscores (``system_run``); when two nodes declare the same command each gets the node
id's first 8 characters appended (``system_run__1a2b3c4d``), so names stay unique and within
OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``.

A call goes through :meth:`NodeRegistry.invoke` (the path ``node.invoke`` uses). Whatever
goes wrong (node gone, timeout, refusal, bad params) comes back as an error *result* for the
model, never as an exception that would end the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..methods import MethodError

if TYPE_CHECKING:
    from ..nodes import NodeRegistry

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64
# Parameter schemas for the commands whose shapes are known (docs/protocol.md, Nodes);
# other commands take any object, passed through to the node as-is.
_KNOWN_SCHEMAS: dict[str, dict[str, Any]] = {
    "system.run": {
        "type": "object",
        "properties": {
            "command": {
                "type": "array",
                "items": {"type": "string"},
                "description": "argv: the program, then its arguments",
            },
            "cwd": {"type": "string"},
            "timeoutMs": {"type": "integer"},
        },
        "required": ["command"],
    },
    "system.which": {
        "type": "object",
        "properties": {"bins": {"type": "array", "items": {"type": "string"}}},
        "required": ["bins"],
    },
}
_ANY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": True}


@dataclass(frozen=True, slots=True)
class NodeTool:
    """One command of one node, as a backend sees it."""

    name: str
    node_id: str
    node_name: str
    command: str

    def openai_schema(self) -> dict[str, Any]:
        """This tool in the chat-completions ``tools`` list."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": (
                    f"Run the command `{self.command}` on node {self.node_name} "
                    f"({self.node_id[:12]}). Arguments are the command's params."
                ),
                "parameters": _KNOWN_SCHEMAS.get(self.command, _ANY_OBJECT),
            },
        }


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A connected, approved node."""

    node_id: str
    name: str
    commands: tuple[str, ...]


class ToolBox:
    """The node commands one run may call, and the call itself."""

    def __init__(self, nodes: NodeRegistry, *, session_key: str, timeout_ms: int) -> None:
        self._nodes = nodes
        self._session_key = session_key
        self._timeout_ms = timeout_ms
        self.nodes = _approved_nodes(nodes)
        # Connected but no approved surface yet: never offered as tools, but a direct
        # request naming one goes to invoke(), whose refusal says it awaits approval.
        self.unapproved = _unapproved_nodes(nodes)
        self.tools = _name_tools(self.nodes)
        self._by_name = {tool.name: tool for tool in self.tools}

    def tool(self, name: str) -> NodeTool | None:
        """The tool called ``name``, if offered to this run."""
        return self._by_name.get(name)

    def find_node(self, ref: str) -> NodeInfo | None:
        """A node by id, display name (any case) or a unique id prefix of 6+ characters.

        Approved nodes first; then connected nodes still awaiting approval, so that a
        request naming one is refused for that reason rather than "no such node".
        """
        return _match(self.nodes, ref) or _match(self.unapproved, ref)

    async def call(self, node_id: str, command: str, params: Any) -> tuple[bool, Any]:
        """Invoke ``command`` on the node: ``(True, payload)`` or ``(False, {code, message})``."""
        try:
            result = await self._nodes.invoke(
                node_id,
                command,
                params,
                timeout_ms=self._timeout_ms,
                session_key=self._session_key,
            )
        except MethodError as err:
            error: dict[str, Any] = {"code": err.code, "message": err.message}
            details = err.details if isinstance(err.details, dict) else {}
            node_error = details.get("nodeError")
            if isinstance(node_error, dict) and node_error.get("code"):
                error["nodeError"] = node_error
            return False, error
        return True, result.get("payload")


def _match(nodes: list[NodeInfo], ref: str) -> NodeInfo | None:
    ref = ref.strip()
    lowered = ref.lower()
    for node in nodes:
        if node.node_id == ref or node.name.lower() == lowered:
            return node
    if len(ref) >= 6:
        matches = [n for n in nodes if n.node_id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
    return None


def _unapproved_nodes(nodes: NodeRegistry) -> list[NodeInfo]:
    found = []
    for node_id, conn in nodes.connected.items():
        if conn.params is None or nodes.pairing.approved(node_id) is not None:
            continue
        name = conn.params.client.display_name or node_id[:12]
        found.append(NodeInfo(node_id, name, ()))
    found.sort(key=lambda n: (n.name.lower(), n.node_id))
    return found


def _approved_nodes(nodes: NodeRegistry) -> list[NodeInfo]:
    found = []
    for node_id, conn in nodes.connected.items():
        approved = nodes.pairing.approved(node_id)
        if approved is None or conn.params is None:
            continue  # its surface awaits an operator: nothing of it is offered
        allowed = set(approved.commands)
        commands = tuple(sorted(c for c in set(conn.params.commands) if c in allowed))
        name = approved.display_name or conn.params.client.display_name or node_id[:12]
        found.append(NodeInfo(node_id, name, commands))
    found.sort(key=lambda n: (n.name.lower(), n.node_id))
    return found


def _name_tools(nodes: list[NodeInfo]) -> list[NodeTool]:
    offered: dict[str, int] = {}
    for node in nodes:
        for command in node.commands:
            offered[command] = offered.get(command, 0) + 1
    tools = []
    for node in nodes:
        for command in node.commands:
            base = _UNSAFE.sub("_", command)
            name = base if offered[command] == 1 else f"{base[: MAX_NAME - 10]}__{node.node_id[:8]}"
            tools.append(NodeTool(name[:MAX_NAME], node.node_id, node.name, command))
    return tools
