"""The contract between the run registry and an agent backend.

A backend gets one :class:`Turn` (the new user message and the session's earlier turns),
the :class:`~.tools.ToolBox` of node commands it may call, and a :class:`RunSink` to stream
into; it returns the final reply text. It raises :class:`BackendError` (a message safe to
show an operator: never a key) for anything that should end the run as an error; the
registry bounds its time and cancels it on abort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...protocol import codes

if TYPE_CHECKING:
    from .tools import ToolBox
    from .transcript import PlannedCall


@dataclass(frozen=True, slots=True)
class Turn:
    """What a backend answers: ``message`` after ``history`` (oldest first)."""

    run_id: str
    session_key: str
    agent_id: str
    message: str
    history: list[tuple[str, str]] = field(default_factory=list)
    system_prompt: str | None = None


class RunSink(Protocol):
    """Where a backend streams what happens during its turn."""

    def delta(self, text: str) -> None:
        """More assistant text (appended to what came before)."""

    def tool_calls(self, calls: list[PlannedCall]) -> None:
        """The model asked for these calls in one message (before any of them runs): the
        transcript keeps them in one assistant message. A backend that runs single calls
        may skip this; :meth:`tool_start` then stands for a message of one call."""

    def tool_start(self, call_id: str, name: str, args: Any) -> None:
        """A tool call is about to run."""

    def tool_result(self, call_id: str, name: str, result: Any, *, is_error: bool) -> None:
        """A tool call finished (``is_error``: the node refused or failed)."""

    def usage(self, usage: dict[str, Any]) -> None:
        """Token counts reported by the model."""


class Backend(Protocol):
    """An agent backend (module docstring)."""

    name: str

    async def reply(self, turn: Turn, tools: ToolBox, sink: RunSink) -> str:
        """Answer ``turn``; stream through ``sink``; return the whole reply text."""
        ...


class BackendError(Exception):
    """A backend failure that ends the run as an error; ``message`` is safe to show."""

    def __init__(self, message: str, code: str = codes.UNAVAILABLE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
