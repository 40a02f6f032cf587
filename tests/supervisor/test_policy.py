"""Restart, probe and reconcile decisions with an injected clock."""

from __future__ import annotations

import itertools

import pytest

from openclaw_multi.errors import ConfigError
from openclaw_multi.supervisor.policy import (
    ProbeTracker,
    RestartDecision,
    RestartPolicy,
    RestartTracker,
    decide,
)
from openclaw_multi.supervisor.states import ProcessState

S = ProcessState

# Burst limit out of the way, for the backoff tests.
NO_BURST = RestartPolicy(burst_limit=10_000)


def crash(tracker: RestartTracker, now: float, uptime: float, code: int = 1) -> RestartDecision:
    """Start at ``now`` and exit ``uptime`` later."""
    tracker.record_start(now)
    return tracker.record_exit(now + uptime, code)


def test_policy_defaults() -> None:
    p = RestartPolicy()
    assert (p.backoff_initial, p.backoff_max, p.backoff_factor) == (0.5, 60.0, 2.0)
    assert (p.stable_after, p.burst_limit, p.burst_window) == (30.0, 5, 60.0)
    assert (p.ready_timeout, p.stop_timeout) == (10.0, 10.0)
    assert (p.probe_interval, p.probe_failures_before_restart) == (2.0, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backoff_initial": 0},
        {"backoff_max": 0.1},
        {"backoff_factor": 0.5},
        {"burst_limit": 0},
        {"burst_window": -1},
        {"stable_after": 0},
        {"stop_timeout": 0},
        {"probe_failures_before_restart": 0},
        {"backoff_initial": float("nan")},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as info:
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_backoff_doubles_and_caps() -> None:
    tracker = RestartTracker(NO_BURST)
    delays = []
    now = 0.0
    for _ in range(12):
        decision = crash(tracker, now, uptime=1.0)
        assert decision.action == "restart"
        delays.append(decision.delay)
        now += 1.0 + decision.delay
    assert delays == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]
    assert tracker.consecutive_failures == 12
    assert tracker.total_restarts == 12


def test_backoff_delay_does_not_overflow() -> None:
    assert RestartPolicy().backoff_delay(10_000) == 60.0
    assert RestartPolicy(backoff_factor=1.0).backoff_delay(10_000) == 0.5


def test_backoff_resets_after_stable_uptime() -> None:
    tracker = RestartTracker(NO_BURST)
    assert crash(tracker, 0.0, 1.0).delay == 0.5
    assert crash(tracker, 10.0, 1.0).delay == 1.0
    assert crash(tracker, 20.0, 1.0).delay == 2.0
    # Up exactly stable_after: the next failure is a first failure again.
    assert crash(tracker, 30.0, 30.0).delay == 0.5
    assert tracker.consecutive_failures == 1
    assert crash(tracker, 100.0, 1.0).delay == 1.0


def test_backoff_applies_after_a_long_but_unstable_run() -> None:
    # A crash after RUNNING for a while still backs off (supervisord #487 restarts at once).
    tracker = RestartTracker(NO_BURST)
    assert crash(tracker, 0.0, 29.9).delay == 0.5
    assert crash(tracker, 100.0, 29.9).delay == 1.0
    assert crash(tracker, 200.0, 29.9).delay == 2.0
    assert crash(tracker, 300.0, 30.0).delay == 0.5


def test_backoff_respects_custom_policy() -> None:
    tracker = RestartTracker(
        RestartPolicy(backoff_initial=1.0, backoff_factor=3.0, backoff_max=10.0, burst_limit=99)
    )
    assert [crash(tracker, 100.0 * i, 1.0).delay for i in range(4)] == [1.0, 3.0, 9.0, 10.0]


def test_exit_with_no_recorded_start_counts_as_stable() -> None:
    # An adopted gateway was not started by us and its exit status is unknown.
    tracker = RestartTracker()
    decision = tracker.record_exit(1000.0, None)
    assert decision == RestartDecision("restart", 0.5, "exited (status unknown)")


def test_restart_reasons() -> None:
    tracker = RestartTracker(NO_BURST)
    assert crash(tracker, 0.0, 1.0, code=1).reason == "exit 1"
    assert crash(tracker, 10.0, 1.0, code=-9).reason == "killed by signal 9"


def test_exit_78_is_fatal_at_once() -> None:
    tracker = RestartTracker()
    decision = crash(tracker, 0.0, 0.2, code=78)
    assert decision == RestartDecision("fatal", 0.0, "exit 78 (config/conflict)")
    assert tracker.total_restarts == 0


def test_exit_78_is_fatal_even_after_a_stable_run() -> None:
    tracker = RestartTracker()
    assert crash(tracker, 0.0, 3600.0, code=78).action == "fatal"


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_burst_limit_refuses_the_next_start_inside_the_window(limit: int) -> None:
    policy = RestartPolicy(burst_limit=limit, burst_window=60.0, backoff_max=0.5)
    tracker = RestartTracker(policy)
    now = 0.0
    for start in range(1, limit + 1):
        decision = crash(tracker, now, uptime=0.1)
        now += 0.1 + decision.delay
        if start < limit:
            assert decision.action == "restart", start
    # The limit-th start has exited: starting again would be the (limit+1)th in the window.
    assert decision == RestartDecision("fatal", 0.0, f"{limit} starts in 60 s")
    assert tracker.total_restarts == limit - 1


