"""The channels a gateway runs, their health, and the ``send`` method.

``send`` is idempotent as the reference's is: a repeated ``idempotencyKey`` gets the first
call's answer (success or failure) without posting twice, and a repeat that arrives while the
first is still posting waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...protocol import codes, scopes
from ...protocol.channels import SendParams
from ..methods import Method, MethodError
from .base import Channel, ChannelError, Responder
from .telegram import TelegramChannel

if TYPE_CHECKING:
    from ...profiles.config import ChannelsSection
    from ..connection import Connection

_LOG = logging.getLogger("openclaw.gateway")
SEND_DEDUPE_LIMIT = 1000
TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
TELEGRAM_OFFSET_FILE = "channels/telegram-offset.json"  # under the state dir (telegram.py)


class ChannelRegistry:
    """Build, run and post through the configured channels."""

    def __init__(
        self,
        config: ChannelsSection,
        responder: Responder,
        *,
        on_change: Callable[[], None] = lambda: None,
        env: Mapping[str, str] = os.environ,
        state_dir: Path | None = None,
    ) -> None:
        self.channels: dict[str, Channel] = {}
        self.problems: dict[str, str] = {}
        telegram = config.telegram
        if telegram.enabled:
            token = telegram.bot_token or env.get(TELEGRAM_TOKEN_ENV)
            if token:
                offset_path = state_dir / TELEGRAM_OFFSET_FILE if state_dir else None
                self.channels["telegram"] = TelegramChannel(
                    telegram, token, responder, on_change, offset_path=offset_path
                )
            else:
                self.problems["telegram"] = (
                    f"enabled but no bot token (channels.telegram.botToken or {TELEGRAM_TOKEN_ENV})"
                )
        self._sends: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()

    def add(self, channel: Channel) -> None:
        """Register a channel built elsewhere."""
        self.channels[channel.name] = channel

    def methods(self) -> dict[str, Method]:
        return {"send": Method(self._send, scopes.WRITE, SendParams, True)}

    async def start(self) -> None:
        for name, problem in self.problems.items():
            _LOG.warning("channel %s not started: %s", name, problem)
        for channel in self.channels.values():
            await channel.start()

    async def stop(self) -> None:
        for channel in self.channels.values():
            await channel.stop()

    def health(self) -> dict[str, Any]:
        """Per channel: its own health, or why it is not running."""
        report: dict[str, Any] = {name: ch.health() for name, ch in self.channels.items()}
        for name, problem in self.problems.items():
            report[name] = {
                "configured": False,
                "running": False,
                "state": "error",
                "lastError": problem,
            }
        return report

    def states(self) -> dict[str, str]:
        """Each channel's state in a word (for ``status``; ``health`` has the detail)."""
        return {name: str(report["state"]) for name, report in self.health().items()}

    # -- send ------------------------------------------------------------------------------
    def _send(self, conn: Connection, params: SendParams) -> Any:
        if not params.message.strip():
            raise MethodError(
                codes.INVALID_REQUEST, "invalid send params: text or media is required"
            )
        channel = self._pick(params.channel)
        key = f"{channel.name}:{params.idempotency_key}"
        earlier = self._sends.get(key)
        if earlier is None:
            earlier = self._sends[key] = asyncio.ensure_future(
                self._post(channel, params.to, params.message, params.idempotency_key)
            )
            while len(self._sends) > SEND_DEDUPE_LIMIT:
                self._sends.popitem(last=False)
        return _answer(earlier)

    def _pick(self, name: str | None) -> Channel:
        if name:
            channel = self.channels.get(name.strip().lower())
            if channel is None:
                raise MethodError(codes.INVALID_REQUEST, f"unsupported channel: {name}")
            return channel
        outbound = [c for c in self.channels.values() if c.name != "webchat"]
        if len(outbound) == 1:
            return outbound[0]
        raise MethodError(
            codes.INVALID_REQUEST, "channel required (more or fewer than one configured)"
        )

    async def _post(self, channel: Channel, to: str, text: str, run_id: str) -> dict[str, Any]:
        try:
            delivery = await channel.send(to, text)
        except ChannelError as err:
            raise MethodError(codes.UNAVAILABLE, f"Error: {err}") from None
        answer = {"runId": run_id, "messageId": delivery.message_id, "channel": channel.name}
        if delivery.chat_id is not None:
            answer["chatId"] = delivery.chat_id
        return answer


async def _answer(first: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
    # shield: a caller that leaves must not cancel a post another caller may be waiting on
    return await asyncio.shield(first)
