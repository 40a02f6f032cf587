"""``openclaw node run``: this machine as a node of a gateway (docs/nodes.md).

The node host runs as a profile: ``openclaw --profile laptop node run --url ws://gw:18789/
--token-file ~/.gw-token`` reads ``nodeHost`` from that profile's ``openclaw.json`` (what
may be listed, read and run), keeps its key and device tokens in that profile's state dir,
and logs to its ``logs/node.log``. Without ``--url`` it joins the profile's own gateway (the
same rules as ``openclaw gateway call``). With ``--url``, only credentials given for that
URL are sent: ``--token``/``--token-file``, ``--password``/``--password-file``,
``OPENCLAW_NODE_TOKEN``, or the device token a gateway issued this node before.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..client.target import check_ws_url, read_secret_file, resolve_target
from ..errors import UsageError
from ..profiles.paths import resolve_paths
from ..protocol.tls import normalize_fingerprint
from .context import CliContext, profile_options

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
            raise UsageError(f"invalid --url {url!r}: {problem}")
        pin = None
        if tls_fingerprint is not None:
            pin = normalize_fingerprint(tls_fingerprint)
            if pin is None:
                raise UsageError("invalid --tls-fingerprint: use the certificate's SHA-256")
            if not url.lower().startswith("wss://"):
                raise UsageError("--tls-fingerprint needs a wss:// gateway url")
        token = token or obj.env.get(NODE_TOKEN_ENV) or None
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
