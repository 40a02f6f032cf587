"""The process state machine: every legal edge, and every other pair refused."""

from __future__ import annotations

import itertools

import pytest

from openclaw_multi.errors import OpenClawError, SupervisorError
from openclaw_multi.supervisor.states import (
    TRANSITIONS,
    IllegalTransition,
    ProcessEvent,
    ProcessState,
    transition,
)

S = ProcessState
E = ProcessEvent

# Written out independently of the module, so a changed edge has to be changed twice.
EXPECTED = {
    (S.STOPPED, E.START): S.STARTING,
    (S.STOPPED, E.ADOPT): S.RUNNING,
    (S.STARTING, E.READY): S.RUNNING,
    (S.STARTING, E.READY_TIMEOUT): S.EXITED,
    (S.STARTING, E.EXITED): S.EXITED,
    (S.STARTING, E.STOP): S.STOPPING,
    (S.STARTING, E.GIVE_UP): S.FATAL,
    (S.RUNNING, E.EXITED): S.EXITED,
    (S.RUNNING, E.PROBE_FAILED_LIMIT): S.EXITED,
    (S.RUNNING, E.STOP): S.STOPPING,
    (S.EXITED, E.STOPPED): S.BACKOFF,
    (S.EXITED, E.GIVE_UP): S.FATAL,
    (S.EXITED, E.STOP): S.STOPPING,
    (S.BACKOFF, E.BACKOFF_ELAPSED): S.STARTING,
    (S.BACKOFF, E.START): S.STARTING,
    (S.BACKOFF, E.STOP): S.STOPPED,
    (S.STOPPING, E.STOPPED): S.STOPPED,
    (S.FATAL, E.START): S.STARTING,
    (S.FATAL, E.RESET): S.STOPPED,
}


def test_state_and_event_names() -> None:
    assert [s.name for s in S] == [
        "STOPPED",
        "STARTING",
        "RUNNING",
        "BACKOFF",
        "STOPPING",
        "EXITED",
        "FATAL",
    ]
    assert {e.name for e in E} == {
        "START",
        "READY",
        "READY_TIMEOUT",
        "EXITED",
        "STOP",
        "STOPPED",
        "BACKOFF_ELAPSED",
        "GIVE_UP",
        "RESET",
        "PROBE_FAILED_LIMIT",
        "ADOPT",
    }


def test_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[S.STOPPED, E.READY] = S.RUNNING  # type: ignore[index]


@pytest.mark.parametrize(("state", "event", "after"), [(s, e, a) for (s, e), a in EXPECTED.items()])
def test_legal_transition(state: ProcessState, event: ProcessEvent, after: ProcessState) -> None:
    assert transition(state, event) is after


ILLEGAL = [pair for pair in itertools.product(S, E) if pair not in EXPECTED]


def test_most_pairs_are_illegal() -> None:
    assert len(ILLEGAL) + len(EXPECTED) == len(S) * len(E)


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transition_names_state_and_event(state: ProcessState, event: ProcessEvent) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(state, event)
    message = str(info.value)
    assert state.name in message
    assert event.name in message
    assert "\n" not in message
    assert info.value.state is state
    assert info.value.event is event
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_illegal_transition_is_a_supervisor_error() -> None:
    assert issubclass(IllegalTransition, SupervisorError)
    assert issubclass(IllegalTransition, OpenClawError)


def test_every_state_is_reachable_from_stopped() -> None:
    seen = {S.STOPPED}
    frontier = [S.STOPPED]
    while frontier:
        state = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src is state and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(S)


def test_every_state_can_get_back_to_stopped() -> None:
    for start in S:
        seen = {start}
        frontier = [start]
        while frontier:
            state = frontier.pop()
            for (src, _), dst in TRANSITIONS.items():
                if src is state and dst not in seen:
                    seen.add(dst)
                    frontier.append(dst)
        assert S.STOPPED in seen, start


def test_no_running_to_starting_shortcut() -> None:
    # supervisord #487: a crash after RUNNING must go through the backoff like any other.
    assert all(
        not (src is S.RUNNING and dst is S.STARTING) for (src, _), dst in TRANSITIONS.items()
    )


def test_crash_loop_path() -> None:
    state = S.STOPPED
    for event in (E.START, E.READY, E.EXITED, E.STOPPED, E.BACKOFF_ELAPSED, E.EXITED, E.GIVE_UP):
        state = transition(state, event)
    assert state is S.FATAL
    assert transition(state, E.RESET) is S.STOPPED
