"""One profile under supervision: a gateway process as a :class:`~.managed.ManagedUnit`.

The driver, commands, backoff and probes are shared (:mod:`.managed`); this module says what
is particular to a gateway. It is spawned as ``python -m openclaw_multi.gateway`` and is
ready when it pushes ``READY=1`` over the notify socket (:meth:`ProfileUnit.on_notify`).
Its port, host and TLS pin come from the identity file it writes beside its lock. Once it
is gone, it is only released when its port refuses and its lock is free. Exit 78 ("do not
restart me") is final, with the gateway's own words (its ``STATUS=`` with ``ERRNO=``, else
the last ``error:`` line of ``gateway.stderr.log``). A running gateway found at start-up
(identity live, lock held) is adopted, unless systemd or launchd owns the profile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from openclaw_multi.errors import OpenClawError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.lock import read_identity
from openclaw_multi.profiles.paths import ProfilePaths
from openclaw_multi.profiles.ports import resolve_port
from openclaw_multi.profiles.service_files import find_gateway_services
from openclaw_multi.protocol.control import ProfileStatus

from .child import STDERR_LOG_NAME, GatewayProcess, adopt_gateway, gateway_env, spawn_gateway
from .managed import ManagedUnit
from .policy import EXIT_CONFIG, RestartPolicy
from .probe import probe_readyz
from .readiness import NotifyMessage
from .release import connect_host, lock_is_free, wait_released
from .states import ProcessState

__all__ = ["ProfileUnit", "UnitContext"]

_LOG = logging.getLogger("openclaw.supervisor")

_RELEASE_GRACE_S: Final = 5.0
"""Beyond ``stop_timeout``, how long to wait for port and lock after the process is gone."""

_STDERR_TAIL_BYTES: Final = 4096


@dataclass(frozen=True)
class UnitContext:
    """What every unit shares with the supervisor.

    Attributes:
        home: The home the profiles live under.
        notify_path: The readiness socket handed to gateways.
        base_env: The supervisor's environment (filtered per gateway).
        policy: Restart, readiness, stop and probe numbers.
        probe_timeout: Seconds a health probe may take.
        persist: Called after a unit's desired state changed (writes desired.json).
    """

    home: Path
    notify_path: Path
    base_env: Mapping[str, str]
    policy: RestartPolicy
    probe_timeout: float
    persist: Callable[[], None]


class ProfileUnit(ManagedUnit):
    """One profile's gateway: state, process, restart history and pending command."""

    kind = "profile"
    process_noun = "gateway"

    def __init__(self, paths: ProfilePaths, ctx: UnitContext, *, desired: bool) -> None:
        super().__init__(
            paths.display_name,
            policy=ctx.policy,
            probe_timeout=ctx.probe_timeout,
            persist=ctx.persist,
            desired=desired,
        )
        self.paths = paths
        self.tls_fingerprint: str | None = None  # the gateway serves TLS: probes pin this
        self._ctx = ctx
        self._stderr_offset = 0
        self._error_status: str | None = None

    # --- what the supervisor reads -----------------------------------------------------

    def status(self) -> ProfileStatus:
        """This profile as the control protocol reports it."""
        child = self.child
        return ProfileStatus(
            name=self.name,
            state=self.state.value,
            desired=self.desired,
            pid=child.pid if child is not None else None,
            port=self.port if self.port is not None else self._configured_port(),
            started_at=child.started_at if child is not None else None,
            restarts=self.tracker.total_restarts,
            last_exit=self.last_exit,
            last_error=self.last_error,
        )

    # --- events from the notify socket -------------------------------------------------

    def on_notify(self, message: NotifyMessage) -> None:
        """Record a datagram from this unit's gateway and wake the driver."""
        status = message.status
        if status is not None:
            self.last_message = status
            if message.errno is not None:
                self._error_status = status
        if message.ready:
            self._ready.set()
        self._wake.set()

    # --- the gateway hooks -----------------------------------------------------------------

    def try_adopt(self) -> bool:
        """Adopt this profile's gateway if one already serves (identity live, lock held).

        An adopted gateway becomes desired-up: it runs, so someone wants it, and a supervisor
        must never stop a gateway just by starting.
        """
        if self.child is not None or self.state is not ProcessState.STOPPED:
            return False
        if find_gateway_services(self.paths, self._ctx.base_env):
            return False  # systemd or launchd owns it, and a profile has one owner
        identity = read_identity(self.paths.identity_path)
        if identity is None or lock_is_free(self.paths.lock_path):
            return False
        child = adopt_gateway(identity, loop=asyncio.get_running_loop())
        if child is None:
            _LOG.warning(
                "profile %s: identity names pid %d, which is not its gateway: not adopted",
                self.name,
                identity.pid,
            )
            return False
        self.port = identity.port
        self.host = identity.host
        self.tls_fingerprint = identity.tls_fingerprint
        self._adopted(child)
        _LOG.info("profile %s: adopted gateway pid %d on port %d", self.name, child.pid, self.port)
        return True

    def _launch(self) -> GatewayProcess:
        self._error_status = None
        self.port = self._configured_port()
        self.host = None
        self.tls_fingerprint = None
        try:
            self._stderr_offset = (self.paths.log_dir / STDERR_LOG_NAME).stat().st_size
        except OSError:
            self._stderr_offset = 0
        env = gateway_env(
            self.paths.name, self._ctx.base_env, self._ctx.home, self._ctx.notify_path
        )
        return spawn_gateway(self.paths, env, loop=asyncio.get_running_loop())

    def _became_ready(self, child: GatewayProcess) -> None:
        identity = read_identity(self.paths.identity_path)
        if identity is not None and identity.pid == child.pid:
            self.port = identity.port
            self.host = identity.host
            self.tls_fingerprint = identity.tls_fingerprint

    async def _probe_ok(self) -> bool:
        return self.port is not None and await probe_readyz(
            connect_host(self.host),
            self.port,
            self._probe_timeout,
            tls_fingerprint=self.tls_fingerprint,
        )

    def _exit_detail(self, code: int | None) -> str | None:
        return self._error_status or (self._stderr_error() if code and code > 0 else None)

    def _final_error(self) -> str | None:
        if self.last_exit != EXIT_CONFIG:
            return None
        # The gateway's own words ("port 41984 is already in use by pid ..."), as is.
        return (
            self._error_status
            or self._stderr_error()
            or self._failure
            or f"exit {EXIT_CONFIG} (config/conflict)"
        )

    def _stderr_error(self) -> str | None:
        """The last ``error:`` line the gateway printed (when it had no chance to notify)."""
        path = self.paths.log_dir / STDERR_LOG_NAME
        try:
            with path.open("rb") as f:
                size = path.stat().st_size
                # Only what this process wrote: an older run's error is not this one's.
                start = self._stderr_offset if self._stderr_offset <= size else 0
                f.seek(max(start, size - _STDERR_TAIL_BYTES))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        for line in reversed(tail.splitlines()):
            if line.startswith("error: "):
                return line[len("error: ") :].strip()
        return None

    async def _await_released(self, child: GatewayProcess) -> None:
        host = connect_host(self.host)
        timeout = self._policy.stop_timeout + _RELEASE_GRACE_S
        if not await wait_released(self.paths.lock_path, self.port, host, child.pid, timeout):
            _LOG.warning(
                "profile %s: port %s or lock still held %.0fs after pid %d ended",
                self.name,
                self.port,
                timeout,
                child.pid,
            )

    # --- helpers -------------------------------------------------------------------------

    def _configured_port(self) -> int | None:
        """The port the config asks for (None if the config cannot be read)."""
        try:
            config = load_config(self.paths.config_path)
            return resolve_port(self.paths.name, config_port=config.gateway.port)
        except OpenClawError:
            return None
