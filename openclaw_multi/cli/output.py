"""Terminal output shared by every command: colour only on a terminal, never with NO_COLOR.

https://no-color.org: ``NO_COLOR`` set to anything non-empty turns colour off; so does
``TERM=dumb``; and output that is not a terminal (a pipe, a file) never gets escape codes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..client.logtail import follow_lines, last_lines
from ..errors import OpenClawError

__all__ = ["echo_log", "paint", "terminal_safe", "use_colour"]

# C0 and C1 control characters and DEL: text from elsewhere (a model's reply, a remote
# gateway's or model endpoint's error) could otherwise move the cursor, retitle the window,
# set the clipboard (OSC 52) or overwrite a line (CR). Tab and newline stay as they are.
_CONTROLS: dict[int, str] = {
    c: "\ufffd" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)
}
_ONE_LINE: dict[int, str] = {**_CONTROLS, 0x09: " ", 0x0A: " "}


def use_colour(*, err: bool = False) -> bool:
    """Whether to colour what goes to stdout (or stderr with ``err``)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with control characters shown as U+FFFD (tab and newline kept, or with
    ``one_line`` turned into spaces), for printing text we did not write."""
    return text.translate(_ONE_LINE if one_line else _CONTROLS)


def paint(text: str, enabled: bool, **style: Any) -> str:
    """``click.style(text, **style)`` when ``enabled``, else ``text`` unchanged."""
    return click.style(text, **style) if enabled else text


def echo_log(log: Path, lines: int, *, follow: bool, what: str) -> None:
    """Print the last ``lines`` of ``log``, then with ``follow`` keep printing new lines
    (through rotation) until Ctrl+C or a closed pipe. ``what`` names it in errors."""
    try:
        for line in last_lines(log, lines):
            click.echo(line)
    except FileNotFoundError:
        if not follow:
            raise OpenClawError(f"no log yet for {what} ({log})") from None
    except OSError as err:
        raise OpenClawError(f"cannot read {log}: {err.strerror or err}") from None
    if not follow:
        return
    try:
        for line in follow_lines(log):
            click.echo(line)
    except (KeyboardInterrupt, BrokenPipeError):
        return
