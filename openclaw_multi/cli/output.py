"""Terminal output shared by every command: colour only on a terminal, never with NO_COLOR.

https://no-color.org: ``NO_COLOR`` set to anything non-empty turns colour off; so does
``TERM=dumb``; and output that is not a terminal (a pipe, a file) never gets escape codes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

__all__ = ["paint", "use_colour"]


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
