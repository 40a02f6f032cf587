"""Channels in a real gateway process: Telegram through a loopback Bot API double, and ``send``.

The agent is the built-in offline backend, so a reply is real agent output with no keys. What
is checked: an allowed chat's message reaches the agent and the reply is posted back, both are
stored in the chat's session, a failing Bot API shows in ``health`` and never stops the
gateway, ``send`` posts once per idempotency key, and the bot token appears nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GatewayProcess, wait_until
from fakes.telegram_bot_api import BotApiDouble, bot_api
from wire import Wire

pytestmark = pytest.mark.e2e
BOT_TOKEN = "424242:SECRET-bot-token-value"
CHAT = 42


@pytest.fixture
def api() -> Iterator[BotApiDouble]:
    with bot_api(BOT_TOKEN) as double:
        yield double


def start(
    home: Path,
    factory: Callable[..., GatewayProcess],
    telegram: dict[str, Any],
    env: dict[str, str] | None = None,
) -> GatewayProcess:
    state = home / ".openclaw-chan"
    state.mkdir(exist_ok=True)
    config = {"channels": {"telegram": telegram}, "agent": {"backend": "offline"}}
    (state / "openclaw.json").write_text(json.dumps(config))
    return factory("chan", env_extra=env or {})


def telegram_config(api: BotApiDouble, **extra: Any) -> dict[str, Any]:
    config = {
        "enabled": True,
        "botToken": BOT_TOKEN,
        "apiBaseUrl": api.url,
        "allowFrom": [CHAT],
        "pollTimeoutS": 1,
    }
    config.update(extra)
    return config


def operator(port: int) -> Wire:
    wire = Wire(port)
    assert wire.hello()["ok"] is True
    return wire


def channel_health(op: Wire) -> dict[str, Any]:
    res = op.call("health", {"probe": True})
    assert res["ok"] is True, res
    return dict(res["payload"]["channels"]["telegram"])


def test_a_telegram_message_gets_the_agents_reply_and_both_are_stored(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    gw = start(home, gateway_factory, telegram_config(api))
    api.push(CHAT, "/nodes")
    wait_until(lambda: api.sent_to(CHAT), timeout=15, what="the bot's reply")
    reply = api.sent_to(CHAT)[0]
    assert "node" in reply.lower()  # the offline agent's answer to /nodes
    op = operator(gw.port)
    history = op.call("chat.history", {"sessionKey": f"telegram:{CHAT}"})
    assert history["ok"] is True, history
    messages = history["payload"]["messages"]
    assert [(m["role"], m["channel"]) for m in messages] == [
        ("user", "telegram"),
        ("assistant", "telegram"),
    ]
    assert messages[0]["content"] == [{"type": "text", "text": "/nodes"}]
    assert messages[0]["sender"] == str(CHAT)
    assert messages[1]["content"][0]["text"] == reply
    health = channel_health(op)
    assert health["state"] == "ok" and health["inbound"] == 1 and health["outbound"] == 1
    status = op.call("status")["payload"]
    assert status["channels"] == {"telegram": "ok", "webchat": "ok"}
    assert status["chat"] == {"sessions": 1, "messages": 2, "runsInFlight": 0}
    gw.stop()
    assert BOT_TOKEN not in gw.output()
    assert BOT_TOKEN.split(":")[1] not in gw.output()


def test_send_posts_once_per_idempotency_key(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    gw = start(home, gateway_factory, telegram_config(api))
    op = operator(gw.port)
    params = {"channel": "telegram", "to": str(CHAT), "message": "hi", "idempotencyKey": "k1"}
    first = op.call("send", params)
    assert first["ok"] is True, first
    assert first["payload"]["runId"] == "k1"
    assert first["payload"]["channel"] == "telegram"
    assert first["payload"]["chatId"] == str(CHAT)
    again = op.call("send", params)
    assert again["payload"] == first["payload"]
    assert api.sent_to(CHAT) == ["hi"]  # posted once
    # without "channel": the one configured outbound channel
    other = op.call("send", {"to": str(CHAT), "message": "yo", "idempotencyKey": "k2"})
    assert other["ok"] is True, other
    assert api.sent_to(CHAT) == ["hi", "yo"]


@pytest.mark.parametrize(
    ("params", "code", "text"),
    [
        ({"channel": "fax", "to": "1", "message": "x"}, "INVALID_REQUEST", "unsupported channel"),
        ({"channel": "telegram", "to": "1", "message": "  "}, "INVALID_REQUEST", "text or media"),
        ({"channel": "telegram", "to": "bob", "message": "x"}, "UNAVAILABLE", "not a Telegram"),
        ({"channel": "telegram", "message": "x"}, "INVALID_REQUEST", "to"),
    ],
)
def test_send_refusals(
    home: Path,
    gateway_factory: Callable[..., GatewayProcess],
    api: BotApiDouble,
    params: dict[str, Any],
    code: str,
    text: str,
) -> None:
    gw = start(home, gateway_factory, telegram_config(api))
    res = operator(gw.port).call("send", {"idempotencyKey": "k", **params})
    assert res["ok"] is False
    assert res["error"]["code"] == code
    assert text in res["error"]["message"]
    assert api.sent_to(1) == []


def test_a_bot_api_400_on_send_is_unavailable_and_not_retried(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    gw = start(home, gateway_factory, telegram_config(api))
    api.fail_next("sendMessage", 400)
    res = operator(gw.port).call(
        "send", {"channel": "telegram", "to": "7", "message": "x", "idempotencyKey": "k"}
    )
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert "400" in res["error"]["message"]
    assert api.count_calls("sendMessage") == 1


def test_a_failing_bot_api_shows_in_health_and_the_gateway_keeps_serving(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    api.fail_next("getUpdates", 500, count=3)
    gw = start(home, gateway_factory, telegram_config(api))
    op = operator(gw.port)
    wait_until(lambda: channel_health(op)["state"] == "backoff", timeout=15, what="backoff")
    assert "500" in channel_health(op)["lastError"]
    assert op.call("status")["ok"] is True
    api.push(CHAT, "are you there")
    wait_until(lambda: api.sent_to(CHAT), timeout=20, what="the reply after recovery")
    assert channel_health(op)["state"] == "ok"
    assert gw.proc.poll() is None


def test_enabled_without_a_token_is_reported_not_fatal(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    config = telegram_config(api)
    del config["botToken"]
    gw = start(home, gateway_factory, config)
    health = channel_health(operator(gw.port))
    assert health["state"] == "error" and "no bot token" in health["lastError"]


def test_the_token_may_come_from_the_environment(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    config = telegram_config(api)
    del config["botToken"]
    gw = start(home, gateway_factory, config, env={"TELEGRAM_BOT_TOKEN": BOT_TOKEN})
    api.push(CHAT, "hello")
    wait_until(lambda: api.sent_to(CHAT), timeout=15, what="the reply")
    gw.stop()
    assert BOT_TOKEN not in gw.output()


def test_send_to_webchat_lands_in_the_session_and_is_shown_live(
    home: Path, gateway_factory: Callable[..., GatewayProcess], api: BotApiDouble
) -> None:
    gw = start(home, gateway_factory, telegram_config(api))
    watcher = operator(gw.port)
    op = operator(gw.port)
    params = {"channel": "webchat", "to": "main", "message": "a note", "idempotencyKey": "w1"}
    res = op.call("send", params)
    assert res["ok"] is True, res
    assert res["payload"]["channel"] == "webchat" and res["payload"]["runId"] == "w1"
    for _ in range(50):  # bounded: ticks and presence may come first
        frame = watcher.recv(timeout=10)
        if frame.get("event") == "chat":
            break
    else:
        raise AssertionError("no chat event")
    payload = frame["payload"]
    assert payload["state"] == "final"
    assert payload["message"]["content"] == [{"type": "text", "text": "a note"}]
    assert payload["message"]["id"] == res["payload"]["messageId"]
    history = op.call("chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [(m["role"], m.get("channel")) for m in history] == [("assistant", "webchat")]
    assert api.count_calls("sendMessage") == 0  # webchat never touches Telegram
    blank = op.call(
        "send", {"channel": "webchat", "to": " ", "message": "x", "idempotencyKey": "w2"}
    )
    assert blank["ok"] is False and blank["error"]["code"] == "UNAVAILABLE"
    assert "session key" in blank["error"]["message"]
