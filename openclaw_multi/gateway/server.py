"""Running one gateway: take the profile lock, bind, announce readiness, serve, drain.

Order matters and is fixed: settings are resolved and the lock is taken before anything is
bound (a second gateway for the profile binds nothing); the identity file is published only
once the port is ours; readiness is pushed (sd_notify) only once we serve. On SIGTERM/SIGINT
the handler just records the signal; the main coroutine stops the channels, drains clients
(``shutdown`` event, close 1012; agent runs aborted), closes the listeners, writes the node
bookkeeping, waits (bounded) for the aborted runs to store their end, closes the session
store, releases the lock, and returns 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import ssl
from collections.abc import Mapping

from .. import runtime
from ..errors import ConfigError, OpenClawError, PortInUseError, ProfileConflictError, UsageError
from ..faults import checkpoint
from ..profiles.discovery import list_profiles
from ..profiles.lock import ProfileLock, find_port_holder, port_in_use_message, read_identity
from .http import HEAD_TIMEOUT_S, HttpFront
from .hub import Gateway
from .logs import FILE_ONLY, setup_logging
from .notify import notify
from .settings import GatewayOptions, GatewaySettings, resolve_settings
from .tls import load_server_tls
from .watchdog import start_watchdog

_LOG = logging.getLogger("openclaw.gateway")
CHANNELS_STOP_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 0.5
ABORT_TIMEOUT_S = 0.5
RUNS_SETTLE_TIMEOUT_S = 2.0
EXIT_USAGE = 2
EXIT_CONFIG = 78


def run_gateway(options: GatewayOptions, env: Mapping[str, str]) -> int:
    """Run a gateway until it is told to stop; return the exit status (0).

    Raises:
        UsageError, ConfigError, LockHeldError, PortInUseError: before serving; the caller
        turns them into exit codes (78 for the last three). The message is also pushed to
        ``NOTIFY_SOCKET`` as ``STATUS=`` with ``ERRNO=`` the exit status to come, so a
        supervisor can show the gateway's own words.
    """
    try:
        settings = resolve_settings(options, env)
        setup_logging(settings.paths.log_path, to_stderr=options.foreground)
        lock = ProfileLock(settings.paths)
        checkpoint("gateway.before-lock")
        lock.acquire()
    except OpenClawError as err:
        notify(f"STATUS={err}\nERRNO={exit_status(err)}")
        raise
    except OSError as err:  # no space, read-only state dir: say why, or the exit is silent
        notify(f"STATUS=cannot start the gateway: {err}\nERRNO=1")
        raise
    checkpoint("gateway.locked")
    try:
        return runtime.run(_serve(settings, lock))
    except OpenClawError as err:
        _LOG.error("%s", err, extra=FILE_ONLY)
        notify(f"STATUS={err}\nERRNO={exit_status(err)}")
        raise
    except OSError as err:  # e.g. the identity file cannot be written on a full disk
        notify(f"STATUS=cannot start the gateway: {err}\nERRNO=1")
        raise
    finally:
        lock.release()


def exit_status(err: OpenClawError) -> int:
    """The gateway program's exit status for an error: 2 usage, 78 "do not restart", else 1."""
    if isinstance(err, UsageError):
        return EXIT_USAGE
    if isinstance(err, ConfigError | ProfileConflictError):
        return EXIT_CONFIG
    return 1


