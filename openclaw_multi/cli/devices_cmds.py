"""``openclaw devices [self|list|approve|reject|remove|revoke]``: pairing, from the CLI.

Every subcommand but ``self`` connects to the profile's gateway (the same target rules and
options as ``openclaw gateway call``) *as a device*: the connect carries this CLI's own
Ed25519 identity (``<state>/identity/cli-device.json``, created on first use, 0600) and the
gateway's device token is kept for next time (``cli-device-auth.json``, 0600). The methods
are the reference's: ``device.pair.list|approve|reject|remove`` and ``device.token.revoke``,
scope ``operator.pairing``. ``--json`` prints the method's payload exactly as sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
import msgspec

from .. import runtime
from ..client.target import Target
from ..errors import GatewayCallFailed, GatewayUnreachable
from ..profiles.paths import resolve_paths
from .context import CliContext, profile_options
from .gateway_cmds import ClientArgs, _client_options, human_duration

SCOPES = ("operator.read", "operator.write", "operator.admin", "operator.pairing")
"""What the CLI asks for: approving a device needs the scopes it grants (admin covers all)."""


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


def _device_call(
    obj: CliContext, client: ClientArgs, method: str, params: Any = None
) -> tuple[bytes, Target]:
    """Connect as this CLI's device, call ``method``, return its raw payload."""
    target = client.target(obj)
    name, explicit = obj.profile()
    paths = resolve_paths(name, obj.env, explicit=explicit)

    async def work() -> bytes:
        from ..client.gateway import GatewayClient
        from ..client.identity import DeviceAuthStore, identity_dir, load_or_create_identity

        directory = identity_dir(paths.state_dir)
        identity = load_or_create_identity(directory)

        async def open_link(as_device: bool) -> GatewayClient:
            return await GatewayClient.connect(
                target.url,
                token=target.token,
                password=target.password,
                scopes=SCOPES,
                timeout=client.timeout,
                tls_fingerprint=target.tls_fingerprint,
                device=identity if as_device else None,
                device_auth=DeviceAuthStore(directory, identity.device_id) if as_device else None,
            )

        try:
            async with asyncio.timeout(client.timeout):
                try:
                    gateway = await open_link(True)
                except GatewayCallFailed as err:
                    # With local auto-approval off, this CLI's own key waits for approval
                    # too; a shared secret still gets an operator in without a device.
                    shared = target.token or target.password
                    if not shared or _detail_code(err) != "PAIRING_REQUIRED":
                        raise
                    gateway = await open_link(False)
                async with gateway:
                    return await gateway.call_raw(method, params, timeout=client.timeout)
        except TimeoutError:
            raise GatewayUnreachable(
                f"gateway at {target.url} did not answer within {client.timeout:g}s"
            ) from None

    return runtime.run(work()), target


def _detail_code(err: GatewayCallFailed) -> object:
    return err.details.get("code") if isinstance(err.details, dict) else None


def _decode(raw: bytes) -> dict[str, Any]:
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


@devices.command("list")
@_client_options
@click.pass_obj
def list_cmd(obj: CliContext, client: ClientArgs) -> None:
    """List pending pairing requests and paired devices."""
    raw, _ = _device_call(obj, client, "device.pair.list")
    if client.as_json:
        click.echo(raw)
    else:
        click.echo(format_list(_decode(raw), now_ms=int(time.time() * 1000)))


@devices.command("approve")
@click.argument("request_id")
@_client_options
@click.pass_obj
def approve_cmd(obj: CliContext, request_id: str, client: ClientArgs) -> None:
    """Approve the pending request REQUEST_ID (from `devices list`)."""
    raw, _ = _device_call(obj, client, "device.pair.approve", {"requestId": request_id})
    _report(raw, client, "Approved", "device", "deviceId")


@devices.command("reject")
@click.argument("request_id")
@_client_options
@click.pass_obj
def reject_cmd(obj: CliContext, request_id: str, client: ClientArgs) -> None:
    """Reject the pending request REQUEST_ID."""
    raw, _ = _device_call(obj, client, "device.pair.reject", {"requestId": request_id})
    _report(raw, client, "Rejected", None, "deviceId")


@devices.command("remove")
@click.argument("device_id")
@_client_options
@click.pass_obj
def remove_cmd(obj: CliContext, device_id: str, client: ClientArgs) -> None:
    """Unpair DEVICE_ID: its tokens stop working and its connections are closed."""
    raw, _ = _device_call(obj, client, "device.pair.remove", {"deviceId": device_id})
    _report(raw, client, "Removed", None, "deviceId")


@devices.command("revoke")
@click.argument("device_id")
@click.option("--role", default="operator", show_default=True, help="Which token to revoke.")
@_client_options
@click.pass_obj
def revoke_cmd(obj: CliContext, device_id: str, role: str, client: ClientArgs) -> None:
    """Revoke DEVICE_ID's device token (it stays paired; a shared secret gets a new token)."""
    params = {"deviceId": device_id, "role": role}
    raw, _ = _device_call(obj, client, "device.token.revoke", params)
    _report(raw, client, "Revoked", None, "deviceId")


def _report(raw: bytes, client: ClientArgs, verb: str, nest: str | None, key: str) -> None:
    if client.as_json:
        click.echo(raw)
        return
    payload = _decode(raw)
    holder = payload.get(nest) if nest else payload
    device_id = holder.get(key) if isinstance(holder, dict) else None
    click.echo(f"{verb} {device_id or 'ok'}")


# -- pure formatting (tested without a gateway) -------------------------------------------------
def _ago(now_ms: int, ts: object) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return human_duration(max(0.0, (now_ms - ts) / 1000)) + " ago"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def format_list(payload: dict[str, Any], *, now_ms: int) -> str:
    """``devices list`` for people: pending requests first (they need action), then paired."""
    pending = [p for p in payload.get("pending") or [] if isinstance(p, dict)]
    paired = [p for p in payload.get("paired") or [] if isinstance(p, dict)]
    out: list[str] = [f"Pending ({len(pending)})"]
    if pending:
        out += _table(
            ["REQUEST", "DEVICE", "CLIENT", "ROLE", "SCOPES", "IP", "ASKED"],
            [
                [
                    str(p.get("requestId", "")),
                    _device_label(p),
                    f"{p.get('clientId', '-')}/{p.get('platform', '-')}",
                    str(p.get("role", "-")),
                    ",".join(p.get("scopes") or []) or "-",
                    str(p.get("remoteIp") or "-"),
                    _ago(now_ms, p.get("ts")),
                ]
                for p in pending
            ],
        )
        out.append("Approve with: openclaw devices approve <REQUEST>")
    out.append(f"Paired ({len(paired)})")
    if paired:
        out += _table(
            ["DEVICE", "CLIENT", "ROLES", "SCOPES", "LAST SEEN", "CONNECTED"],
            [
                [
                    _device_label(p),
                    f"{p.get('clientId', '-')}/{p.get('platform', '-')}",
                    ",".join(p.get("roles") or []) or "-",
                    ",".join(p.get("scopes") or []) or "-",
                    _ago(now_ms, p.get("lastSeenAtMs")),
                    "yes" if p.get("connected") else "no",
                ]
                for p in paired
            ],
        )
    return "\n".join(out)


def _device_label(entry: dict[str, Any]) -> str:
    name = entry.get("displayName")
    device_id = str(entry.get("deviceId", ""))
    return f"{device_id} ({name})" if name else device_id


__all__ = ["devices", "format_list"]
