"""Webchat: the operators' own conversations over the gateway WebSocket.

Inbound webchat is ``chat.send`` (gateway/chat.py); this channel is its outbound half, so
``send {channel:"webchat", to:<sessionKey>}`` drops a message into a session that operator
clients (the Control UI's chat panel) see live and find in ``chat.history``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ..sessions import SessionStoreError
from .base import Channel, ChannelError, Delivery

Post = Callable[..., dict[str, Any]]
"""``gateway.chat.post(session_key, text, *, channel, run_id)``."""


class WebchatChannel(Channel):
    """Posting into a chat session; always up while the gateway is."""

    name = "webchat"

    def __init__(self, post: Post) -> None:
        self._post = post
        self._outbound = 0

    async def start(self) -> None:
        """Nothing to start: operators connect to the gateway itself."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def send(self, to: str, text: str) -> Delivery:
        session_key = to.strip()
        if not session_key:
            raise ChannelError("webchat needs a session key as 'to'")
        try:
            message = self._post(session_key, text, channel=self.name, run_id=str(uuid.uuid4()))
        except SessionStoreError as err:
            raise ChannelError(str(err)) from None
        self._outbound += 1
        return Delivery(message_id=str(message["id"]))

    def health(self) -> dict[str, Any]:
        return {"configured": True, "running": True, "state": "ok", "outbound": self._outbound}
