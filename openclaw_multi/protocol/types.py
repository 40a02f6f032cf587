"""Value types shared by the method params modules (agent, chat, channels, nodes)."""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

import msgspec

__all__ = ["MAX_TIMER_MS", "NonEmpty"]

NonEmpty: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]
"""A string with at least one character (msgspec rejects ``""`` with a validation error)."""

MAX_TIMER_MS: Final = 2_147_483_647
"""The longest wait a client may ask for (a JS timer's ceiling, where the reference clamps)."""
