"""One profile under supervision: the thin shell around ``states.transition`` and the policy.

Theory of operation. Each profile has one driver task (:meth:`ProfileUnit.run`) that is the
only code firing transitions. It loops: look at the current state, wait for whatever can
happen in it (the process exits, READY arrives, a timer, a command), fire the matching
event, act (spawn, signal, wait for port and lock), repeat. Everything else -- commands from
the control socket, datagrams from the notify socket -- only records what happened and wakes
the driver. So there is never a second writer of ``state``, and no callback races another.

Commands become an :class:`_Op` with a future; the driver settles it at the state that
answers it (RUNNING for a start, STOPPED for a stop, BACKOFF or FATAL for a failed start).
One op per profile at a time: a second identical command waits for the same outcome, a
conflicting one is refused with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from openclaw_multi.errors import OpenClawError
from openclaw_multi.faults import checkpoint
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.lock import read_identity
from openclaw_multi.profiles.paths import ProfilePaths
from openclaw_multi.profiles.ports import resolve_port
from openclaw_multi.profiles.service_files import find_gateway_services
from openclaw_multi.protocol.control import ProfileStatus

from .child import STDERR_LOG_NAME, GatewayProcess, adopt_gateway, gateway_env, spawn_gateway
from .policy import EXIT_CONFIG, ProbeTracker, RestartPolicy, RestartTracker, decide
from .probe import probe_readyz
from .readiness import NotifyMessage
from .release import connect_host, lock_is_free, wait_released
from .states import ProcessEvent, ProcessState, transition

__all__ = ["ProfileUnit", "UnitContext"]

_LOG = logging.getLogger("openclaw.supervisor")

_S = ProcessState
_E = ProcessEvent

OpKind = Literal["start", "stop", "restart", "reset"]

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


@dataclass
class _Op:
    """A person's command in flight. ``attempt``: the spawn/adoption count that answers it."""

    kind: OpKind
    done: asyncio.Future[str | None]
    attempt: int


