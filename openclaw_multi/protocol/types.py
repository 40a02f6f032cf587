"""Value types shared by the method params modules (agent, chat, channels, nodes)."""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

__all__ = ["NonEmpty"]

NonEmpty: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]
"""A string with at least one character (msgspec rejects ``""`` with a validation error)."""
