"""``openclaw node run|start|stop|status``: this machine as a node of a gateway (docs/nodes.md).

The node host runs as a profile: ``openclaw --profile laptop node run --url ws://gw:18789/
--token-file ~/.gw-token`` reads ``nodeHost`` from that profile's ``openclaw.json`` (what
may be listed, read and run), keeps its key and device tokens in that profile's state dir,
and logs to its ``logs/node.log``. Without ``--url`` it joins the profile's own gateway (the
same rules as ``openclaw gateway call``). With ``--url``, only credentials given for that
URL are sent: ``--token``/``--token-file``, ``--password``/``--password-file``,
``OPENCLAW_NODE_TOKEN``, the profile's stored ``nodehost-token`` (``openclaw node start``;
used only for the URL it was stored for, ``nodehost-token.url``), or the device token a
gateway issued this node before.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from ..client.target import check_ws_url, read_secret_file, resolve_target, shown_url
from ..errors import ConfigError, OpenClawError, SupervisorError, UsageError
from ..profiles.paths import resolve_paths
from ..protocol.tls import normalize_fingerprint
from .context import CliContext, profile_options

if TYPE_CHECKING:
    from ..client.control import SupervisorClient

NODE_TOKEN_ENV = "OPENCLAW_NODE_TOKEN"


@click.group("node")
def node() -> None:
    """Serve this machine's commands to a gateway as a node."""


@node.command("run")
@profile_options
@click.option("--url", metavar="WS_URL", help="Gateway URL (default: the profile's gateway).")
@click.option("--token", metavar="T", help="Gateway token (prefer --token-file).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the gateway token from this file.",
)
@click.option("--password", metavar="P", help="Gateway password (prefer --password-file).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the gateway password from this file.",
)
@click.option("--tls-fingerprint", metavar="SHA256", help="Pin the wss:// gateway certificate.")
@click.option(
    "--name", "display_name", metavar="N", help="Display name (over nodeHost.displayName)."
)
@click.pass_obj
def run(
    obj: CliContext,
    url: str | None,
    token: str | None,
    token_file: Path | None,
    password: str | None,
    password_file: Path | None,
    tls_fingerprint: str | None,
    display_name: str | None,
) -> None:
    """Connect as a node, serve commands, reconnect with backoff; Ctrl+C stops (exit 0)."""
    from ..client.nodehost.app import NodeHostOptions, run_node_host

    if token is not None and token_file is not None:
        raise UsageError("use either --token or --token-file, not both")
    if password is not None and password_file is not None:
        raise UsageError("use either --password or --password-file, not both")
    if token_file is not None:
        token = read_secret_file(token_file, "--token-file")
    if password_file is not None:
        password = read_secret_file(password_file)
    name, explicit = obj.profile()
    if url is not None:
        problem = check_ws_url(url)
        if problem is not None:
            raise UsageError(f"invalid --url {shown_url(url)!r}: {problem}")
        pin = None
        if tls_fingerprint is not None:
            pin = normalize_fingerprint(tls_fingerprint)
            if pin is None:
                raise UsageError("invalid --tls-fingerprint: use the certificate's SHA-256")
            if not url.lower().startswith("wss://"):
                raise UsageError("--tls-fingerprint needs a wss:// gateway url")
        token = token or obj.env.get(NODE_TOKEN_ENV) or None
        if not token and not password:
            token = _stored_token(name, explicit, obj, url)
    else:
        target = resolve_target(
            (name, explicit),
            obj.env,
            token=token,
            password=password,
            tls_fingerprint=tls_fingerprint,
        )
        url, pin = target.url, target.tls_fingerprint
        token, password = target.token, target.password
    paths = resolve_paths(name, obj.env, explicit=explicit)
    options = NodeHostOptions(
        url=url,
        token=token or None,
        password=password or None,
        tls_fingerprint=pin,
        display_name=display_name,
    )
    raise SystemExit(run_node_host(paths, options))


TOKEN_URL_FILE = "nodehost-token.url"
"""The gateway URL the stored token was given for: it is sent to no other."""


