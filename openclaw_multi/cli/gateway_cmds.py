"""``openclaw gateway run|health|status|call`` and the top-level ``openclaw health``.

``run`` hosts a gateway in this process (foreground). The others connect with
:class:`~openclaw_multi.client.gateway.GatewayClient` to the gateway chosen by
:func:`~openclaw_multi.client.target.resolve_target`, make one call, print, and exit.
``--json`` prints exactly the method's payload as the gateway sent it (no re-encoding);
errors are :class:`~openclaw_multi.errors.OpenClawError` and become one ``error:`` line and
an exit code in ``main.py``. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec

from .. import runtime
from ..client.target import Target, resolve_target
from ..errors import GatewayError, GatewayUnreachable, UsageError
from ..gateway.binding import BIND_MODES
from ..protocol.tls import format_fingerprint
from .context import CliContext, profile_options

if TYPE_CHECKING:
    # Imported inside the commands that use them: picows and the gateway server cost
    # ~100 ms of start-up that `openclaw profiles list` and `--help` should not pay.
    from ..client.gateway import GatewayClient

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0


# -- gateway run ------------------------------------------------------------------------------
@click.group("gateway")
def gateway() -> None:
    """Run this profile's gateway, or talk to it."""


@gateway.command("run")
@profile_options
@click.option("--port", metavar="N", help="Port (default: env, gateway.port, derived).")
@click.option("--bind", type=click.Choice(BIND_MODES), help="Where to listen.")
@click.option("--auth", type=click.Choice(("none", "token", "password")), help="Auth mode.")
@click.option("--token", metavar="T", help="Shared token (prefer OPENCLAW_GATEWAY_TOKEN).")
@click.option("--password", metavar="P", help="Shared password (prefer --password-file).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the shared password from this file.",
)
@click.pass_obj
def run(
    obj: CliContext,
    port: str | None,
    bind: str | None,
    auth: str | None,
    token: str | None,
    password: str | None,
    password_file: Path | None,
) -> None:
    """Run the profile's gateway in the foreground until SIGTERM/SIGINT."""
    if password is not None and password_file is not None:
        raise UsageError("use either --password or --password-file, not both")
    from ..gateway.server import run_gateway
    from ..gateway.settings import GatewayOptions

    name, explicit = obj.profile()
    options = GatewayOptions(
        profile=name,
        explicit=explicit,
        port=port,
        bind=bind,
        auth=auth,
        token=token,
        password=password,
        password_file=password_file,
        foreground=True,
    )
    click.get_current_context().exit(run_gateway(options, obj.env))


# -- client commands --------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientArgs:
    """The options every client command shares, parsed once."""

    url: str | None
    token: str | None
    password: str | None
    password_file: Path | None
    timeout: float
    as_json: bool
    tls_fingerprint: str | None = None
    tunnel: str | None = None

    def target(self, obj: CliContext) -> Target:
        """The gateway to talk to and the credentials to send (see docs/cli.md)."""
        if not self.timeout > 0:
            raise UsageError("Invalid --timeout. Use a number of seconds above 0, for example 10.")
        if self.tunnel is not None:  # the remote gateway behind an SSH tunnel (docs/tunnels.md)
            if self.url is not None:
                raise UsageError("give --url or --tunnel, not both")
            from .tunnel_cmds import tunnel_target

            return tunnel_target(
                obj,
                self.tunnel,
                token=self.token,
                password=self.password,
                password_file=self.password_file,
                tls_fingerprint=self.tls_fingerprint,
            )
        return resolve_target(
            obj.profile(),
            obj.env,
            url=self.url,
            token=self.token,
            password=self.password,
            password_file=self.password_file,
            tls_fingerprint=self.tls_fingerprint,
        )


