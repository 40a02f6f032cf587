"""Telegram over the Bot API: long polling ``getUpdates`` in, ``sendMessage`` out.

Theory of operation: one poll loop per gateway asks ``getUpdates`` with the next offset and a
server-side wait (``pollTimeoutS``). Each text message from an allowed chat goes to the
responder (the agent, in session ``telegram:<chatId>``) in its own task, so a slow run never
stalls polling; the reply is posted with ``sendMessage`` (split at Telegram's 4,096 characters).
A failing Bot API (refused, 5xx, 429 ``retry_after``, bad token) only changes this channel's
health and the wait before the next try; the responder has stored the inbound message before
anything is posted, so nothing said to the bot is lost when the reply cannot be delivered.

The offset (the next update wanted) is kept in ``offsetPath`` (``<state>/channels/
telegram-offset.json``, 0600) once a batch's messages are handed to the responder, which
stores each one before anything else happens. Telegram forgets an update only when a later
``getUpdates`` carries a higher offset; without the file a gateway restarted while that call
kept failing (an API outage) would be handed the same messages again and answer them twice.
The file names the bot (the numeric id before the token's colon), so a new bot starts fresh.

The bot token is part of every request path: it is never logged, and errors name only the
API's origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ...profiles.atomic import write_file_atomic
from ...profiles.config import TelegramChannel as TelegramConfig
from .. import http_client
from .base import Channel, ChannelError, Delivery, Responder, RetryDelay

_LOG = logging.getLogger("openclaw.gateway.telegram")
MAX_TEXT = 4096
SEND_ATTEMPTS = 5
UNAUTHORIZED_WAIT_S = 60.0
CHANNEL = "telegram"


class _Chat(msgspec.Struct, frozen=True):
    id: int
    type: str = "private"


class _User(msgspec.Struct, frozen=True):
    id: int
    username: str | None = None


class _Message(msgspec.Struct, frozen=True, rename={"sender": "from"}):
    message_id: int
    chat: _Chat
    sender: _User | None = None
    text: str | None = None


class _SavedOffset(msgspec.Struct, frozen=True, rename="camel"):
    bot_id: str
    offset: int


_SAVED_OFFSET = msgspec.json.Decoder(_SavedOffset)


class _Update(msgspec.Struct, frozen=True):
    update_id: int
    message: _Message | None = None


class _Parameters(msgspec.Struct, frozen=True):
    retry_after: int | None = None


class _Answer(msgspec.Struct, frozen=True):
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    error_code: int | None = None
    description: str | None = None
    parameters: _Parameters | None = None


_ANSWER = msgspec.json.Decoder(_Answer)
_UPDATES = msgspec.json.Decoder(list[_Update])
_SENT = msgspec.json.Decoder(_Message)
_ENCODE = msgspec.json.Encoder()


class BotApiError(ChannelError):
    """The Bot API answered ``ok:false`` (or not at all); ``retry_after`` when it said 429."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def session_key(chat_id: int | str) -> str:
    """The session a Telegram chat talks in."""
    return f"{CHANNEL}:{chat_id}"


