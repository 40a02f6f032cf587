"""Pure restart, probe and reconcile decisions. ``now`` is always passed in, never read.

``now`` is monotonic seconds (the caller's ``time.monotonic()``), so a wall-clock jump cannot
fake a stable run or empty the burst window. The shell in ``supervisor/`` owns the processes
and timers; it asks these objects what to do and fires the matching
:class:`~openclaw_multi.supervisor.states.ProcessEvent`:

* a gateway exits (or is killed after a readiness timeout / failed probes) and is gone:
  :meth:`RestartTracker.record_exit` says ``restart`` after ``delay`` (fire ``STOPPED`` to go
  to BACKOFF, then ``BACKOFF_ELAPSED`` after the delay) or ``fatal`` (fire ``GIVE_UP``);
* a health probe answers: :meth:`ProbeTracker.record` says when to fire ``PROBE_FAILED_LIMIT``;
* desired state and current state disagree: :func:`decide` says what to do about it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from openclaw_multi.errors import ConfigError

from .states import ProcessState

EXIT_CONFIG: Final = 78
"""``EX_CONFIG``: the gateway says restarting will not help (bad config, lock/port conflict)."""

RestartAction = Literal["restart", "fatal"]
ReconcileAction = Literal["spawn", "stop", "wait", "none"]


@dataclass(frozen=True)
class RestartPolicy:
    """How one profile's gateway is kept up. All durations are seconds.

    Attributes:
        backoff_initial: Delay before the first restart after a failure.
        backoff_max: Cap on the delay.
        backoff_factor: Each consecutive failure multiplies the delay by this.
        stable_after: A run at least this long resets the delay to ``backoff_initial``.
        burst_limit: At most this many starts within ``burst_window``; the next is refused
            and the profile goes FATAL.
        burst_window: The sliding window for ``burst_limit``.
        ready_timeout: How long a start may take to push readiness before it counts as failed.
        stop_timeout: Grace between SIGTERM and SIGKILL to the process group.
        probe_interval: Time between health probes of a RUNNING gateway.
        probe_failures_before_restart: Consecutive failed probes that mean "hung".
    """

    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    backoff_factor: float = 2.0
    stable_after: float = 30.0
    burst_limit: int = 5
    burst_window: float = 60.0
    ready_timeout: float = 10.0
    stop_timeout: float = 10.0
    probe_interval: float = 2.0
    probe_failures_before_restart: int = 3

    def __post_init__(self) -> None:
        for name in (
            "backoff_initial",
            "stable_after",
            "burst_window",
            "ready_timeout",
            "stop_timeout",
            "probe_interval",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"restart policy: {name} must be > 0, got {getattr(self, name)}")
        if not self.backoff_max >= self.backoff_initial:
            raise ConfigError(
                f"restart policy: backoff_max ({self.backoff_max}) must be >= "
                f"backoff_initial ({self.backoff_initial})"
            )
        if not self.backoff_factor >= 1:
            raise ConfigError(
                f"restart policy: backoff_factor must be >= 1, got {self.backoff_factor}"
            )
        if self.burst_limit < 1:
            raise ConfigError(f"restart policy: burst_limit must be >= 1, got {self.burst_limit}")
        if self.probe_failures_before_restart < 1:
            raise ConfigError(
                "restart policy: probe_failures_before_restart must be >= 1, "
                f"got {self.probe_failures_before_restart}"
            )

    def backoff_delay(self, failures: int) -> float:
        """The delay before restarting after ``failures`` consecutive failures (1 = first)."""
        delay = self.backoff_initial
        # Multiply step by step and stop at the cap: no float overflow after a long outage.
        for _ in range(failures - 1):
            delay *= self.backoff_factor
            if delay >= self.backoff_max:
                return self.backoff_max
        return min(delay, self.backoff_max)


@dataclass(frozen=True)
class RestartDecision:
    """What to do after a gateway is gone.

    Attributes:
        action: ``"restart"`` after ``delay`` seconds, or ``"fatal"`` (``delay`` is 0).
        delay: Seconds to wait in BACKOFF before starting again.
        reason: One line for logs and ``last_error``; for exit 78 the caller appends the
            gateway's own message.
    """

    action: RestartAction
    delay: float
    reason: str


class RestartTracker:
    """One profile's restart history: backoff steps, burst window, restart count.

    Mutable but deterministic: the same calls with the same ``now`` give the same decisions.
    Call :meth:`record_start` when a process is spawned and :meth:`record_exit` once it is
    gone; :meth:`reset` on an explicit ``profiles start`` or ``profiles reset``.
    """

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RestartPolicy()
        self._starts: deque[float] = deque()
        self._last_start: float | None = None
        self.consecutive_failures = 0
        """Exits in a row without a run of ``stable_after`` in between, this one included."""
        self.total_restarts = 0
        """Restarts decided since this tracker was made; :meth:`reset` keeps it (for display)."""

    def record_start(self, now: float) -> None:
        """Note that a process was spawned at ``now``."""
        self._starts.append(now)
        self._last_start = now
        self._forget_before(now - self.policy.burst_window)

    def record_exit(self, now: float, exit_code: int | None) -> RestartDecision:
        """Decide what follows the exit of the process last started.

        Args:
            now: Monotonic seconds when the process was found gone.
            exit_code: Its exit status (negative for a signal, as ``subprocess`` reports it),
                or ``None`` when unknown (an adopted gateway is not our child).

        Returns:
            ``fatal`` for exit 78, or when restarting would make more than ``burst_limit``
            starts within ``burst_window``; otherwise ``restart`` after the current backoff
            delay.
        """
        policy = self.policy
        # A run with no recorded start (adopted) is treated as stable: it was up before us.
        uptime = None if self._last_start is None else now - self._last_start
        if uptime is None or uptime >= policy.stable_after:
            self.consecutive_failures = 0
        self.consecutive_failures += 1
        self._last_start = None

        if exit_code == EXIT_CONFIG:
            return RestartDecision("fatal", 0.0, f"exit {EXIT_CONFIG} (config/conflict)")

        delay = policy.backoff_delay(self.consecutive_failures)
        # Count against the window ending when the restart would happen, so the refused
        # start is exactly the (burst_limit + 1)th within any window.
        self._forget_before(now + delay - policy.burst_window)
        if len(self._starts) >= policy.burst_limit:
            return RestartDecision(
                "fatal", 0.0, f"{len(self._starts)} starts in {policy.burst_window:g} s"
            )

        self.total_restarts += 1
        return RestartDecision("restart", delay, _exit_reason(exit_code))

    def reset(self) -> None:
        """Forget starts and failures (``profiles start`` / ``profiles reset`` clear FATAL)."""
        self._starts.clear()
        self._last_start = None
        self.consecutive_failures = 0

    def _forget_before(self, cutoff: float) -> None:
        # A start exactly ``burst_window`` ago is outside the window.
        while self._starts and self._starts[0] <= cutoff:
            self._starts.popleft()


def _exit_reason(exit_code: int | None) -> str:
    if exit_code is None:
        return "exited (status unknown)"
    if exit_code < 0:
        return f"killed by signal {-exit_code}"
    return f"exit {exit_code}"


class ProbeTracker:
    """Counts consecutive failed health probes of one RUNNING gateway."""

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self.limit = (
            policy if policy is not None else RestartPolicy()
        ).probe_failures_before_restart
        self.consecutive_failures = 0

    def record(self, ok: bool) -> bool:
        """Record one probe result.

        Returns:
            True when this failure reaches ``probe_failures_before_restart`` in a row: fire
            ``PROBE_FAILED_LIMIT``. The count starts again from zero.
        """
        if ok:
            self.consecutive_failures = 0
            return False
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.limit:
            self.consecutive_failures = 0
            return True
        return False

    def reset(self) -> None:
        """Forget failures (a new process was started or adopted)."""
        self.consecutive_failures = 0


_S = ProcessState

_WHEN_UP: Final[dict[ProcessState, ReconcileAction]] = {
    _S.STOPPED: "spawn",
    _S.STARTING: "none",
    _S.RUNNING: "none",
    _S.BACKOFF: "wait",  # the backoff timer will fire BACKOFF_ELAPSED
    _S.STOPPING: "wait",  # spawn once STOPPED
    _S.EXITED: "wait",  # the policy decides once port and lock are free
    _S.FATAL: "none",  # only a person's start/reset leaves FATAL
}
_WHEN_DOWN: Final[dict[ProcessState, ReconcileAction]] = {
    _S.STOPPED: "none",
    _S.STARTING: "stop",
    _S.RUNNING: "stop",
    _S.BACKOFF: "stop",  # cancels the scheduled restart
    _S.STOPPING: "wait",
    _S.EXITED: "stop",  # finish the cleanup as a stop rather than a restart
    _S.FATAL: "none",  # nothing runs; FATAL stays visible until reset
}


def decide(desired: bool, state: ProcessState) -> ReconcileAction:
    """What reconciling desired state with the current state calls for.

    Args:
        desired: Whether the profile should run.
        state: Its current state.

    Returns:
        ``"spawn"`` (fire START and spawn), ``"stop"`` (fire STOP and signal if a process
        exists), ``"wait"`` (something is in flight; reconcile again after the next event),
        or ``"none"`` (nothing to do).
    """
    return (_WHEN_UP if desired else _WHEN_DOWN)[state]
