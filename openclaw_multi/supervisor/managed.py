"""One managed process under supervision: the thin shell around ``states.transition``.

Theory of operation. Each managed thing -- a profile's gateway (:mod:`.unit`), an SSH tunnel
(:mod:`.tunnel`) -- has one driver task (:meth:`ManagedUnit.run`) that is the only code
firing transitions. It loops: look at the current state, wait for whatever can happen in it
(the process exits, readiness arrives, a timer, a command), fire the matching event, act
(spawn, signal, wait for resources), repeat. Everything else -- commands from the control
socket, datagrams from the notify socket, a readiness poller -- only records what happened
and wakes the driver. So there is never a second writer of ``state``, and no callback races
another.

Commands become an :class:`_Op` with a future; the driver settles it at the state that
answers it (RUNNING for a start, STOPPED for a stop, BACKOFF or FATAL for a failed start).
One op per unit at a time: a second identical command waits for the same outcome, a
conflicting one is refused with a clear message.

What differs between a gateway and a tunnel is in a handful of hooks a subclass fills in:
how to launch the process (:meth:`ManagedUnit._launch`), what readiness means (something
sets ``self._ready``), what to wait for once the process is gone
(:meth:`ManagedUnit._await_released`), where a failure's words come from
(:meth:`ManagedUnit._exit_detail`) and which failures are final
(:meth:`ManagedUnit._final_error`). States, backoff, burst limit, probes and commands are
shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from openclaw_multi.errors import SupervisorError
from openclaw_multi.faults import checkpoint

from .child import GatewayProcess
from .policy import ProbeTracker, RestartPolicy, RestartTracker, decide
from .probe import probe_readyz
from .release import connect_host
from .states import ProcessEvent, ProcessState, transition

__all__ = ["LaunchRefused", "ManagedUnit", "OpKind"]

_LOG = logging.getLogger("openclaw.supervisor")

_S = ProcessState
_E = ProcessEvent

OpKind = Literal["start", "stop", "restart", "reset"]


class LaunchRefused(SupervisorError):
    """The process was not even started, for a reason restarting will not fix (one line)."""


@dataclass
class _Op:
    """A person's command in flight. ``attempt``: the spawn/adoption count that answers it."""

    kind: OpKind
    done: asyncio.Future[str | None]
    attempt: int


