"""What every channel is: started with the gateway, stopped with it, able to post out.

A channel turns an inbound message into a call of the gateway's responder (the agent, through
the session that channel and peer map to) and posts the reply back itself. Failures of the
outside service never escape a channel: they become its health state and a retry.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol


class ChannelError(Exception):
    """Posting through a channel failed; the message is one line for the caller."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What ``send`` reports of a posted message (the reference's delivery payload keys)."""

    message_id: str
    chat_id: str | None = None


class Responder(Protocol):
    """The gateway's side of an inbound message: ``gateway.chat.respond``."""

    def __call__(
        self, session_key: str, message: str, *, channel: str, sender: str | None = None
    ) -> Awaitable[str]: ...


class Channel(ABC):
    """One messaging channel of a gateway."""

    name: str

    @abstractmethod
    async def start(self) -> None:
        """Begin background work (polling); return at once."""

    @abstractmethod
    async def stop(self) -> None:
        """End background work; in-flight replies are abandoned, stored messages kept."""

    @abstractmethod
    async def send(self, to: str, text: str) -> Delivery:
        """Post ``text`` to ``to``; raise :class:`ChannelError` with a one-line reason."""

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """This channel's state for the gateway's ``health`` snapshot."""


class RetryDelay:
    """Capped exponential backoff with jitter for a failing outside service.

    Jitter keeps several gateways on one host from retrying a shared upstream in lockstep.
    """

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        base: float = min(self.cap, self.first * 2.0 ** (self.failures - 1))
        return base * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.failures = 0
