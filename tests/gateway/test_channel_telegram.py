"""The Telegram channel against a Bot API double on loopback (in-process, no gateway).

The responder stands in for the agent: it records what it was asked and answers. What is
checked is the channel's own job: who may talk, what is posted back, and how a failing Bot
API (5xx, 429 retry_after, a bad token) is ridden out without losing or doubling a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fakes.telegram_bot_api import BotApiDouble, bot_api

from openclaw_multi.gateway.channels.base import ChannelError
from openclaw_multi.gateway.channels.telegram import (
    TelegramChannel,
    allowed,
    session_key,
    split_text,
)
from openclaw_multi.profiles.config import TelegramChannel as TelegramConfig

TOKEN = "123456:TEST-token"


async def until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class Agent:
    """Records each inbound message; answers with ``reply`` (or raises ``error``)."""

    def __init__(self, reply: Callable[[str], str] = lambda m: f"echo: {m}") -> None:
        self.asked: list[tuple[str, str, str, str | None]] = []
        self.reply = reply
        self.error: Exception | None = None

    async def __call__(
        self, session_key: str, message: str, *, channel: str, sender: str | None = None
    ) -> str:
        self.asked.append((session_key, message, channel, sender))
        if self.error is not None:
            raise self.error
        return self.reply(message)


def run(
    api: BotApiDouble,
    scenario: Callable[[TelegramChannel, Agent], Awaitable[None]],
    agent: Agent | None = None,
    token: str | None = None,
    **config: Any,
) -> None:
    settings = {"enabled": True, "apiBaseUrl": api.url, "allowFrom": [42], "pollTimeoutS": 1}
    settings.update(config)
    cfg = msgspec.convert(settings, TelegramConfig)
    agent = agent or Agent()

    async def main() -> None:
        channel = TelegramChannel(cfg, token or api.token, agent)
        await channel.start()
        try:
            await scenario(channel, agent)
        finally:
            await asyncio.wait_for(channel.stop(), 5)

    asyncio.run(main())


# -- pure rules ------------------------------------------------------------------------------
def test_allow_from_matches_chat_or_sender_ids_with_openclaw_prefixes() -> None:
    assert allowed([42], 42, None)
    assert allowed(["42"], 42, 7)
    assert allowed(["tg:7"], 99, 7)
    assert allowed(["telegram:-1001"], -1001, None)
    assert allowed(["*"], 5, None)
    assert not allowed([], 42, 42)  # empty allows nobody
    assert not allowed([43, "tg:44"], 42, 41)


def test_long_replies_are_split_under_telegrams_limit() -> None:
    text = ("line\n" * 1000) + "x" * 5000
    parts = split_text(text)
    assert all(0 < len(p) <= 4096 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    assert split_text("") == ["(empty reply)"]


# -- live against the double -----------------------------------------------------------------
def test_an_allowed_message_reaches_the_agent_and_the_reply_is_posted() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        api.push(42, "hello")
        await until(lambda: api.sent_to(42), what="the reply")
        assert agent.asked == [(session_key(42), "hello", "telegram", "42")]
        assert api.sent_to(42) == ["echo: hello"]
        health = channel.health()
        assert (health["state"], health["inbound"], health["outbound"]) == ("ok", 1, 1)

    with bot_api(TOKEN) as api:
        run(api, scenario)


def test_a_chat_not_in_allow_from_is_ignored_and_its_update_confirmed() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        stranger = api.push(666, "let me in")
        api.push(42, "hi")
        await until(lambda: api.sent_to(42), what="the allowed chat's reply")
        assert [a[1] for a in agent.asked] == ["hi"]
        assert api.sent_to(666) == []
        # the next poll confirms both updates: they are not offered again
        await until(lambda: any(b.get("offset", 0) > stranger + 1 for _, b in api.calls))

    with bot_api(TOKEN) as api:
        run(api, scenario)


def test_get_updates_500_backs_off_then_recovers_without_losing_the_message() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        await until(lambda: channel.health()["state"] == "backoff", what="backoff state")
        assert "500" in channel.health()["lastError"]
        api.push(42, "still there?")
        await until(lambda: api.sent_to(42), what="the reply after recovery")
        assert channel.health()["state"] == "ok"
        assert channel.health()["lastError"] is None

    with bot_api(TOKEN) as api:
        api.fail_next("getUpdates", 500, count=2)
        run(api, scenario)


def test_send_message_429_waits_retry_after_and_delivers_once() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        api.push(42, "q")
        await until(lambda: api.sent_to(42), what="the reply")
        assert api.sent_to(42) == ["echo: q"]
        assert api.count_calls("sendMessage") == 2  # one 429, one delivered

    with bot_api(TOKEN) as api:
        api.fail_next("sendMessage", 429, retry_after=1)
        run(api, scenario)


def test_rate_limited_polling_reports_its_state() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        await until(lambda: channel.health()["state"] == "rate-limited", what="rate-limited")
        api.push(42, "after the limit")
        await until(lambda: api.sent_to(42), what="the reply after the wait")

    with bot_api(TOKEN) as api:
        api.fail_next("getUpdates", 429, retry_after=1)
        run(api, scenario)


def test_a_bad_token_is_an_error_state_that_never_shows_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        await until(lambda: channel.health()["state"] == "error", what="error state")
        health = channel.health()
        assert "401" in health["lastError"]
        assert "wrong-token" not in str(health)
        with pytest.raises(ChannelError, match="401"):
            await channel.send("42", "x")

    with bot_api(TOKEN) as api:
        run(api, scenario, token="999:wrong-token")
    assert "wrong-token" not in caplog.text


def test_an_agent_failure_is_told_to_the_chat_and_polling_goes_on() -> None:
    agent = Agent()
    agent.error = RuntimeError("backend down")

    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        api.push(42, "one")
        await until(lambda: api.sent_to(42), what="the failure notice")
        assert "backend down" in api.sent_to(42)[0]
        agent.error = None
        api.push(42, "two")
        await until(lambda: len(api.sent_to(42)) == 2, what="the second reply")
        assert api.sent_to(42)[1] == "echo: two"

    with bot_api(TOKEN) as api:
        run(api, scenario, agent)


def test_a_long_reply_goes_out_in_parts() -> None:
    agent = Agent(reply=lambda m: "y" * 9000)

    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        api.push(42, "long please")
        await until(lambda: len(api.sent_to(42)) == 3, what="three parts")
        assert "".join(api.sent_to(42)) == "y" * 9000

    with bot_api(TOKEN) as api:
        run(api, scenario, agent)


def test_send_refuses_a_target_that_is_not_a_chat() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        with pytest.raises(ChannelError, match="not a Telegram chat id"):
            await channel.send("someone", "x")
        delivery = await channel.send("tg:42", "out of the blue")
        assert delivery.chat_id == "42"
        assert api.sent_to(42) == ["out of the blue"]

    with bot_api(TOKEN) as api:
        run(api, scenario)


def test_stop_ends_a_long_poll_at_once() -> None:
    async def scenario(channel: TelegramChannel, agent: Agent) -> None:
        await until(lambda: api.count_calls("getUpdates") >= 1, what="a poll in flight")

    with bot_api(TOKEN) as api:
        started = time.monotonic()
        run(api, scenario, pollTimeoutS=50)
        assert time.monotonic() - started < 5  # not the 50 s server-side wait


def test_the_offset_outlives_the_channel_and_belongs_to_its_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted channel asks from where the last one got to (a Bot API that kept failing
    never heard that offset); a file of another bot, or garbage, is not used."""
    path = tmp_path / "channels" / "telegram-offset.json"

    def first_offset(api: BotApiDouble, token: str, push: bool) -> object:
        settings = {"enabled": True, "apiBaseUrl": api.url, "allowFrom": [42], "pollTimeoutS": 1}
        cfg = msgspec.convert(settings, TelegramConfig)
        seen = len(api.calls)

        async def main() -> None:
            channel = TelegramChannel(cfg, token, Agent(), offset_path=path)
            await channel.start()
            try:
                if push:
                    api.push(42, "hello")
                    await until(lambda: api.sent_to(42) and path.exists(), what="saved offset")
                await until(lambda: len(api.calls) > seen, what="a poll")
            finally:
                await asyncio.wait_for(channel.stop(), 5)

        asyncio.run(main())
        return api.calls[seen][1].get("offset")

    with bot_api(TOKEN) as api:
        assert first_offset(api, TOKEN, push=True) is None  # nothing saved yet
        saved = json.loads(path.read_text())
        assert saved == {"botId": "123456", "offset": 2}  # the double's first update is 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "TEST-token" not in path.read_text()
        assert first_offset(api, TOKEN, push=False) == 2
    other = "999:OTHER-token"
    with bot_api(other) as api:
        assert first_offset(api, other, push=False) is None  # another bot's numbering
        path.write_text("{not json")
        with caplog.at_level(logging.WARNING, logger="openclaw.gateway.telegram"):
            assert first_offset(api, other, push=False) is None
        assert "ignoring" in caplog.text
