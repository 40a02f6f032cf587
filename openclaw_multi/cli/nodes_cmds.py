"""``openclaw nodes [list|approve|reject|remove]``: node command approval, from the CLI.

A node's device pairing (``openclaw devices``) lets it connect; its declared commands wait
for an operator here (docs/protocol.md, Nodes). Every subcommand connects to the profile's
gateway the way ``openclaw devices`` does (:mod:`.pairing_view`: as this CLI's own device,
falling back to the shared secret; same target options) and calls the reference's methods:
``node.list``, ``node.pair.approve|reject|remove``. Approving a surface that declares
``system.run`` or other shell/file commands takes ``operator.admin``, which the CLI asks
for. ``--json`` prints the method's payload exactly as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .context import CliContext
from .gateway_cmds import ClientArgs, _client_options
from .pairing_view import ago, id_command, labelled, show_list, table


@click.group("nodes", invoke_without_command=True)
@click.pass_context
def nodes(ctx: click.Context) -> None:
    """Approve what nodes (node hosts, apps) may be asked to run."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


@nodes.command("list")
@_client_options
@click.pass_obj
def list_cmd(obj: CliContext, client: ClientArgs) -> None:
    """List known nodes: approval state, connection, pending requests."""
    show_list(obj, client, "node.list", format_list)


def _approved(payload: dict[str, Any]) -> str:
    node = payload.get("node")
    node = node if isinstance(node, dict) else {}
    commands = ",".join(node.get("commands") or []) or "no commands"
    return f"Approved {node.get('nodeId', 'ok')} ({commands})"


def _done(verb: str) -> Callable[[dict[str, Any]], str]:
    return lambda payload: f"{verb} {payload.get('nodeId') or 'ok'}"


id_command(
    nodes,
    "approve",
    "request_id",
    "node.pair.approve",
    _approved,
    "Approve the pending command surface REQUEST_ID (from `nodes list`).",
)
id_command(
    nodes,
    "reject",
    "request_id",
    "node.pair.reject",
    _done("Rejected"),
    "Reject the pending command surface REQUEST_ID (the node asks again on reconnect).",
)
id_command(
    nodes,
    "remove",
    "node_id",
    "node.pair.remove",
    _done("Removed"),
    "Unpair NODE_ID as a node: approval gone, node role revoked, its connection closed.",
)


# -- pure formatting (tested without a gateway) -------------------------------------------------
def format_list(payload: dict[str, Any], *, now_ms: int) -> str:
    """``nodes list`` for people: one row per node, then what awaits approval."""
    entries = [n for n in payload.get("nodes") or [] if isinstance(n, dict)]
    if not entries:
        return "No nodes."
    out = [f"Nodes ({len(entries)})"]
    out += table(
        ["NODE", "PLATFORM", "STATE", "CONNECTED", "COMMANDS"],
        [
            [
                labelled(n, "nodeId"),
                str(n.get("platform") or "-"),
                str(n.get("approvalState") or "-"),
                "yes" if n.get("connected") else ago(now_ms, n.get("lastDisconnectedAtMs")),
                ",".join(n.get("commands") or []) or "-",
            ]
            for n in entries
        ],
    )
    pending = [n for n in entries if n.get("pendingRequestId")]
    if pending:
        out.append(f"Awaiting approval ({len(pending)})")
        out += table(
            ["REQUEST", "NODE", "COMMANDS"],
            [
                [
                    str(n["pendingRequestId"]),
                    labelled(n, "nodeId"),
                    ",".join(n.get("pendingDeclaredCommands") or []) or "-",
                ]
                for n in pending
            ],
        )
        out.append("Approve with: openclaw nodes approve <REQUEST>")
    return "\n".join(out)


__all__ = ["format_list", "nodes"]