def allowed(allow_from: list[str | int], chat_id: int, user_id: int | None) -> bool:
    """Whether ``channels.telegram.allowFrom`` lets this chat (or sender) talk to the agent.

    Entries are chat or user ids, as numbers or strings, optionally prefixed ``telegram:`` or
    ``tg:`` as OpenClaw writes them; ``"*"`` allows everyone. Empty allows nobody.
    """
    wanted = {str(chat_id)} | ({str(user_id)} if user_id is not None else set())
    for entry in allow_from:
        text = str(entry).strip()
        for prefix in ("telegram:", "tg:"):
            if text.lower().startswith(prefix):
                text = text[len(prefix) :]
        if text == "*" or text in wanted:
            return True
    return False


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Telegram refuses messages over 4,096 characters: cut at newlines where possible."""
    if not text:
        return ["(empty reply)"]
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        parts.append(text)
    return parts


class TelegramChannel(Channel):
    """The Telegram channel of one gateway."""

    name = CHANNEL

    def __init__(
        self,
        config: TelegramConfig,
        token: str,
        responder: Responder,
        on_change: Callable[[], None] = lambda: None,
        *,
        offset_path: Path | None = None,
    ) -> None:
        self.config = config
        self._bot_id = token.partition(":")[0]  # public (the bot's user id), not the secret
        self._offset_path = offset_path
        self._saved_offset: int | None = None
        self._on_change = on_change
        self._base = f"{config.api_base_url.rstrip('/')}/bot{token}/"
        self._origin = http_client.origin(config.api_base_url)
        self._responder = responder
        self._offset: int | None = None
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self._retry = RetryDelay()
        self._state = "stopped"
        self._last_error: str | None = None
        self._last_poll_ms: int | None = None
        self._last_inbound_ms: int | None = None
        self._last_outbound_ms: int | None = None
        self._inbound = 0
        self._outbound = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping.clear()
        self._offset = self._saved_offset = self._load_offset()
        self._set_state("starting", None)
        self._poller = asyncio.create_task(self._poll_loop(), name="telegram-poll")

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [t for t in (self._poller, *self._replies) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None
        self._set_state("stopped", self._last_error)

    def health(self) -> dict[str, Any]:
        return {
            "configured": True,
            "running": self._poller is not None and not self._poller.done(),
            "state": self._state,
            "lastError": self._last_error,
            "failures": self._retry.failures,
            "lastPollAtMs": self._last_poll_ms,
            "lastInboundAtMs": self._last_inbound_ms,
            "lastOutboundAtMs": self._last_outbound_ms,
            "inbound": self._inbound,
            "outbound": self._outbound,
            "pendingReplies": len(self._replies),
        }

    def _set_state(self, state: str, error: str | None) -> None:
        changed = (state, error) != (self._state, self._last_error)
        self._state, self._last_error = state, error
        if changed:
            self._on_change()  # the gateway's cached health snapshot is stale now

    # -- inbound ---------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                updates = await self._get_updates()
            except BotApiError as err:
                await self._pause_after(err)
                continue
            self._set_state("ok", None)
            self._retry.reset()
            self._last_poll_ms = _now_ms()
            for update in updates:
                self._offset = update.update_id + 1
                self._accept(update)
            if updates:
                await asyncio.sleep(0)  # the reply tasks store their messages first
                self._save_offset()

    def _load_offset(self) -> int | None:
        if self._offset_path is None:
            return None
        try:
            saved = _SAVED_OFFSET.decode(self._offset_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as err:
            _LOG.warning("telegram: ignoring %s: %s", self._offset_path, err)
            return None
        return saved.offset if saved.bot_id == self._bot_id else None

    def _save_offset(self) -> None:
        if self._offset_path is None or self._offset in (None, self._saved_offset):
            return
        data = msgspec.json.encode({"botId": self._bot_id, "offset": self._offset})
        try:
            self._offset_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file_atomic(self._offset_path, data)
        except OSError as err:  # Telegram still holds them: at worst a reply repeats
            _LOG.warning("telegram: cannot save the update offset: %s", err)
            return
        self._saved_offset = self._offset

    async def _get_updates(self) -> list[_Update]:
        params: dict[str, Any] = {
            "timeout": self.config.poll_timeout_s,
            "allowed_updates": ["message"],
        }
        if self._offset is not None:
            params["offset"] = self._offset
        raw = await self._call("getUpdates", params, timeout=self.config.poll_timeout_s + 10)
        try:
            return _UPDATES.decode(raw)
        except msgspec.DecodeError as err:
            raise BotApiError(f"getUpdates: unexpected answer ({err})") from None

    def _accept(self, update: _Update) -> None:
        message = update.message
        if message is None or message.text is None:
            return  # edits, joins, photos without text: nothing for the agent yet
        chat_id = message.chat.id
        user_id = message.sender.id if message.sender is not None else None
        if not allowed(self.config.allow_from, chat_id, user_id):
            _LOG.info("telegram: ignoring a message from chat %s (not in allowFrom)", chat_id)
            return
        self._inbound += 1
        self._last_inbound_ms = _now_ms()
        task = asyncio.create_task(self._reply(chat_id, user_id, message.text))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _reply(self, chat_id: int, user_id: int | None, text: str) -> None:
        sender = str(user_id) if user_id is not None else None
        try:
            answer = await self._responder(
                session_key(chat_id), text, channel=CHANNEL, sender=sender
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the agent failed: say so in the chat, keep polling
            _LOG.warning("telegram: agent run for chat %s failed: %s", chat_id, err)
            answer = f"Sorry, that failed: {err}"
        try:
            await self.send(str(chat_id), answer)
        except ChannelError as err:
            _LOG.warning("telegram: reply to chat %s not delivered: %s", chat_id, err)

    async def _pause_after(self, err: BotApiError) -> None:
        if err.retry_after is not None:
            wait = err.retry_after
            self._set_state("rate-limited", str(err))
        elif err.status in (401, 404):
            wait = UNAUTHORIZED_WAIT_S  # a bad token stays bad: do not hammer the API
            self._retry.failures += 1
            self._set_state("error", str(err))
        else:
            wait = self._retry.next()
            self._set_state("backoff", str(err))
        _LOG.warning("telegram: %s; retrying in %.1f s", err, wait)
        with contextlib.suppress(TimeoutError):  # woken early by stop()
            await asyncio.wait_for(self._stopping.wait(), wait)

    # -- outbound --------------------------------------------------------------------------
    async def send(self, to: str, text: str) -> Delivery:
        chat_id = _chat_target(to)
        last: _Message | None = None
        for part in split_text(text):
            last = await self._send_part(chat_id, part)
        assert last is not None
        self._outbound += 1
        self._last_outbound_ms = _now_ms()
        return Delivery(message_id=str(last.message_id), chat_id=str(last.chat.id))

    async def _send_part(self, chat_id: int | str, text: str) -> _Message:
        retry = RetryDelay()
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                raw = await self._call("sendMessage", {"chat_id": chat_id, "text": text})
                return _SENT.decode(raw)
            except msgspec.DecodeError as err:
                raise BotApiError(f"sendMessage: unexpected answer ({err})") from None
            except BotApiError as err:
                if not err.retryable or attempt == SEND_ATTEMPTS or self._stopping.is_set():
                    raise
                wait = err.retry_after if err.retry_after is not None else retry.next()
                _LOG.info("telegram: sendMessage: %s; retry %d in %.1f s", err, attempt, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _call(self, method: str, params: dict[str, Any], timeout: float = 30.0) -> bytes:
        try:
            response = await http_client.request(
                "POST",
                self._base + method,
                body=_ENCODE.encode(params),
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
        except http_client.HttpError as err:
            raise BotApiError(f"{method}: {err}") from None
        try:
            answer = _ANSWER.decode(response.body)
        except msgspec.DecodeError:
            raise BotApiError(
                f"{method}: HTTP {response.status} from {self._origin}", status=response.status
            ) from None
        if answer.ok:
            return bytes(answer.result)
        retry_after = answer.parameters.retry_after if answer.parameters else None
        status = answer.error_code or response.status
        description = (answer.description or "no description")[:200]
        raise BotApiError(
            f"{method}: {status} {description}",
            status=status,
            retry_after=float(retry_after) if retry_after is not None else None,
        )


def _chat_target(to: str) -> int | str:
    """A chat id (``-100...`` included) or an ``@channelusername``, as Telegram takes them."""
    text = to.strip()
    for prefix in ("telegram:", "tg:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    if text.startswith("@") and len(text) > 1:
        return text
    try:
        return int(text)
    except ValueError:
        raise ChannelError(f"not a Telegram chat id or @username: {to!r}") from None


def _now_ms() -> int:
    return int(time.time() * 1000)
