"""Fault injection for the fault suite (``tests/faults/``): stop a process at a named phase.

Off unless ``OPENCLAW_FAULT_STOP_AT`` is set, and read once, at import. When a
:func:`checkpoint` call names that phase, the process sends itself ``SIGSTOP`` (again after
every ``SIGCONT``): it freezes exactly there for good, and a test that sees state ``T`` in
``/proc/<pid>/stat`` can ``kill -9`` it at that point, deterministically, without sleeping
or racing the code under test.

``OPENCLAW_FAULT_ONCE=<path>`` makes the fault one-shot across processes: the stop happens
only in the process that creates ``<path>`` (``O_EXCL``), so the replacement a supervisor
starts after the kill runs through the same phase normally.

Phases (each a one-line ``checkpoint(...)`` call at that point of the code):

* ``gateway.before-lock``: settings resolved, profile lock not yet taken
* ``gateway.locked``: lock held, nothing bound
* ``gateway.bound``: listening, identity file not yet written
* ``gateway.published``: identity written, ``READY=1`` not yet sent
* ``gateway.serving``: ``READY=1`` sent, serving
* ``gateway.stopping``: SIGTERM received, clients not yet drained
* ``supervisor.spawned``: a gateway was spawned, its ``READY`` not yet handled
* ``supervisor.ready``: the gateway is RUNNING, the ``start`` not yet answered
* ``supervisor.stop-begin``: a stop is decided (desired state saved), nothing signalled
* ``supervisor.stop-signalled``: the gateway got SIGTERM and is gone, port and lock not
  yet awaited

A supervisor passes ``OPENCLAW_FAULT_*`` on to the gateways it starts (every other
``OPENCLAW_*`` variable is dropped), so one environment can target either program.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["FAULT_ENV_PREFIX", "ONCE_ENV", "PHASES", "STOP_AT_ENV", "checkpoint"]

FAULT_ENV_PREFIX: Final = "OPENCLAW_FAULT_"
STOP_AT_ENV: Final = "OPENCLAW_FAULT_STOP_AT"
ONCE_ENV: Final = "OPENCLAW_FAULT_ONCE"

PHASES: Final = frozenset(
    {
        "gateway.before-lock",
        "gateway.locked",
        "gateway.bound",
        "gateway.published",
        "gateway.serving",
        "gateway.stopping",
        "supervisor.spawned",
        "supervisor.ready",
        "supervisor.stop-begin",
        "supervisor.stop-signalled",
    }
)

_STOP_AT: Final = os.environ.get(STOP_AT_ENV) or None
_ONCE: Final = os.environ.get(ONCE_ENV) or None


def checkpoint(phase: str) -> None:
    """Freeze this process (``SIGSTOP``) if ``OPENCLAW_FAULT_STOP_AT`` names ``phase``.

    Args:
        phase: One of :data:`PHASES`.
    """
    if phase != _STOP_AT:
        return
    if _ONCE is not None:
        try:
            os.close(os.open(_ONCE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            return  # another process took the one shot (or the path is unusable)
    # Stay frozen: a supervisor sends SIGCONT right after SIGTERM (to wake a stopped
    # process), and that must not let a frozen phase run on before the test sees state T;
    # only SIGKILL ends the process from here.
    while True:
        os.kill(os.getpid(), signal.SIGSTOP)
