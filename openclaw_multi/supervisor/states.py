"""The life of one profile's gateway process, as an enum of states and a transition table.

Theory of operation
-------------------

Each profile the supervisor manages sits in exactly one :class:`ProcessState`. The names are
supervisord's. Things that happen to the profile are :class:`ProcessEvent` values; the thin
shell that owns the real process (spawn, signals, readiness socket, probes, timers) observes
an occurrence, calls :func:`transition` with the current state and that event, and stores the
result. Nothing here looks at a clock or a process: *when* to fire an event, and with which
exit code or delay, is decided by the shell and by :mod:`openclaw_multi.supervisor.policy`.

The rules the table encodes:

* A start is only a success once the gateway pushes readiness (READY). A readiness timeout is
  a failed start, never a quiet success.
* Every exit nobody asked for -- the process died on its own, never became ready, or stopped
  answering probes -- lands in EXITED. In EXITED the shell makes sure the process group is
  gone (killing it when it is still alive) and waits until the profile's port and lock are
  free; only then does it ask the restart policy, and fire STOPPED (go to BACKOFF, restart
  later) or GIVE_UP (go to FATAL). Respawning before the port is free is how a gateway ends
  up in an endless port-conflict loop.
* Backoff applies after RUNNING too: there is no RUNNING -> STARTING edge (supervisord #487).
* FATAL sticks until a person asks: START (``profiles start``) or RESET (``profiles reset``).
* A stop asked by a person goes through STOPPING until the process is gone and its port and
  lock are free (STOPPED). BACKOFF has no process, so a stop there is immediate.
* EXITED (the event) is fired only for an exit in STARTING or RUNNING; the exit of a process
  being stopped or cleaned up is part of reaching STOPPED, not an event of its own.
* A supervisor that starts and finds a profile's gateway already serving ADOPTs it.

There are no self-loops: firing an event that does not apply (START while RUNNING, STOP while
STOPPED) raises :class:`IllegalTransition`. A shell that wants idempotent commands checks
``(state, event) in TRANSITIONS`` first and answers "already running" itself.

The table::

    state      event               -> state
    ---------  ------------------     ---------
    STOPPED    START                  STARTING
    STOPPED    ADOPT                  RUNNING
    STARTING   READY                  RUNNING
    STARTING   READY_TIMEOUT          EXITED     (shell kills the group)
    STARTING   EXITED                 EXITED
    STARTING   STOP                   STOPPING
    STARTING   GIVE_UP                FATAL      (spawn itself failed)
    RUNNING    EXITED                 EXITED
    RUNNING    PROBE_FAILED_LIMIT     EXITED     (hung: shell kills the group)
    RUNNING    STOP                   STOPPING
    EXITED     STOPPED                BACKOFF    (gone, port+lock free; policy: restart)
    EXITED     GIVE_UP                FATAL      (policy: exit 78 or burst limit)
    EXITED     STOP                   STOPPING
    BACKOFF    BACKOFF_ELAPSED        STARTING
    BACKOFF    START                  STARTING   (an explicit start skips the wait)
    BACKOFF    STOP                   STOPPED
    STOPPING   STOPPED                STOPPED
    FATAL      START                  STARTING
    FATAL      RESET                  STOPPED
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from openclaw_multi.errors import SupervisorError


class ProcessState(enum.Enum):
    """Where one profile's gateway is in its life (supervisord's names)."""

    STOPPED = "STOPPED"
    """No process and nothing scheduled."""
    STARTING = "STARTING"
    """Spawned; waiting for the gateway to push readiness."""
    RUNNING = "RUNNING"
    """Ready and serving (or adopted); health probes run."""
    BACKOFF = "BACKOFF"
    """No process; a restart is scheduled after the policy's delay."""
    STOPPING = "STOPPING"
    """A person asked to stop: SIGTERM, then SIGKILL, to the group; waiting for port+lock."""
    EXITED = "EXITED"
    """Failed without being asked to stop; the shell clears it away before the policy decides."""
    FATAL = "FATAL"
    """Given up (exit 78, burst limit, spawn failed) until a person starts or resets it."""


class ProcessEvent(enum.Enum):
    """Something that happened to a profile's gateway, as the shell reports it."""

    START = "START"
    """A person or the desired state asks the gateway to run."""
    READY = "READY"
    """The gateway pushed readiness: it listens and serves."""
    READY_TIMEOUT = "READY_TIMEOUT"
    """No readiness within ``ready_timeout``: a failed start."""
    EXITED = "EXITED"
    """The process exited unasked (the shell keeps the exit code for the policy)."""
    STOP = "STOP"
    """A person or the desired state asks the gateway to stop."""
    STOPPED = "STOPPED"
    """The process is gone and the profile's port and lock are free."""
    BACKOFF_ELAPSED = "BACKOFF_ELAPSED"
    """The restart delay is over."""
    GIVE_UP = "GIVE_UP"
    """Restarting will not help: exit 78, burst limit, or the spawn itself failed."""
    RESET = "RESET"
    """A person clears FATAL (``profiles reset``)."""
    PROBE_FAILED_LIMIT = "PROBE_FAILED_LIMIT"
    """Too many health probes failed in a row: the gateway is hung."""
    ADOPT = "ADOPT"
    """At supervisor start, this profile's gateway was found already serving."""


_S = ProcessState
_E = ProcessEvent

TRANSITIONS: Final[Mapping[tuple[ProcessState, ProcessEvent], ProcessState]] = MappingProxyType(
    {
        (_S.STOPPED, _E.START): _S.STARTING,
        (_S.STOPPED, _E.ADOPT): _S.RUNNING,
        (_S.STARTING, _E.READY): _S.RUNNING,
        (_S.STARTING, _E.READY_TIMEOUT): _S.EXITED,
        (_S.STARTING, _E.EXITED): _S.EXITED,
        (_S.STARTING, _E.STOP): _S.STOPPING,
        (_S.STARTING, _E.GIVE_UP): _S.FATAL,
        (_S.RUNNING, _E.EXITED): _S.EXITED,
        (_S.RUNNING, _E.PROBE_FAILED_LIMIT): _S.EXITED,
        (_S.RUNNING, _E.STOP): _S.STOPPING,
        (_S.EXITED, _E.STOPPED): _S.BACKOFF,
        (_S.EXITED, _E.GIVE_UP): _S.FATAL,
        (_S.EXITED, _E.STOP): _S.STOPPING,
        (_S.BACKOFF, _E.BACKOFF_ELAPSED): _S.STARTING,
        (_S.BACKOFF, _E.START): _S.STARTING,
        (_S.BACKOFF, _E.STOP): _S.STOPPED,
        (_S.STOPPING, _E.STOPPED): _S.STOPPED,
        (_S.FATAL, _E.START): _S.STARTING,
        (_S.FATAL, _E.RESET): _S.STOPPED,
    }
)
"""Every legal ``(state, event) -> next state``; anything absent is illegal."""


class IllegalTransition(SupervisorError):
    """An event was fired in a state where it has no meaning (a bug in the shell)."""

    def __init__(self, state: ProcessState, event: ProcessEvent) -> None:
        super().__init__(f"can't handle event {event.name} in state {state.name}")
        self.state = state
        self.event = event


def transition(state: ProcessState, event: ProcessEvent) -> ProcessState:
    """Return the state after ``event`` happens in ``state``.

    Args:
        state: The profile's current state.
        event: What just happened.

    Returns:
        The next state, from :data:`TRANSITIONS`.

    Raises:
        IllegalTransition: ``event`` has no meaning in ``state``.
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(state, event) from None