class ManagedUnit:
    """One managed process's state, process, restart history and pending command.

    Attributes:
        kind: What this is, for messages (``profile``, ``tunnel``).
        process_noun: What its process is, for messages (``gateway``, ``ssh``).
        probe_hint: Appended to the "probes failed" error (what it probably means).
    """

    kind = "unit"
    process_noun = "process"
    probe_hint = "hung?"

    def __init__(
        self,
        name: str,
        *,
        policy: RestartPolicy,
        probe_timeout: float,
        persist: Callable[[], None],
        desired: bool,
    ) -> None:
        self.name = name
        self.desired = desired
        self.state = _S.STOPPED
        self.child: GatewayProcess | None = None
        self.port: int | None = None
        self.host: str | None = None
        self.last_exit: int | None = None
        self.last_error: str | None = None
        self.last_message: str | None = None
        self.healthy: bool | None = None
        self.tracker = RestartTracker(policy)
        self.probes = ProbeTracker(policy)
        self._persist = persist
        self._policy = policy
        self._probe_timeout = probe_timeout
        self._op: _Op | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._start_failure: str | None = None
        self._failure: str | None = None
        self._restart_pending = False
        self._closing = False
        self._attempts = 0
        self._backoff_until = 0.0
        self._next_probe = 0.0
        self._task: asyncio.Task[None] | None = None

    # --- hooks (a subclass fills these in) -------------------------------------------------

    def _launch(self) -> GatewayProcess:
        """Start the process (in STARTING) and return it, watched.

        Raises:
            OSError: It could not be started.
            LaunchRefused: It must not be started (the message is the whole error).
        """
        raise NotImplementedError

    def _became_ready(self, child: GatewayProcess) -> None:
        """Readiness arrived for ``child`` (learn its port, say so in the log)."""

    def _exit_detail(self, code: int | None) -> str | None:
        """The process's own words about its exit, if any (appended to ``exit N``)."""
        return None

    def _final_error(self) -> str | None:
        """After an exit: the error if restarting will not help (goes FATAL), else None."""
        return None

    async def _await_released(self, child: GatewayProcess) -> None:
        """The process is gone: wait until what it held (port, lock) is free again."""

    async def _probe_ok(self) -> bool:
        """One health probe of the RUNNING process: ``GET /readyz`` on its host and port."""
        return self.port is not None and await probe_readyz(
            connect_host(self.host), self.port, self._probe_timeout
        )

    def _forget_process(self) -> None:
        """The process is gone and released (drop a pid file, stop a poller)."""

    def try_adopt(self) -> bool:
        """Adopt an already running process of this unit; True if one was adopted."""
        return False

    # --- what the supervisor reads -----------------------------------------------------

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
        """Forget an idle unit: end its driver task."""
        if self._task is not None:
            self._task.cancel()

    def owns_pid(self, pid: int) -> bool:
        """Is ``pid`` this unit's current process?"""
        return self.child is not None and self.child.pid == pid

    # --- commands (from the control socket) --------------------------------------------

    async def start(self) -> str | None:
        """Make the unit desired-up and wait until it runs.

        Returns:
            None once RUNNING; else a one-line error (the process's own message when it
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
        """Make the unit desired-down and wait until its process is gone and released."""
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
        """Stop the process if one runs, then start a new one (desired-up)."""
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
            f"{self.kind} {self.name}: a {op.kind} is in progress (state {self.state.value}); "
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
        self._persist()  # writes only if the file differs (and retries a failed save)

    # --- lifecycle -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the driver task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"{self.kind}:{self.name}"
            )

    async def close(self, *, stop_process: bool) -> None:
        """End supervision: stop the process first if asked, else leave it running."""
        self._closing = True
        if stop_process:
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

    def _adopted(self, child: GatewayProcess) -> None:
        """Take ``child`` (found running) as this unit's RUNNING process; it becomes desired."""
        self.child = child
        self._attempts += 1
        self.probes.reset()
        self._next_probe = time.monotonic() + self._policy.probe_interval
        self._fire(_E.ADOPT)
        # A process that runs is wanted by someone: never stop one just by starting.
        self._set_desired(True)

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
            except Exception:  # a bug here must not end supervision of the unit
                _LOG.exception("%s %s: error in state %s", self.kind, self.name, self.state.value)
                self._settle(f"internal error in state {self.state.value}; see supervisor.log")
                await asyncio.sleep(1.0)

    def _fire(self, event: ProcessEvent) -> None:
        before = self.state
        self.state = transition(before, event)
        self._changed.set()
        _LOG.info(
            "%s %s: %s -%s-> %s", self.kind, self.name, before.value, event.value, self.state.value
        )
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
        """Wait until woken, the child exits, readiness arrives (if asked), or ``timeout``."""
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
            # Never spawn a second process for a unit whose process already runs.
            if not self.try_adopt():
                self._fire(_E.START)
                self._spawn()
            return
        await self._wait(None, child=False)

    def _spawn(self) -> None:
        """In STARTING: start the process (a failure to spawn gives up at once)."""
        self._ready.clear()
        self._start_failure = None
        self._failure = None
        self.healthy = None
        self._attempts += 1
        self.tracker.record_start(time.monotonic())
        try:
            self.child = self._launch()
        except LaunchRefused as err:
            self.last_error = str(err)
        except OSError as err:
            self.last_error = f"cannot start the {self.process_noun}: {err}"
        else:
            _LOG.info(
                "%s %s: spawned %s pid %d", self.kind, self.name, self.process_noun, self.child.pid
            )
            checkpoint("supervisor.spawned")
            return
        _LOG.error("%s %s: %s", self.kind, self.name, self.last_error)
        self._fire(_E.GIVE_UP)

    def _not_ready(self, reason: str) -> None:
        """Readiness will not come for this start (a poller saw why): fail it now."""
        self._start_failure = reason
        self._wake.set()

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
        elif self._start_failure is not None or time.monotonic() >= deadline:
            self._failure = self._start_failure or (
                f"not ready within {self._policy.ready_timeout:g}s"
            )
            _LOG.warning(
                "%s %s: %s pid %d %s",
                self.kind,
                self.name,
                self.process_noun,
                child.pid,
                self._failure,
            )
            self._fire(_E.READY_TIMEOUT)

    def _on_ready(self, child: GatewayProcess) -> None:
        self._became_ready(child)
        self.probes.reset()
        self.healthy = True
        self._next_probe = time.monotonic() + self._policy.probe_interval
        _LOG.info(
            "%s %s: %s pid %d ready on port %s after %.3fs",
            self.kind,
            self.name,
            self.process_noun,
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
        ok = await self._probe_ok()
        self._next_probe = time.monotonic() + self._policy.probe_interval
        self.healthy = ok
        if not child.alive or self.state is not _S.RUNNING:
            return  # the next turn of the loop sees the exit
        if self.probes.record(ok):
            limit = self._policy.probe_failures_before_restart
            self._failure = f"health probe failed {limit} times in a row ({self.probe_hint})"
            detail = self._exit_detail(None)
            if detail:
                self._failure += f": {detail}"
            _LOG.warning(
                "%s %s: %s pid %d %s",
                self.kind,
                self.name,
                self.process_noun,
                child.pid,
                self._failure,
            )
            self._fire(_E.PROBE_FAILED_LIMIT)
        elif not ok:
            _LOG.info("%s %s: health probe failed", self.kind, self.name)

    def _record_exit(self, code: int | None) -> None:
        self.last_exit = code
        if code is None:
            base = "exited (status unknown)"
        elif code < 0:
            base = f"killed by signal {-code}"
        else:
            base = f"exit {code}"
        detail = self._exit_detail(code)
        self._failure = f"{base}: {detail}" if detail else base
        _LOG.warning("%s %s: %s %s", self.kind, self.name, self.process_noun, self._failure)

    async def _release(self) -> None:
        """Make sure the process group is gone, then wait until what it held is free."""
        child = self.child
        if child is None:
            return
        if child.alive:
            # Killed by us (stop, readiness timeout, failed probes): this is its status now,
            # not whatever an earlier process of the unit exited with.
            self.last_exit = await child.terminate(self._policy.stop_timeout)
            checkpoint("supervisor.stop-signalled")
        await self._await_released(child)
        child.close()
        self.child = None
        self.healthy = None
        self._forget_process()

    async def _in_exited(self) -> None:
        await self._release()
        if not self._want_up() or self._restart_pending:
            self._fire(_E.STOP)
            return
        final = self._final_error()
        if final is not None:
            self.last_error = final
            _LOG.error("%s %s: FATAL: %s", self.kind, self.name, self.last_error)
            self._fire(_E.GIVE_UP)
            return
        now = time.monotonic()
        decision = self.tracker.record_exit(now, self.last_exit)
        failure = self._failure or decision.reason
        if decision.action == "fatal":
            self.last_error = f"gave up after {decision.reason}; last: {failure}"
            _LOG.error("%s %s: FATAL: %s", self.kind, self.name, self.last_error)
            self._fire(_E.GIVE_UP)
        else:
            self.last_error = failure
            self._backoff_until = now + decision.delay
            _LOG.info("%s %s: restarting in %.2fs", self.kind, self.name, decision.delay)
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