def _stored_token(name: str | None, explicit: bool, obj: CliContext, url: str) -> str | None:
    """The token ``openclaw node start`` kept in the profile for ``url``, if any."""
    from ..client.nodehost.app import TOKEN_FILE

    state = resolve_paths(name, obj.env, explicit=explicit).state_dir
    path = state / TOKEN_FILE
    try:
        bound = (state / TOKEN_URL_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        bound = None  # an older file says not which gateway it is for: never sent
    if not path.exists() or bound != url:
        return None
    return read_secret_file(path, "stored token")


# --- supervised node hosts -------------------------------------------------------------------

DEFAULT_WAIT_S = 60.0


def _client(obj: CliContext) -> SupervisorClient:
    from ..client.control import SupervisorClient

    return SupervisorClient(resolve_paths(None, obj.env, explicit=False).home, env=obj.env)


def _store_token(obj: CliContext, name: str, token: str, url: str) -> None:
    """Keep the gateway token for ``url`` in the node's profile (0600), never on a command
    line; ``node run`` sends it to that URL only."""
    from ..client.nodehost.app import TOKEN_FILE
    from ..profiles.atomic import write_file_atomic

    state = resolve_paths(name, obj.env, explicit=True).state_dir
    try:
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(state / TOKEN_FILE, token.encode() + b"\n", mode=0o600)
        write_file_atomic(state / TOKEN_URL_FILE, url.encode() + b"\n", mode=0o600)
    except OSError as err:
        raise ConfigError(f"cannot store the token in {state}: {err.strerror}") from None


@node.command("start")
@click.argument("name")
@click.option("--url", metavar="WS_URL", help="Gateway to join (defines NAME).")
@click.option("--token", metavar="T", help="Gateway token to store (prefer --token-file).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the gateway token to store from this file.",
)
@click.option("--name", "display_name", metavar="N", help="Display name.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for the node host to be up.",
)
@click.pass_obj
def start_cmd(
    obj: CliContext,
    name: str,
    url: str | None,
    token: str | None,
    token_file: Path | None,
    display_name: str | None,
    timeout: float,
) -> None:
    """Run profile NAME as a node host under the supervisor (restarted if it dies).

    With --url, NAME is defined (or redefined); a token given with --token/--token-file (or
    OPENCLAW_NODE_TOKEN) is stored in the profile, 0600, for the host to read.
    """
    from ..protocol.control import NodeStart
    from ..supervisor.node_defs import check_node_url, parse_node_name

    parse_node_name(name)
    if url is not None:
        check_node_url(url)
    if token is not None and token_file is not None:
        raise UsageError("use either --token or --token-file, not both")
    if token_file is not None:
        token = read_secret_file(token_file, "--token-file")
    token = token or obj.env.get(NODE_TOKEN_ENV) or None
    if token:
        bound = url or _defined_url(obj, name)
        if bound is None:
            raise UsageError(f"no node host {name} yet: give --url ws://... with the token")
        _store_token(obj, name, token, bound)
    started = time.monotonic()
    request = NodeStart(name=name, url=url, display_name=display_name)
    reply = _client(obj).request(request, timeout=timeout, autostart=True)
    status = next((n for n in reply.nodes if n.name == name), None)
    if not reply.ok or status is None:
        raise OpenClawError(f"node {name}: {reply.error or 'failed to start'}")
    pid = f"pid {status.pid}, " if status.pid is not None else ""
    elapsed = time.monotonic() - started
    click.echo(f"{name}: running ({pid}{status.url}) in {elapsed:.2f}s")
    click.echo(f"its log: {status.log_path}")


def _defined_url(obj: CliContext, name: str) -> str | None:
    """The URL node host ``name`` is defined with (``nodes.json``), if it is."""
    from ..client.control import supervisor_dir
    from ..supervisor.node_defs import NodeFiles, load_nodes

    home = resolve_paths(None, obj.env, explicit=False).home
    definition = load_nodes(NodeFiles(supervisor_dir(home)).definitions_path).get(name)
    return definition.url if definition is not None else None


@node.command("stop")
@click.argument("name")
@click.option("--remove", is_flag=True, help="Also forget the definition.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_WAIT_S)
@click.pass_obj
def stop_cmd(obj: CliContext, name: str, remove: bool, timeout: float) -> None:
    """Stop supervised node host NAME (the definition is kept unless --remove)."""
    from ..protocol.control import NodeStop
    from ..supervisor.node_defs import parse_node_name

    parse_node_name(name)
    started = time.monotonic()
    reply = _client(obj).request(
        NodeStop(name=name, remove=remove), timeout=timeout, autostart=True
    )
    if not reply.ok:
        raise OpenClawError(f"node {name}: {reply.error or 'failed to stop'}")
    verb = "removed" if remove else "stopped"
    click.echo(f"{name}: {verb} in {time.monotonic() - started:.2f}s")


@node.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the supervisor's records as JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Supervised node hosts: state, pid, link (exit 1 when a desired one is not connected)."""
    from ..protocol.control import NodeList

    obj: CliContext = ctx.obj
    try:
        reply = _client(obj).request(NodeList(), timeout=5.0, autostart=False)
    except SupervisorError:
        raise SupervisorError(
            "the supervisor is not running (openclaw node start starts it)"
        ) from None
    nodes = reply.nodes if reply.ok else []
    if as_json:
        click.echo(msgspec.json.encode(nodes).decode())
    elif not nodes:
        click.echo("no node hosts yet: openclaw node start NAME --url ws://... --token-file F")
    for status in [] if as_json else nodes:
        link = {True: "connected", False: "not connected", None: "-"}[status.connected]
        pid = status.pid if status.pid is not None else "-"
        line = f"{status.name:<16} {status.state:<9} pid {pid:<8} {link:<14} {status.url}"
        if status.last_error and status.connected is not True:
            line += f"  ({status.last_error})"
        click.echo(line)
    if any(n.desired and n.connected is not True for n in nodes):
        ctx.exit(1)