def test_burst_limit_default_is_five_in_sixty_seconds() -> None:
    tracker = RestartTracker()
    actions = []
    now = 0.0
    for _ in range(5):
        decision = crash(tracker, now, uptime=0.1)
        actions.append(decision.action)
        now += 0.1 + decision.delay
    assert actions == ["restart"] * 4 + ["fatal"]
    assert decision.reason == "5 starts in 60 s"


def test_burst_limit_not_reached_when_starts_are_spread_out() -> None:
    policy = RestartPolicy(burst_limit=3, burst_window=60.0)
    tracker = RestartTracker(policy)
    # Each run lasts 25 s (short of stable_after) and restarts after its delay: never more
    # than 3 starts within any 60 s, however long it goes on.
    now = 0.0
    for i in range(20):
        decision = crash(tracker, now, uptime=25.0)
        assert decision.action == "restart", i
        now += 25.0 + decision.delay
    assert tracker.total_restarts == 20
    assert decision.delay == 60.0  # the backoff kept growing: no run was stable


def test_burst_window_edge_is_exclusive() -> None:
    policy = RestartPolicy(burst_limit=2, burst_window=10.0, backoff_initial=1.0, backoff_max=1.0)
    tracker = RestartTracker(policy)
    assert crash(tracker, 0.0, 0.5).action == "restart"
    # Start at 0 and 9; exit at 9.5; the next start would be at 10.5: 0 is out of the window.
    assert crash(tracker, 9.0, 0.5).action == "restart"
    # Starts at 9 and 10.5; exit at 11; next start at 12, within 10 s of both.
    assert crash(tracker, 10.5, 0.5).action == "fatal"


def test_burst_window_counts_up_to_the_planned_restart() -> None:
    # A long backoff delay carries the next start past the old starts.
    policy = RestartPolicy(burst_limit=2, burst_window=10.0, backoff_initial=20.0, backoff_max=20.0)
    tracker = RestartTracker(policy)
    assert crash(tracker, 0.0, 0.1).action == "restart"
    assert crash(tracker, 20.1, 0.1).action == "restart"


def test_reset_clears_history_but_keeps_restart_count() -> None:
    tracker = RestartTracker(RestartPolicy(burst_limit=2))
    crash(tracker, 0.0, 0.1)
    assert crash(tracker, 1.0, 0.1).action == "fatal"
    tracker.reset()
    assert tracker.consecutive_failures == 0
    assert tracker.total_restarts == 1
    decision = crash(tracker, 2.0, 0.1)
    assert decision.action == "restart"
    assert decision.delay == 0.5


def test_tracker_is_deterministic() -> None:
    def run() -> list[RestartDecision]:
        tracker = RestartTracker()
        return [crash(tracker, 3.0 * i, 1.0, code=i % 3) for i in range(8)]

    assert run() == run()


def test_probe_tracker_fires_at_the_limit_then_starts_over() -> None:
    probes = ProbeTracker()
    assert [probes.record(False) for _ in range(7)] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
    ]
    assert probes.consecutive_failures == 1


def test_probe_tracker_success_clears_the_count() -> None:
    probes = ProbeTracker(RestartPolicy(probe_failures_before_restart=2))
    assert probes.record(False) is False
    assert probes.record(True) is False
    assert probes.record(False) is False
    assert probes.record(False) is True
    probes.record(False)
    probes.reset()
    assert probes.consecutive_failures == 0
    assert probes.record(True) is False


def test_probe_tracker_limit_one() -> None:
    probes = ProbeTracker(RestartPolicy(probe_failures_before_restart=1))
    assert probes.record(False) is True
    assert probes.record(False) is True


DECIDE = {
    (True, S.STOPPED): "spawn",
    (True, S.STARTING): "none",
    (True, S.RUNNING): "none",
    (True, S.BACKOFF): "wait",
    (True, S.STOPPING): "wait",
    (True, S.EXITED): "wait",
    (True, S.FATAL): "none",
    (False, S.STOPPED): "none",
    (False, S.STARTING): "stop",
    (False, S.RUNNING): "stop",
    (False, S.BACKOFF): "stop",
    (False, S.STOPPING): "wait",
    (False, S.EXITED): "stop",
    (False, S.FATAL): "none",
}


def test_decide_covers_every_case() -> None:
    assert set(DECIDE) == set(itertools.product([True, False], S))


@pytest.mark.parametrize(
    ("desired", "state", "action"), [(d, s, a) for (d, s), a in DECIDE.items()]
)
def test_decide(desired: bool, state: ProcessState, action: str) -> None:
    assert decide(desired, state) == action


def test_decide_actions_are_legal_events() -> None:
    # "spawn" fires START and "stop" fires STOP: both must be legal where decide asks for them.
    from openclaw_multi.supervisor.states import TRANSITIONS, ProcessEvent

    for (desired, state), action in DECIDE.items():
        if action == "spawn":
            assert (state, ProcessEvent.START) in TRANSITIONS, (desired, state)
        if action == "stop":
            assert (state, ProcessEvent.STOP) in TRANSITIONS, (desired, state)