async def _serve(settings: GatewaySettings, lock: ProfileLock) -> int:
    loop = asyncio.get_running_loop()
    tls = load_server_tls(settings.tls, settings.hosts) if settings.tls is not None else None
    gateway = Gateway(settings, tls_fingerprint=tls.fingerprint if tls is not None else None)
    servers = await _bind(gateway, settings, tls.context if tls is not None else None)
    checkpoint("gateway.bound")
    lock.publish(
        settings.port,
        settings.hosts[0],
        settings.paths.config_path,
        settings.version,
        tls_fingerprint=gateway.tls_fingerprint,
    )
    checkpoint("gateway.published")
    stop = asyncio.Event()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)  # record only; the loop below acts
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    gateway.mark_ready()
    where = ", ".join(f"{h}:{settings.port}" for h in settings.hosts)
    _LOG.info(
        "gateway ready: profile %s listening on %s (auth %s, %s, pid %d)",
        settings.paths.display_name,
        where,
        settings.auth.mode,
        f"tls sha256 {gateway.tls_fingerprint}" if gateway.tls_fingerprint else "no tls",
        os.getpid(),
    )
    notify(f"READY=1\nSTATUS=listening on {where}\nMAINPID={os.getpid()}")
    start_watchdog()  # WATCHDOG=1 every half WATCHDOG_USEC, when systemd asks for it
    checkpoint("gateway.serving")
    ticks = asyncio.create_task(gateway.run_ticks())
    await gateway.channels.start()  # after READY: a slow Bot API never delays readiness
    try:
        await stop.wait()
    finally:
        ticks.cancel()
    checkpoint("gateway.stopping")
    _LOG.info("signal %d: draining %d connection(s)", signals_seen[0], len(gateway.sockets))
    notify("STOPPING=1")
    # Channels first: no new inbound message starts a run the drain would abort.
    try:
        await asyncio.wait_for(gateway.channels.stop(), CHANNELS_STOP_TIMEOUT_S)
    except TimeoutError:
        _LOG.warning("channels did not stop within %.0f s", CHANNELS_STOP_TIMEOUT_S)
    gateway.drain("gateway stopping")
    for server in servers:
        server.close()
    await _wait_sockets_closed(gateway, DRAIN_TIMEOUT_S)
    for conn in list(gateway.sockets):
        conn.peer.abort()
    await _wait_sockets_closed(gateway, ABORT_TIMEOUT_S)  # their close callbacks run
    gateway.nodes.close()  # last-seen times still in memory
    gateway.devices.flush()
    # The runs the drain aborted store their messages as they end; then the store closes.
    unsettled = await gateway.chat.settle(RUNS_SETTLE_TIMEOUT_S)
    if unsettled:
        _LOG.warning(
            "%d agent run(s) still ending after %.0f s; closing the session store",
            unsettled,
            RUNS_SETTLE_TIMEOUT_S,
        )
    gateway.chat.close()
    _LOG.info("gateway stopped")
    return 0


async def _bind(
    gateway: Gateway, settings: GatewaySettings, ssl_context: ssl.SSLContext | None = None
) -> list[asyncio.Server]:
    # With TLS the loop decrypts; the HttpFront (and picows after it) see plain bytes.
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    host = settings.hosts[0]
    # A peer that opens TCP and never finishes the TLS handshake is dropped as soon as one
    # that never sends its request head would be.
    handshake_timeout = HEAD_TIMEOUT_S if ssl_context is not None else None
    try:
        for host in settings.hosts:
            servers.append(
                await loop.create_server(
                    lambda: HttpFront(gateway),
                    host,
                    settings.port,
                    backlog=1024,
                    ssl=ssl_context,
                    ssl_handshake_timeout=handshake_timeout,
                )
            )
    except OSError as err:
        for server in servers:
            server.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(_port_message(settings)) from None
        where = f"{host}:{settings.port}"
        raise ConfigError(f"cannot listen on {where} ({settings.bind}): {err.strerror}") from None
    return servers


def _port_message(settings: GatewaySettings) -> str:
    holder = find_port_holder(settings.port)
    by_port: dict[int, str] = {}
    for paths in list_profiles(settings.paths.home):
        identity = read_identity(paths.identity_path)
        if identity is not None and paths.state_dir != settings.paths.state_dir:
            by_port[identity.port] = paths.display_name
    return port_in_use_message(settings.port, holder, by_port)


async def _wait_sockets_closed(gateway: Gateway, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while gateway.sockets and loop.time() < deadline:
        await asyncio.sleep(0.01)
