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

__all__ = ["echo_log", "paint", "use_colour"]


def use_colour(*, err: bool = False) -> bool:
    """Whether to colour what goes to stdout (or stderr with ``err``)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


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
