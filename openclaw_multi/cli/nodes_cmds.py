"""``openclaw nodes [list|approve|reject|remove]``: node command approval, from the CLI.

A node's device pairing (``openclaw devices``) lets it connect; its declared commands wait
for an operator here (docs/protocol.md, Nodes). Every subcommand connects to the profile's
gateway the way ``openclaw devices`` does (as this CLI's own device, falling back to the
shared secret; same target options) and calls the reference's methods: ``node.list``,
``node.pair.approve|reject|remove``. Approving a surface that declares ``system.run`` or
other shell/file commands takes ``operator.admin``, which the CLI asks for. ``--json``
prints the method's payload exactly as sent.
"""

from __future__ import annotations

import time
from typing import Any

import click

from .context import CliContext
from .devices_cmds import _ago, _decode, _device_call, _table
from .gateway_cmds import ClientArgs, _client_options


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
    raw, _ = _device_call(obj, client, "node.list")
    if client.as_json:
        click.echo(raw)
    else:
        click.echo(format_list(_decode(raw), now_ms=int(time.time() * 1000)))


@nodes.command("approve")
@click.argument("request_id")
@_client_options
@click.pass_obj
def approve_cmd(obj: CliContext, request_id: str, client: ClientArgs) -> None:
    """Approve the pending command surface REQUEST_ID (from `nodes list`)."""
    raw, _ = _device_call(obj, client, "node.pair.approve", {"requestId": request_id})
    payload = _decode(raw)
    if client.as_json:
        click.echo(raw)
        return
    node = payload.get("node")
    node = node if isinstance(node, dict) else {}
    commands = ",".join(node.get("commands") or []) or "no commands"
    click.echo(f"Approved {node.get('nodeId', 'ok')} ({commands})")


@nodes.command("reject")
@click.argument("request_id")
@_client_options
@click.pass_obj
def reject_cmd(obj: CliContext, request_id: str, client: ClientArgs) -> None:
    """Reject the pending command surface REQUEST_ID (the node asks again on reconnect)."""
    raw, _ = _device_call(obj, client, "node.pair.reject", {"requestId": request_id})
    _report(raw, client, "Rejected")


@nodes.command("remove")
@click.argument("node_id")
@_client_options
@click.pass_obj
def remove_cmd(obj: CliContext, node_id: str, client: ClientArgs) -> None:
    """Unpair NODE_ID as a node: approval gone, node role revoked, its connection closed."""
    raw, _ = _device_call(obj, client, "node.pair.remove", {"nodeId": node_id})
    _report(raw, client, "Removed")


def _report(raw: bytes, client: ClientArgs, verb: str) -> None:
    if client.as_json:
        click.echo(raw)
        return
    click.echo(f"{verb} {_decode(raw).get('nodeId') or 'ok'}")


# -- pure formatting (tested without a gateway) -------------------------------------------------
def format_list(payload: dict[str, Any], *, now_ms: int) -> str:
    """``nodes list`` for people: one row per node, then what awaits approval."""
    entries = [n for n in payload.get("nodes") or [] if isinstance(n, dict)]
    if not entries:
        return "No nodes."
    out = [f"Nodes ({len(entries)})"]
    out += _table(
        ["NODE", "PLATFORM", "STATE", "CONNECTED", "COMMANDS"],
        [
            [
                _label(n),
                str(n.get("platform") or "-"),
                str(n.get("approvalState") or "-"),
                "yes" if n.get("connected") else _ago(now_ms, n.get("lastDisconnectedAtMs")),
                ",".join(n.get("commands") or []) or "-",
            ]
            for n in entries
        ],
    )
    pending = [n for n in entries if n.get("pendingRequestId")]
    if pending:
        out.append(f"Awaiting approval ({len(pending)})")
        out += _table(
            ["REQUEST", "NODE", "COMMANDS"],
            [
                [
                    str(n["pendingRequestId"]),
                    _label(n),
                    ",".join(n.get("pendingDeclaredCommands") or []) or "-",
                ]
                for n in pending
            ],
        )
        out.append("Approve with: openclaw nodes approve <REQUEST>")
    return "\n".join(out)


def _label(entry: dict[str, Any]) -> str:
    name = entry.get("displayName")
    node_id = str(entry.get("nodeId", ""))
    return f"{node_id} ({name})" if name else node_id


__all__ = ["format_list", "nodes"]