def _client_options(func: Callable[..., T]) -> Callable[..., T]:
    """``--url --token --password --password-file --tls-fingerprint --timeout --json`` (and
    the profile flags), handed to the command as one ``client: ClientArgs``."""

    @functools.wraps(func)
    def command(
        *args: Any,
        url: str | None,
        token: str | None,
        password: str | None,
        password_file: Path | None,
        tls_fingerprint: str | None,
        timeout: float,
        as_json: bool,
        tunnel: str | None,
        **kwargs: Any,
    ) -> T:
        client = ClientArgs(url, token, password, password_file, timeout, as_json, tls_fingerprint)
        client = replace(client, tunnel=tunnel)
        return func(*args, client=client, **kwargs)

    options = [
        profile_options,
        click.option("--url", metavar="WS_URL", help="Gateway URL (needs --token/--password)."),
        click.option("--token", metavar="T", help="Gateway token."),
        click.option("--password", metavar="P", help="Gateway password."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the gateway password from this file.",
        ),
        click.option(
            "--tls-fingerprint",
            metavar="SHA256",
            help="Pin the wss:// gateway's certificate (AA:BB:... or hex).",
        ),
        click.option(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT_S,
            show_default=True,
            metavar="SECONDS",
            help="Give up after this long.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the payload as JSON."),
        click.option(
            "--tunnel",
            metavar="NAME",
            help="The remote gateway behind SSH tunnel NAME (needs --token/--password).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _with_client(
    target: Target, timeout: float, work: Callable[[GatewayClient], Awaitable[T]]
) -> T:
    """Connect, run ``work``, close; ``timeout`` bounds the whole exchange."""

    from ..client.gateway import GatewayClient

    async def main() -> T:
        try:
            async with asyncio.timeout(timeout):
                client = await GatewayClient.connect(
                    target.url,
                    token=target.token,
                    password=target.password,
                    timeout=timeout,
                    tls_fingerprint=target.tls_fingerprint,
                )
                async with client:
                    return await work(client)
        except TimeoutError:
            raise GatewayUnreachable(
                f"gateway at {target.url} did not answer within {timeout:g}s"
            ) from None

    return runtime.run(main())


def _call_timed(
    method: str, params: Any, timeout: float
) -> Callable[[GatewayClient], Awaitable[tuple[bytes, float]]]:
    async def work(client: GatewayClient) -> tuple[bytes, float]:
        started = time.perf_counter()
        raw = await client.call_raw(method, params, timeout=timeout)
        return raw, (time.perf_counter() - started) * 1000

    return work


def _echo_raw(raw: bytes) -> None:
    click.echo(raw)


def _health(obj: CliContext, client: ClientArgs) -> None:
    target = client.target(obj)
    raw, elapsed_ms = _with_client(
        target, client.timeout, _call_timed("health", None, client.timeout)
    )
    payload = _decode_object(raw)
    if client.as_json:
        _echo_raw(raw)
    else:
        click.echo(format_health(payload, elapsed_ms, target))
    if payload.get("ok") is not True:
        raise GatewayError(f"gateway reports unhealthy: {_degraded_reason(payload)}")


@gateway.command("health")
@_client_options
@click.pass_obj
def gateway_health(obj: CliContext, client: ClientArgs) -> None:
    """Ask the gateway for its health (exit 1 unless healthy)."""
    _health(obj, client)


@click.command("health")
@_client_options
@click.pass_obj
def health(obj: CliContext, client: ClientArgs) -> None:
    """Ask the gateway for its health (same as ``gateway health``)."""
    _health(obj, client)


@gateway.command("status")
@_client_options
@click.pass_obj
def status(obj: CliContext, client: ClientArgs) -> None:
    """Show what the gateway reports about itself: pid, version, uptime, connections."""
    target = client.target(obj)
    raw, _ = _with_client(target, client.timeout, _call_timed("status", None, client.timeout))
    if client.as_json:
        _echo_raw(raw)
    else:
        click.echo(format_status(_decode_object(raw), target))


@gateway.command("call")
@click.argument("method")
@click.option("--params", "params_json", metavar="JSON", help="Params: a JSON object or array.")
@_client_options
@click.pass_obj
def call(obj: CliContext, method: str, params_json: str | None, client: ClientArgs) -> None:
    """Call METHOD and print its payload as JSON."""
    params = parse_params(params_json)
    target = client.target(obj)
    raw, _ = _with_client(target, client.timeout, _call_timed(method, params, client.timeout))
    _echo_raw(raw if client.as_json else msgspec.json.format(raw, indent=2))


# -- pure helpers (tested without a gateway) ---------------------------------------------------
def parse_params(text: str | None) -> Any:
    """Parse ``--params``: a JSON object or array, else :class:`UsageError`."""
    if text is None:
        return None
    try:
        value = msgspec.json.decode(text.encode("utf-8", "surrogatepass"))
    except msgspec.DecodeError as err:
        raise UsageError(f"Invalid --params: not JSON ({err})") from None
    if not isinstance(value, dict | list):
        raise UsageError("Invalid --params: use a JSON object or array, for example '{}'")
    return value


def _decode_object(raw: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        value = None
    return value if isinstance(value, dict) else {}


def _degraded_reason(payload: dict[str, Any]) -> str:
    checks = payload.get("checks")
    failing = (
        [name for name, good in checks.items() if good is not True]
        if isinstance(checks, dict)
        else []
    )
    if failing:
        return "failing " + ", ".join(failing)
    return str(payload.get("status") or "ok is not true")


def format_health(payload: dict[str, Any], elapsed_ms: float, target: Target) -> str:
    """The human health report: a title, the verdict with the round trip, where it ran."""
    ms = f"{elapsed_ms:.0f}ms"
    if payload.get("ok") is True:
        verdict = f"OK ({ms})"
    else:
        verdict = f"DEGRADED ({_degraded_reason(payload)}; {ms})"
    profile = payload.get("profile") or target.profile_display
    port = payload.get("port") or target.port
    where = f"Profile {profile}"
    if port:
        where += f", port {port}"
    if isinstance(payload.get("pid"), int):
        where += f", pid {payload['pid']}"
    return f"Gateway Health\n{verdict}\n{where}"


def format_status(payload: dict[str, Any], target: Target) -> str:
    """The human status report: aligned ``key: value`` lines."""
    rows: list[tuple[str, str]] = [
        ("profile", str(payload.get("profile") or target.profile_display)),
        ("url", target.url),
    ]
    for key, label in (("pid", "pid"), ("version", "version")):
        if key in payload:
            rows.append((label, str(payload[key])))
    if isinstance(payload.get("uptimeMs"), int | float):
        rows.append(("uptime", human_duration(payload["uptimeMs"] / 1000)))
    connections = payload.get("connections")
    if isinstance(connections, dict):
        parts = [
            _count(connections[key], noun)
            for key, noun in (("operators", "operator"), ("nodes", "node"), ("pending", "pending"))
            if key in connections
        ]
        rows.append(("connections", ", ".join(parts)))
    memory = payload.get("memory")
    if isinstance(memory, dict) and isinstance(memory.get("rssBytes"), int | float):
        rows.append(("rss", f"{memory['rssBytes'] / (1024 * 1024):.1f} MB"))
    if payload.get("stateDir"):
        rows.append(("state dir", str(payload["stateDir"])))
    tls = payload.get("tls")
    if isinstance(tls, dict):
        fingerprint = tls.get("fingerprintSha256")
        if tls.get("enabled") and isinstance(fingerprint, str):
            rows.append(("tls", "on"))
            rows.append(("tls sha256", format_fingerprint(fingerprint)))
        else:
            rows.append(("tls", "off"))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label + ':':<{width}}{value}" for label, value in rows)


def _count(value: object, noun: str) -> str:
    plural = noun if noun == "pending" or value == 1 else noun + "s"
    return f"{value} {plural}"


def human_duration(seconds: float) -> str:
    """``42s``, ``3m 12s``, ``2h 5m``, ``3d 4h``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