class ProfileUnit:
    """One profile's state, process, restart history and pending command."""

    def __init__(self, paths: ProfilePaths, ctx: UnitContext, *, desired: bool) -> None:
        self.paths = paths
        self.name = paths.display_name
        self.desired = desired
        self.state = _S.STOPPED
        self.child: GatewayProcess | None = None
        self.port: int | None = None
        self.host: str | None = None
        self.tls_fingerprint: str | None = None  # the gateway serves TLS: probes pin this
        self.last_exit: int | None = None
        self.last_error: str | None = None
        self.last_message: str | None = None
        self.healthy: bool | None = None
        self.tracker = RestartTracker(ctx.policy)
        self.probes = ProbeTracker(ctx.policy)
        self._ctx = ctx
        self._policy = ctx.policy
        self._op: _Op | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._stderr_offset = 0
        self._ready = asyncio.Event()
        self._error_status: str | None = None
        self._failure: str | None = None
        self._restart_pending = False
        self._closing = False
        self._attempts = 0
        self._backoff_until = 0.0
        self._next_probe = 0.0
        self._task: asyncio.Task[None] | None = None

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

    @property
    def idle(self) -> bool:
        """STOPPED, not desired, nothing in flight: nothing would be lost by forgetting it."""
        return (
            self.state is _S.STOPPED
            and not self.desired
            and self.child is None
            and self._op is None
        )

    def discard(self) -> None:
        """Forget an idle unit (its profile was removed): end its driver task."""
        if self._task is not None:
            self._task.cancel()

    def owns_pid(self, pid: int) -> bool:
        """Is ``pid`` this unit's current gateway?"""
        return self.child is not None and self.child.pid == pid

    # --- commands (from the control socket) --------------------------------------------

    async def start(self) -> str | None:
        """Make the profile desired-up and wait until it runs.

        Returns:
            None once RUNNING; else a one-line error (the gateway's own message when it
            refused to start, or a conflicting command in progress).
        """
        op = self._op
        if op is not None:
            if op.kind in ("start", "restart"):
                return await asyncio.shield(op.done)
            return self._conflict(op, "start")
        self._set_desired(True)
        if self.state is _S.RUNNING:
            return None
        return await self._begin("start")

    async def stop(self) -> str | None:
        """Make the profile desired-down and wait until its port and lock are free."""
        op = self._op
        if op is not None:
            if op.kind == "stop":
                return await asyncio.shield(op.done)
            return self._conflict(op, "stop")
        self._set_desired(False)
        if self.state in (_S.STOPPED, _S.FATAL):
            return None
        return await self._begin("stop")

    async def restart(self) -> str | None:
        """Stop the gateway if one runs, then start a new one (desired-up)."""
        op = self._op
        if op is not None:
            if op.kind == "restart":
                return await asyncio.shield(op.done)
            return self._conflict(op, "restart")
        self._set_desired(True)
        if self.state in (_S.STARTING, _S.RUNNING, _S.EXITED):
            self._restart_pending = True
        return await self._begin("restart")

    async def reset(self) -> str | None:
        """Clear the restart history; FATAL becomes STOPPED (and desired-down)."""
        op = self._op
        if op is not None:
            if op.kind == "reset":
                return await asyncio.shield(op.done)
            return self._conflict(op, "reset")
        self.tracker.reset()
        if self.state is not _S.FATAL:
            return None
        self._set_desired(False)
        return await self._begin("reset")

    def _conflict(self, op: _Op, wanted: str) -> str:
        return (
            f"profile {self.name}: a {op.kind} is in progress (state {self.state.value}); "
            f"try the {wanted} again once it is done"
        )

    async def _begin(self, kind: OpKind) -> str | None:
        answers_current = kind == "start" and self.state in (_S.STARTING, _S.RUNNING)
        attempt = self._attempts if answers_current else self._attempts + 1
        op = _Op(kind, asyncio.get_running_loop().create_future(), attempt)
        self._op = op
        self._wake.set()
        return await asyncio.shield(op.done)

    def _settle(self, result: str | None) -> None:
        op = self._op
        self._op = None
        if op is not None and not op.done.done():
            op.done.set_result(result)

    def _set_desired(self, desired: bool) -> None:
        self.desired = desired
        self._ctx.persist()  # writes only if the file differs (and retries a failed save)

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

    # --- lifecycle -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the driver task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"profile:{self.name}"
            )

    async def close(self, *, stop_gateway: bool) -> None:
        """End supervision: stop the gateway first if asked, else leave it serving."""
        self._closing = True
        if stop_gateway:
            self._wake.set()
            while self.state not in (_S.STOPPED, _S.FATAL) and self._task and not self._task.done():
                await self._state_changed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.child is not None:
            self.child.close()
        self._settle("supervisor is shutting down")

    async def _state_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def try_adopt(self) -> bool:
        """Adopt this profile's gateway if one already serves (identity live, lock held).

        An adopted gateway becomes desired-up: it runs, so someone wants it, and a supervisor
        must never stop a gateway just by starting.
        """
        if self.child is not None or self.state is not _S.STOPPED:
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
        self.child = child
        self.port = identity.port
        self.host = identity.host
        self.tls_fingerprint = identity.tls_fingerprint
        self._attempts += 1
        self.probes.reset()
        self._next_probe = time.monotonic() + self._policy.probe_interval
        self._fire(_E.ADOPT)
        _LOG.info("profile %s: adopted gateway pid %d on port %d", self.name, child.pid, self.port)
        self._set_desired(True)
        return True

    # --- the driver ----------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the state machine until cancelled."""
        handlers = {
            _S.STOPPED: self._in_stopped,
            _S.STARTING: self._in_starting,
            _S.RUNNING: self._in_running,
            _S.EXITED: self._in_exited,
            _S.BACKOFF: self._in_backoff,
            _S.STOPPING: self._in_stopping,
            _S.FATAL: self._in_fatal,
        }
        while True:
            self._wake.clear()
            try:
                await handlers[self.state]()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end supervision of the profile
                _LOG.exception("profile %s: error in state %s", self.name, self.state.value)
                self._settle(f"internal error in state {self.state.value}; see supervisor.log")
                await asyncio.sleep(1.0)

    def _fire(self, event: ProcessEvent) -> None:
        before = self.state
        self.state = transition(before, event)
        self._changed.set()
        _LOG.info("profile %s: %s -%s-> %s", self.name, before.value, event.value, self.state.value)
        self._answer_op()

    def _answer_op(self) -> None:
        op = self._op
        if op is None:
            return
        state = self.state
        # A start issued after a failure began is answered by the next attempt, not this one.
        starting = op.kind in ("start", "restart") and self._attempts >= op.attempt
        stopping = op.kind in ("stop", "reset")
        if (state is _S.RUNNING and starting) or (state is _S.STOPPED and stopping):
            self._settle(None)
        elif state is _S.BACKOFF and starting:
            wait = max(0.0, self._backoff_until - time.monotonic())
            self._settle(f"{self.last_error}; retrying in {wait:.1f}s")
        elif state is _S.FATAL and (op.kind == "stop" or starting):
            self._settle(None if op.kind == "stop" else self.last_error or "gave up")

    def _want_up(self) -> bool:
        return self.desired and not self._closing

    def _wants_start(self) -> bool:
        op = self._op
        return op is not None and op.kind in ("start", "restart") and not self._closing

    async def _wait(
        self, timeout: float | None, *, child: bool = True, ready: bool = False
    ) -> None:
        """Wait until woken, the child exits, READY arrives (if asked), or ``timeout``."""
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._wake.wait()),
        ]
        if child and self.child is not None:
            waiters.append(asyncio.ensure_future(asyncio.shield(self.child.exited)))
        if ready:
            waiters.append(asyncio.ensure_future(self._ready.wait()))
        try:
            await asyncio.wait(
                waiters,
                timeout=None if timeout is None else max(0.0, timeout),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _in_stopped(self) -> None:
        self._restart_pending = False
        if decide(self._want_up(), _S.STOPPED) == "spawn":
            # Never spawn a second gateway for a profile whose gateway already serves.
            if not self.try_adopt():
                self._fire(_E.START)
                self._spawn()
            return
        await self._wait(None, child=False)

    def _spawn(self) -> None:
        """In STARTING: start a gateway process (a failure to spawn gives up at once)."""
        self._ready.clear()
        self._error_status = None
        self._failure = None
        self.healthy = None
        self.port = self._configured_port()
        self.host = None
        self.tls_fingerprint = None
        self._attempts += 1
        self.tracker.record_start(time.monotonic())
        try:
            self._stderr_offset = (self.paths.log_dir / STDERR_LOG_NAME).stat().st_size
        except OSError:
            self._stderr_offset = 0
        env = gateway_env(
            self.paths.name, self._ctx.base_env, self._ctx.home, self._ctx.notify_path
        )
        try:
            self.child = spawn_gateway(self.paths, env, loop=asyncio.get_running_loop())
        except OSError as err:
            self.last_error = f"cannot start the gateway: {err}"
            _LOG.error("profile %s: %s", self.name, self.last_error)
            self._fire(_E.GIVE_UP)
            return
        _LOG.info("profile %s: spawned gateway pid %d", self.name, self.child.pid)
        checkpoint("supervisor.spawned")

    async def _in_starting(self) -> None:
        child = self.child
        assert child is not None
        deadline = child.started_mono + self._policy.ready_timeout
        await self._wait(deadline - time.monotonic(), ready=True)
        if self._ready.is_set():
            self._on_ready(child)
            self._fire(_E.READY)
            checkpoint("supervisor.ready")
        elif not child.alive:
            self._record_exit(child.exited.result())
            self._fire(_E.EXITED)
        elif not self._want_up() or self._restart_pending:
            self._fire(_E.STOP)
        elif time.monotonic() >= deadline:
            self._failure = f"not ready within {self._policy.ready_timeout:g}s"
            _LOG.warning("profile %s: gateway pid %d %s", self.name, child.pid, self._failure)
            self._fire(_E.READY_TIMEOUT)

    def _on_ready(self, child: GatewayProcess) -> None:
        identity = read_identity(self.paths.identity_path)
        if identity is not None and identity.pid == child.pid:
            self.port = identity.port
            self.host = identity.host
            self.tls_fingerprint = identity.tls_fingerprint
        self.probes.reset()
        self.healthy = True
        self._next_probe = time.monotonic() + self._policy.probe_interval
        _LOG.info(
            "profile %s: gateway pid %d ready on port %s after %.3fs",
            self.name,
            child.pid,
            self.port,
            time.monotonic() - child.started_mono,
        )

    async def _in_running(self) -> None:
        child = self.child
        assert child is not None
        await self._wait(self._next_probe - time.monotonic())
        if not child.alive:
            self._record_exit(child.exited.result())
            self._fire(_E.EXITED)
        elif not self._want_up() or self._restart_pending:
            self._fire(_E.STOP)
        elif time.monotonic() >= self._next_probe:
            await self._probe(child)

    async def _probe(self, child: GatewayProcess) -> None:
        ok = self.port is not None and await probe_readyz(
            connect_host(self.host),
            self.port,
            self._ctx.probe_timeout,
            tls_fingerprint=self.tls_fingerprint,
        )
        self._next_probe = time.monotonic() + self._policy.probe_interval
        self.healthy = ok
        if not child.alive or self.state is not _S.RUNNING:
            return  # the next turn of the loop sees the exit
        if self.probes.record(ok):
            limit = self._policy.probe_failures_before_restart
            self._failure = f"health probe failed {limit} times in a row (hung?)"
            _LOG.warning("profile %s: gateway pid %d %s", self.name, child.pid, self._failure)
            self._fire(_E.PROBE_FAILED_LIMIT)
        elif not ok:
            _LOG.info("profile %s: health probe failed", self.name)

    def _record_exit(self, code: int | None) -> None:
        self.last_exit = code
        if code is None:
            base = "exited (status unknown)"
        elif code < 0:
            base = f"killed by signal {-code}"
        else:
            base = f"exit {code}"
        detail = self._error_status or (self._stderr_error() if code and code > 0 else None)
        self._failure = f"{base}: {detail}" if detail else base
        _LOG.warning("profile %s: gateway %s", self.name, self._failure)

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

    async def _release(self) -> None:
        """Make sure the process group is gone, then wait until port and lock are free."""
        child = self.child
        if child is None:
            return
        if child.alive:
            # Killed by us (stop, readiness timeout, failed probes): this is its status now,
            # not whatever an earlier process of the profile exited with.
            self.last_exit = await child.terminate(self._policy.stop_timeout)
            checkpoint("supervisor.stop-signalled")
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
        child.close()
        self.child = None
        self.healthy = None

    async def _in_exited(self) -> None:
        await self._release()
        if not self._want_up() or self._restart_pending:
            self._fire(_E.STOP)
            return
        now = time.monotonic()
        decision = self.tracker.record_exit(now, self.last_exit)
        failure = self._failure or decision.reason
        if decision.action == "fatal":
            if self.last_exit == EXIT_CONFIG:
                # The gateway's own words ("port 41984 is already in use by pid ..."), as is.
                self.last_error = self._error_status or self._stderr_error() or failure
            else:
                self.last_error = f"gave up after {decision.reason}; last: {failure}"
            _LOG.error("profile %s: FATAL: %s", self.name, self.last_error)
            self._fire(_E.GIVE_UP)
        else:
            self.last_error = failure
            self._backoff_until = now + decision.delay
            _LOG.info("profile %s: restarting in %.2fs", self.name, decision.delay)
            self._fire(_E.STOPPED)

    async def _in_backoff(self) -> None:
        await self._wait(self._backoff_until - time.monotonic(), child=False)
        if not self._want_up():
            self._fire(_E.STOP)
        elif self._wants_start():
            self._restart_pending = False
            self._fire(_E.START)  # an explicit start skips the wait
            self._spawn()
        elif time.monotonic() >= self._backoff_until:
            self._fire(_E.BACKOFF_ELAPSED)
            self._spawn()

    async def _in_stopping(self) -> None:
        checkpoint("supervisor.stop-begin")
        await self._release()
        self._fire(_E.STOPPED)

    async def _in_fatal(self) -> None:
        op = self._op
        if op is not None and op.kind == "reset":
            self.tracker.reset()
            self._fire(_E.RESET)
        elif self._wants_start():
            # A person's start clears FATAL and the restart history.
            self.tracker.reset()
            self._restart_pending = False
            self._fire(_E.START)
            self._spawn()
        else:
            await self._wait(None, child=False)

    # --- helpers -------------------------------------------------------------------------

    def _configured_port(self) -> int | None:
        """The port the config asks for (None if the config cannot be read)."""
        try:
            config = load_config(self.paths.config_path)
            return resolve_port(self.paths.name, config_port=config.gateway.port)
        except OpenClawError:
            return None
