"""What ``openclaw devices`` and ``openclaw nodes`` share: the device connect and call, and
how an answer is shown.

Both connect to the profile's gateway (the same target rules and options as ``openclaw
gateway call``) *as a device*: the connect carries this CLI's own Ed25519 identity
(``<state>/identity/cli-device.json``, created on first use, 0600) and the gateway's device
token is kept for next time (``cli-device-auth.json``, 0600). When the gateway wants that
identity approved first (local auto-approval off), a shared secret still gets an operator in
without a device. ``--json`` prints the method's payload exactly as sent; otherwise a
command prints one line, or a table (:func:`table`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click
import msgspec

from .. import runtime
from ..errors import GatewayCallFailed, GatewayUnreachable
from ..profiles.paths import resolve_paths
from .context import CliContext
from .gateway_cmds import ClientArgs, _client_options, human_duration

__all__ = [
    "SCOPES",
    "ago",
    "call_and_report",
    "decode_object",
    "device_call",
    "id_command",
    "labelled",
    "show_list",
    "table",
]

SCOPES = ("operator.read", "operator.write", "operator.admin", "operator.pairing")
"""What the CLI asks for: approving a device needs the scopes it grants (admin covers all)."""


def device_call(obj: CliContext, client: ClientArgs, method: str, params: Any = None) -> bytes:
    """Connect as this CLI's device, call ``method``, return its raw payload.

    Raises:
        GatewayUnreachable: No answer within ``--timeout``, or no connection.
        GatewayCallFailed: The gateway refused the connect or answered an error.
    """
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

    return runtime.run(work())


def _detail_code(err: GatewayCallFailed) -> object:
    return err.details.get("code") if isinstance(err.details, dict) else None


def decode_object(raw: bytes) -> dict[str, Any]:
    """A payload as a dict ({} when it is not an object)."""
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


def show_list(
    obj: CliContext,
    client: ClientArgs,
    method: str,
    render: Callable[..., str],
) -> None:
    """Call a list ``method``; print its payload (``--json``) or ``render(payload, now_ms=)``."""
    raw = device_call(obj, client, method)
    if client.as_json:
        click.echo(raw)
    else:
        click.echo(render(decode_object(raw), now_ms=int(time.time() * 1000)))


def call_and_report(
    obj: CliContext,
    client: ClientArgs,
    method: str,
    params: dict[str, Any],
    line: Callable[[dict[str, Any]], str],
) -> None:
    """Call ``method``; print its payload (``--json``) or the one ``line`` made from it."""
    raw = device_call(obj, client, method, params)
    if client.as_json:
        click.echo(raw)
    else:
        click.echo(line(decode_object(raw)))


def id_command(
    group: click.Group,
    name: str,
    argument: str,
    method: str,
    line: Callable[[dict[str, Any]], str],
    help_text: str,
) -> None:
    """Add ``group name ARGUMENT [client options]``: call ``method`` with the argument as
    its one param (``request_id`` is sent as ``requestId``) and print ``line`` of the answer.
    """
    head, *rest = argument.split("_")
    key = head + "".join(word.capitalize() for word in rest)

    @group.command(name, help=help_text)
    @click.argument(argument)
    @_client_options
    @click.pass_obj
    def command(obj: CliContext, /, client: ClientArgs, **given: str) -> None:
        call_and_report(obj, client, method, {key: given[argument]}, line)


# -- pure formatting (tested without a gateway) -------------------------------------------------
def ago(now_ms: int, ts: object) -> str:
    """``5m ago`` for a millisecond timestamp; ``-`` when there is none."""
    if not isinstance(ts, int | float):
        return "-"
    return human_duration(max(0.0, (now_ms - ts) / 1000)) + " ago"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, a header line first."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def labelled(entry: dict[str, Any], id_key: str) -> str:
    """``<id> (<displayName>)``, or the id alone when there is no name."""
    name = entry.get("displayName")
    ident = str(entry.get(id_key, ""))
    return f"{ident} ({name})" if name else ident
