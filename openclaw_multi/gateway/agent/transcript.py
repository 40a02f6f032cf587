"""What a run did between the user's message and the final reply, as transcript messages.

The reference keeps an agent's steps in its session transcript: an ``assistant`` message
whose content is the text said so far plus one ``{"type": "toolCall", id, name,
arguments}`` block per call the model asked for, then one ``toolResult`` message per call
(``{role: "toolResult", toolCallId, toolName, content: [text], isError, details?}``), and
at last the ``assistant`` message with the final text. :class:`ToolSteps` builds that list
from what a backend tells its sink; the run registry stores it, in order, before the final
message (or the error/abort entry), so ``chat.history`` shows which node command ran, with
what arguments, and what came back.

Stored results are capped at :data:`MAX_STORED_BYTES` of UTF-8 (a ``system.run`` may print
megabytes): the text is cut there and ``details`` says ``{truncated: true,
originalSizeBytes}`` (the reference's marker). Arguments over the cap are replaced by that
marker (cut JSON would not be an object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_STORED_BYTES = 16 * 1024
"""The most of one tool result (or one call's arguments) kept in the transcript."""


@dataclass(frozen=True, slots=True)
class Step:
    """One transcript message a run produced before its final reply."""

    role: str  # "assistant" (text so far + toolCall blocks) or "toolResult"
    text: str
    blocks: list[dict[str, Any]] | None = None  # assistant: the toolCall blocks
    tool: dict[str, Any] | None = None  # toolResult: toolCallId, toolName, isError, details?


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A call the model asked for, announced before any of its calls runs."""

    call_id: str
    name: str
    args: Any


class ToolSteps:
    """The steps of one run (module docstring), built as the backend reports them."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._announced: set[str] = set()  # call ids already in an assistant step
        self._said = 0  # how much of the run's text an assistant step already holds

    def calls(self, run_text: str, calls: list[PlannedCall]) -> None:
        """The model asked for ``calls`` in one message: one assistant step holding the
        text said since the last step and a ``toolCall`` block for each."""
        fresh = [c for c in calls if c.call_id not in self._announced]
        if not fresh:
            return
        self.steps.append(
            Step(
                "assistant",
                run_text[self._said :],
                blocks=[_tool_call_block(c) for c in fresh],
            )
        )
        self._announced.update(c.call_id for c in fresh)
        self._said = len(run_text)

    def started(self, run_text: str, call_id: str, name: str, args: Any) -> None:
        """A call starts; one not announced with :meth:`calls` gets its own assistant step."""
        self.calls(run_text, [PlannedCall(call_id, name, args)])

    def result(self, call_id: str, name: str, result: Any, *, is_error: bool) -> None:
        """A call finished: its ``toolResult`` step, capped (module docstring)."""
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        text, details = _capped(text)
        tool: dict[str, Any] = {"toolCallId": call_id, "toolName": name, "isError": is_error}
        if details is not None:
            tool["details"] = details
        self.steps.append(Step("toolResult", text, tool=tool))

    def remaining_text(self, run_text: str) -> str:
        """The run's text not yet in a step (what the final message says)."""
        return run_text[self._said :]


def _tool_call_block(call: PlannedCall) -> dict[str, Any]:
    args = call.args if isinstance(call.args, dict) else {}
    size = len(json.dumps(args, ensure_ascii=False).encode())
    if size > MAX_STORED_BYTES:
        args = {"truncated": True, "originalSizeBytes": size}
    return {"type": "toolCall", "id": call.call_id, "name": call.name, "arguments": args}


def _capped(text: str) -> tuple[str, dict[str, Any] | None]:
    data = text.encode()
    if len(data) <= MAX_STORED_BYTES:
        return text, None
    kept = data[:MAX_STORED_BYTES].decode("utf-8", "ignore")  # never half a character
    return kept, {"truncated": True, "originalSizeBytes": len(data)}
