"""The built-in offline backend: works with no model and no key.

It understands two direct tool requests and otherwise answers plainly:

- ``/nodes``: the connected, approved nodes and their commands, then any connected node
  whose surface still awaits an operator's approval;
- ``/node <node> <command> [json]``: run a node command (node by id, display name, quoted
  if it has spaces, or a unique id prefix of 6+ characters; params a JSON object) and
  report its result. A node awaiting approval is found too, so the answer is the gateway's
  own refusal ("awaiting operator approval ... openclaw nodes approve <id>"), not "no such
  node"; nothing is sent to it.

Anything else gets a short plain answer saying what it is and what it can do. Replies are
streamed in pieces so clients see the same deltas a model would give.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .backend import RunSink, Turn
from .tools import ToolBox

# Streamed in pieces of about this many characters, cut after whitespace: deltas as a
# model would give them, without one event per word.
_PIECES = re.compile(r".{1,48}(?:\s+|$)|\S+\s*", re.DOTALL)
MAX_RESULT_CHARS = 4000


class OfflineBackend:
    """Answers without a model (module docstring)."""

    name = "offline"

    async def reply(self, turn: Turn, tools: ToolBox, sink: RunSink) -> str:
        """Serve ``/nodes`` and ``/node``, or give the plain answer."""
        text = turn.message.strip()
        head, _, rest = text.partition(" ")
        if head == "/nodes":
            answer = _list_nodes(tools)
        elif head == "/node":
            answer = await _run_node_command(rest.strip(), tools, sink)
        else:
            answer = (
                "I am the offline agent of this gateway (no model is configured), so I can "
                "only run node commands: /nodes lists them, /node <node> <command> [json] "
                f"runs one. You said: {text}"
            )
        for piece in _PIECES.findall(answer):
            sink.delta(piece)
        return answer


def _split_node_ref(args: str) -> tuple[str, str]:
    """The node reference (``"Build box"`` may be quoted) and what follows it."""
    if args[:1] in ('"', "'"):
        end = args.find(args[0], 1)
        if end > 0:
            return args[1:end].strip(), args[end + 1 :]
    ref, _, rest = args.partition(" ")
    return ref, rest


def _list_nodes(tools: ToolBox) -> str:
    if not tools.nodes and not tools.unapproved:
        return "No nodes are connected."
    lines = ["Connected nodes:"]
    for node in tools.nodes:
        commands = ", ".join(node.commands) or "(no commands)"
        lines.append(f"- {node.name} ({node.node_id[:12]}): {commands}")
    for node in tools.unapproved:
        lines.append(f"- {node.name} ({node.node_id[:12]}): awaiting operator approval")
    return "\n".join(lines)


async def _run_node_command(args: str, tools: ToolBox, sink: RunSink) -> str:
    ref, rest = _split_node_ref(args)
    command, _, raw_params = rest.strip().partition(" ")
    if not ref or not command:
        return "Usage: /node <node> <command> [json params]"
    node = tools.find_node(ref)
    if node is None:
        return f"No connected node matches {ref!r}. Try /nodes."
    params: Any = {}
    if raw_params.strip():
        try:
            params = json.loads(raw_params)
        except ValueError as err:
            return f"The params are not valid JSON ({err})."
        if not isinstance(params, dict):
            return "The params must be a JSON object."
    call_id = f"call_{command}"
    sink.tool_start(call_id, command, {"nodeId": node.node_id, "params": params})
    ok, result = await tools.call(node.node_id, command, params)
    sink.tool_result(call_id, command, result, is_error=not ok)
    if not ok:
        return f"{command} on {node.name} failed: {result['code']}: {result['message']}"
    shown = json.dumps(result, ensure_ascii=False)
    if len(shown) > MAX_RESULT_CHARS:
        shown = shown[:MAX_RESULT_CHARS] + "..."
    return f"{command} on {node.name}: {shown}"
