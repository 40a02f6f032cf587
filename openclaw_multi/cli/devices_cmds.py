"""``openclaw devices [self|list|approve|reject|remove|revoke]``: pairing, from the CLI.

Every subcommand but ``self`` connects to the profile's gateway as this CLI's own device
(:mod:`.pairing_view`, shared with ``openclaw nodes``). The methods are the reference's:
``device.pair.list|approve|reject|remove`` and ``device.token.revoke``, scope
``operator.pairing``. ``--json`` prints the method's payload exactly as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import msgspec

from ..profiles.paths import resolve_paths
from .context import CliContext, profile_options
from .gateway_cmds import ClientArgs, _client_options
from .pairing_view import ago, call_and_report, id_command, labelled, show_list, table


@click.group("devices", invoke_without_command=True)
@click.pass_context
def devices(ctx: click.Context) -> None:
    """Pair devices (apps, node hosts, other CLIs) with the profile's gateway."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(self_cmd)


@devices.command("self")
@profile_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def self_cmd(obj: CliContext, as_json: bool = False) -> None:
    """Show this CLI's own device id (created on first use)."""
    from ..client.identity import identity_dir, load_or_create_identity

    name, explicit = obj.profile()
    paths = resolve_paths(name, obj.env, explicit=explicit)
    identity = load_or_create_identity(identity_dir(paths.state_dir))
    info = {
        "deviceId": identity.device_id,
        "publicKey": identity.public_key,
        "path": str(identity.path),
    }
    if as_json:
        click.echo(msgspec.json.encode(info))
        return
    click.echo(f"device id:  {identity.device_id}\npublic key: {identity.public_key}")
    click.echo(f"stored in:  {identity.path}")


@devices.command("list")
@_client_options
@click.pass_obj
def list_cmd(obj: CliContext, client: ClientArgs) -> None:
    """List pending pairing requests and paired devices."""
    show_list(obj, client, "device.pair.list", format_list)


def _done(verb: str, nest: str | None = None) -> Callable[[dict[str, Any]], str]:
    def line(payload: dict[str, Any]) -> str:
        holder = payload.get(nest) if nest else payload
        device_id = holder.get("deviceId") if isinstance(holder, dict) else None
        return f"{verb} {device_id or 'ok'}"

    return line


id_command(
    devices,
    "approve",
    "request_id",
    "device.pair.approve",
    _done("Approved", "device"),
    "Approve the pending request REQUEST_ID (from `devices list`).",
)
id_command(
    devices,
    "reject",
    "request_id",
    "device.pair.reject",
    _done("Rejected"),
    "Reject the pending request REQUEST_ID.",
)
id_command(
    devices,
    "remove",
    "device_id",
    "device.pair.remove",
    _done("Removed"),
    "Unpair DEVICE_ID: its tokens stop working and its connections are closed.",
)


@devices.command("revoke")
@click.argument("device_id")
@click.option("--role", default="operator", show_default=True, help="Which token to revoke.")
@_client_options
@click.pass_obj
def revoke_cmd(obj: CliContext, device_id: str, role: str, client: ClientArgs) -> None:
    """Revoke DEVICE_ID's device token (it stays paired; a shared secret gets a new token)."""
    params = {"deviceId": device_id, "role": role}
    call_and_report(obj, client, "device.token.revoke", params, _done("Revoked"))


# -- pure formatting (tested without a gateway) -------------------------------------------------
def format_list(payload: dict[str, Any], *, now_ms: int) -> str:
    """``devices list`` for people: pending requests first (they need action), then paired."""
    pending = [p for p in payload.get("pending") or [] if isinstance(p, dict)]
    paired = [p for p in payload.get("paired") or [] if isinstance(p, dict)]
    out: list[str] = [f"Pending ({len(pending)})"]
    if pending:
        out += table(
            ["REQUEST", "DEVICE", "CLIENT", "ROLE", "SCOPES", "IP", "ASKED"],
            [
                [
                    str(p.get("requestId", "")),
                    labelled(p, "deviceId"),
                    f"{p.get('clientId', '-')}/{p.get('platform', '-')}",
                    str(p.get("role", "-")),
                    ",".join(p.get("scopes") or []) or "-",
                    str(p.get("remoteIp") or "-"),
                    ago(now_ms, p.get("ts")),
                ]
                for p in pending
            ],
        )
        out.append("Approve with: openclaw devices approve <REQUEST>")
    out.append(f"Paired ({len(paired)})")
    if paired:
        out += table(
            ["DEVICE", "CLIENT", "ROLES", "SCOPES", "LAST SEEN", "CONNECTED"],
            [
                [
                    labelled(p, "deviceId"),
                    f"{p.get('clientId', '-')}/{p.get('platform', '-')}",
                    ",".join(p.get("roles") or []) or "-",
                    ",".join(p.get("scopes") or []) or "-",
                    ago(now_ms, p.get("lastSeenAtMs")),
                    "yes" if p.get("connected") else "no",
                ]
                for p in paired
            ],
        )
    return "\n".join(out)


__all__ = ["devices", "format_list"]
