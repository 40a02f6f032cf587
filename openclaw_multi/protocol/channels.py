"""Params of the ``send`` method (the reference's ``SendParamsSchema``, the keys we act on)."""

from __future__ import annotations

import msgspec

from .types import NonEmpty


class SendParams(msgspec.Struct, frozen=True, rename="camel"):
    """``send`` {to, message, channel?, idempotencyKey}: post a message out through a channel."""

    to: NonEmpty
    idempotency_key: NonEmpty
    message: str = ""
    channel: str | None = None
    session_key: str | None = None
