"""Running a node host as a profile: its config, key, lock, log and signals in one place.

``openclaw --profile laptop node run --url ...`` (and the supervisor's
``python -m openclaw_multi.client.nodehost``) end here. The profile's state dir holds:

* ``identity/node-device.json`` and ``identity/node-device-auth.json`` (0600): the node's own
  key pair (its device id is its node id) and the device tokens gateways issued it, apart from
  the CLI's own key so a node is never confused with the operator using the same profile;
* ``nodehost.lock``: one node host per profile (two with one key would keep replacing each
  other on the gateway);
* ``logs/node.log``: what the host did (rotated 10 MiB x 5, 0600);
* ``nodehost.status.json``: its link right now (status.py), removed when it stops;
* ``nodehost-token`` (0600, optional): the gateway token ``openclaw node start`` stored for
  a supervised host, with ``nodehost-token.url``, the URL it is for (``node run --url`` reads
  it when no other credential is given, and only for that URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ... import runtime
from ...errors import ConfigError, CredentialsRequired, LockHeldError
from ...profiles.config import NodeHostSection, load_config
from ...profiles.paths import ProfilePaths
from ..identity import DeviceAuthStore, identity_dir, load_or_create_identity
from .commands import Invocation, NodeSettings, build_registry
from .host import InvokeRequest, NodeHost, NodeLink
from .logs import setup_node_logging
from .rules import canonical_roots
from .status import STATUS_FILE, write_status

__all__ = [
    "NODE_AUTH_FILE",
    "NODE_IDENTITY_FILE",
    "TOKEN_FILE",
    "NodeHostOptions",
    "node_settings",
    "run_node_host",
]

NODE_IDENTITY_FILE: Final = "node-device.json"
NODE_AUTH_FILE: Final = "node-device-auth.json"
LOCK_FILE: Final = "nodehost.lock"
TOKEN_FILE: Final = "nodehost-token"
"""A stored gateway token for ``--url`` (written by ``openclaw node start``, 0600)."""


@dataclass(frozen=True)
class NodeHostOptions:
    """What the command line decided.

    Attributes:
        url: The gateway's WebSocket URL.
        token: A shared token (never logged).
        password: A shared password (never logged).
        tls_fingerprint: A ``wss://`` pin.
        display_name: ``--name``, over ``nodeHost.displayName``.
        to_stderr: Also log to stderr (foreground runs).
    """

    url: str
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls_fingerprint: str | None = None
    display_name: str | None = None
    to_stderr: bool = True


def node_settings(
    section: NodeHostSection, *, config_dir: Path, display_name: str | None = None
) -> NodeSettings:
    """The effective settings: roots realpath'd (relative ones against the config's folder)."""
    name = (display_name or section.display_name or "").strip() or socket.gethostname()
    return NodeSettings(
        display_name=name,
        fs_roots=canonical_roots(section.fs_roots, base=str(config_dir)),
        run_allowlist=tuple(e.strip() for e in section.run_allowlist if e.strip()),
        run_timeout_ms=section.run_timeout_ms,
        output_cap_bytes=section.output_cap_bytes,
        path_env=os.environ.get("PATH", os.defpath),
    )


class _HostLock:
    """An exclusive ``flock`` on ``<state>/nodehost.lock`` for the host's whole life."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeldError(
                f"a node host is already running for this profile (lock {self.path})"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_node_host(paths: ProfilePaths, options: NodeHostOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0 on a clean stop).

    Raises:
        ConfigError: The profile's config is unreadable or invalid.
        CredentialsRequired: No token or password, and no device token stored for this URL.
        LockHeldError: Another node host runs for this profile.
    """
    config = load_config(paths.config_path)
    settings = node_settings(
        config.node_host, config_dir=paths.config_path.parent, display_name=options.display_name
    )
    directory = identity_dir(paths.state_dir)
    identity = load_or_create_identity(directory, NODE_IDENTITY_FILE)
    store = DeviceAuthStore(directory, identity.device_id, NODE_AUTH_FILE)
    if not (options.token or options.password) and store.load(options.url, "node") is None:
        raise CredentialsRequired(
            f"no credentials for {options.url}: pass --token/--token-file (or a password) once;"
            " the gateway then issues this node a device token kept in "
            f"{store.path}"
        )
    lock = _HostLock(paths.state_dir / LOCK_FILE)
    lock.acquire()
    try:
        try:
            setup_node_logging(paths.log_dir, to_stderr=options.to_stderr)
        except OSError as err:
            raise ConfigError(f"cannot open the node log in {paths.log_dir}: {err}") from None
        registry = build_registry(settings)
        link = NodeLink(
            options.url,
            identity,
            store,
            token=options.token,
            password=options.password,
            tls_fingerprint=options.tls_fingerprint,
        )

        def invocation(request: InvokeRequest) -> Invocation:
            return Invocation(request.id, request.command, request.timeout_ms, settings)

        status_path = paths.state_dir / STATUS_FILE

        def on_link(connected: bool, error: str | None) -> None:
            write_status(
                status_path,
                url=options.url,
                node_id=identity.device_id,
                connected=connected,
                error=error,
            )

        async def main() -> None:
            host = NodeHost(
                link,
                registry,
                invocation,
                display_name=settings.display_name,
                path_env=settings.path_env,
                on_link=on_link,
            )
            on_link(False, None)  # up, not yet connected
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, host.stop)  # handlers only record; run() acts
            try:
                await host.run()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    with contextlib.suppress(Exception):
                        loop.remove_signal_handler(sig)

        runtime.run(main())
    finally:
        with contextlib.suppress(OSError):
            (paths.state_dir / STATUS_FILE).unlink()  # not running any more
        lock.release()
    return 0
