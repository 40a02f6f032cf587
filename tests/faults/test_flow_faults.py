"""Faults in the command flow (issue 5/8): a node or a channel failing never crashes the
gateway and never loses a stored message.

The pieces are those of tests/e2e/test_command_flow.py (tests/e2e/flow.py): the gateway and
our node host as subprocesses, the Telegram Bot API double and the chat-completions fake in
this process. These faults need no supervisor, so they do not use :class:`FaultHome`; each
one checks the same kind of invariant afterwards: the gateway process still runs and
answers, the chat got exactly the replies it should, and ``chat.history`` holds every
message that was said.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from conftest import GatewayProcess, wait_until
from e2e.flow import (
    BOT_TOKEN,
    CHAT,
    NODE_NAME,
    OPENAI_KEY,
    Stack,
    chat_run,
    conversation,
    history,
    node_answer,
    node_entry,
    text_of,
)
from fakes.openai_server import HANG, FakeOpenAI, http_error, reply
from fakes.telegram_bot_api import BotApiDouble
from wire import Wire

pytestmark = pytest.mark.e2e
ASK_INFO = f"/node {NODE_NAME} system.info"
SLEEP_30 = f'/node {NODE_NAME} system.run {{"command": ["sleep", "30"]}}'
SORRY = "Sorry, that failed: "


def say(api: BotApiDouble, text: str, timeout: float = 20.0) -> str:
    """Push ``text`` into the chat and return the one reply it gets."""
    before = len(api.sent_to(CHAT))
    api.push(CHAT, text)
    wait_until(lambda: len(api.sent_to(CHAT)) > before, timeout, f"a reply to {text!r}")
    posted: str = api.sent_to(CHAT)[before]
    return posted


def channel(op: Wire) -> dict[str, Any]:
    res = op.call("health", {"probe": True})
    assert res["ok"] is True, res
    return dict(res["payload"]["channels"]["telegram"])


def assert_serving(gw: GatewayProcess, op: Wire) -> None:
    """The gateway process runs, answers, and never printed a traceback."""
    assert gw.proc.poll() is None
    assert op.call("health")["ok"] is True
    assert "Traceback" not in gw.output(), gw.output()


def settled(api: BotApiDouble, op: Wire, inbound: int, pending: int = 0) -> bool:
    """Every update confirmed (offset past it) and taken in, with ``pending`` replies still
    to come (0: none still being worked on or sent)."""
    health = channel(op)
    return not api.updates and health["inbound"] == inbound and health["pendingReplies"] == pending


def test_node_killed_mid_call_ends_the_run_with_an_error_reply(
    stack: Stack, api: BotApiDouble
) -> None:
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    node_entry(op, node, approve=True)

    api.push(CHAT, SLEEP_30)
    running = wait_until(
        lambda: [p for p in node.children() if p.name() == "sleep"], 15, "the run on the node"
    )
    stack.strays.extend(running)
    node.proc.kill()
    node.proc.wait(timeout=10)
    wait_until(lambda: api.sent_to(CHAT), 15, "the error reply")
    (error_reply,) = api.sent_to(CHAT)
    assert error_reply.startswith(f"system.run on {NODE_NAME} failed: UNAVAILABLE: DISCONNECTED")

    # the gateway keeps serving: its operators, its channel, its agent
    assert_serving(gw, op)
    assert say(api, "/nodes") == "No nodes are connected."
    messages = history(op)
    assert [m["role"] for m in messages[1:3]] == ["assistant", "toolResult"]
    assert messages[2]["isError"] is True  # the call the node never answered
    assert [(m["role"], text_of(m)) for m in conversation(messages)] == [
        ("user", SLEEP_30),
        ("assistant", error_reply),
        ("user", "/nodes"),
        ("assistant", "No nodes are connected."),
    ]


def test_node_timeouts_end_the_run_not_the_gateway(stack: Stack, api: BotApiDouble) -> None:
    # ticks far apart: a node frozen for a moment is not dropped by its own tick watchdog
    agent = {"backend": "offline", "runTimeoutMs": 2000}
    stack.configure(telegram_url=api.url, agent=agent, tick_ms=30_000)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    node_entry(op, node, approve=True)

    # the node's own timeout: the program is killed, the answer says so
    short = f'/node {NODE_NAME} system.run {{"command": ["sleep", "30"], "timeoutMs": 300}}'
    ran = node_answer(say(api, short), "system.run")
    assert ran["exitCode"] == 124 and ran["timedOut"] is True and ran["success"] is False

    # a node that does not answer at all (frozen): the run's own timeout ends the run
    node.proc.send_signal(signal.SIGSTOP)
    try:
        frozen = say(api, ASK_INFO)
    finally:
        node.proc.send_signal(signal.SIGCONT)
    assert frozen == f"{SORRY}AGENT_TIMEOUT: agent run timed out after 2s", frozen
    assert_serving(gw, op)

    # thawed, the same node answers the next request; the late answer changed nothing
    assert node_answer(say(api, ASK_INFO))["pid"] == node.proc.pid
    messages = conversation(history(op))
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [text_of(m) for m in messages[::2]] == [short, ASK_INFO, ASK_INFO]
    assert messages[3]["stopReason"] == "error" and messages[3]["errorMessage"]
    assert len(api.sent_to(CHAT)) == 3


def test_bot_api_500_and_429_lose_and_double_nothing(stack: Stack, api: BotApiDouble) -> None:
    for method in ("getUpdates", "sendMessage"):
        api.fail_next(method, 500)
        api.fail_next(method, 429, retry_after=1)
    said = ["first", "second", "third"]
    for text in said:  # waiting at Telegram before the gateway polls at all
        api.push(CHAT, text)
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    op = stack.operator()

    wait_until(lambda: len(api.sent_to(CHAT)) >= 3, 30, "three replies")
    wait_until(lambda: settled(api, op, 3), 15, "the channel to settle")
    posted = api.sent_to(CHAT)
    assert len(posted) == 3
    for text in said:  # each delivered exactly once
        assert sum(p.endswith(f"You said: {text}") for p in posted) == 1, posted
    # two refused sends were retried; nothing more was posted
    assert api.count_calls("sendMessage") == 5
    health = channel(op)
    assert health["state"] == "ok" and health["outbound"] == 3
    messages = history(op)
    assert [text_of(m) for m in messages if m["role"] == "user"] == said
    assert len(messages) == 6 and all(m.get("stopReason") != "error" for m in messages)
    assert_serving(gw, op)


def test_model_endpoint_failures_are_error_replies_and_the_message_is_kept(
    stack: Stack, api: BotApiDouble, model: FakeOpenAI
) -> None:
    agent = {
        "backend": "openai",
        "openai": {
            "baseUrl": model.base_url,
            "model": "e2e-model",
            "apiKeyEnv": "E2E_OPENAI_KEY",
            "timeoutMs": 500,
        },
    }
    stack.configure(telegram_url=api.url, agent=agent)
    gw = stack.start_gateway()
    op = stack.operator()
    model.script.extend(
        [
            http_error(500, f"upstream exploded for {OPENAI_KEY}"),
            http_error(429, "slow down"),
            HANG,
            reply("back again"),
        ]
    )
    replies = [say(api, text) for text in ("one", "two", "three", "four")]
    assert replies[0].startswith(SORRY) and "HTTP 500" in replies[0]
    assert replies[1].startswith(SORRY) and "429" in replies[1]
    assert replies[2].startswith(SORRY) and "did not answer within 0.5s" in replies[2]
    assert replies[3] == "back again"
    assert all(OPENAI_KEY not in r for r in replies)

    messages = history(op)
    assert [(m["role"], m.get("stopReason")) for m in messages][::2] == [("user", None)] * 4
    assert [text_of(m) for m in messages[::2]] == ["one", "two", "three", "four"]
    failed = messages[1:6:2]
    assert all(m["stopReason"] == "error" and m["errorMessage"] for m in failed)
    assert all(OPENAI_KEY not in json.dumps(m) for m in messages)

    # webchat meets the same endpoint: an error final, the message stored
    model.script.append(http_error(503, "maintenance"))
    run = chat_run(op, "webchat:faults", "hello?")
    assert run.last["state"] == "error" and "503" in run.last["errorMessage"]
    user, error = history(op, "webchat:faults")
    assert text_of(user) == "hello?" and error["stopReason"] == "error"
    assert_serving(gw, op)


def test_gateway_restart_keeps_every_message_and_the_flow_resumes(
    stack: Stack, api: BotApiDouble
) -> None:
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    node_id = node_entry(op, node, approve=True)["nodeId"]
    first = say(api, ASK_INFO)
    assert node_answer(first)["pid"] == node.proc.pid
    web = chat_run(op, "webchat:restart", "/nodes")
    assert web.last["state"] == "final"

    # a run in flight when the gateway is told to stop
    api.push(CHAT, SLEEP_30)
    wait_until(
        lambda: [p for p in node.children() if p.name() == "sleep"], 15, "the run on the node"
    )
    before = {"telegram": history(op), "webchat": history(op, "webchat:restart")}
    # the in-flight run's message is stored already
    assert len(conversation(before["telegram"])) == 3
    assert gw.stop() == 0
    # the node lost its link: it kills the program it was running for the aborted run
    wait_until(lambda: not node.children(), 15, "the node to end the orphaned run")
    api.push(CHAT, "while you were away")  # Telegram keeps it until a gateway asks

    gw = stack.start_gateway()
    op = stack.operator()
    assert node_entry(op, node, approve=False, timeout=40)["nodeId"] == node_id
    wait_until(lambda: len(api.sent_to(CHAT)) >= 2, 20, "the reply to the waiting message")
    after = history(op)
    assert after[: len(before["telegram"])] == before["telegram"]
    resumed = conversation(after)[3]
    assert resumed["role"] == "assistant" and resumed["stopReason"] == "aborted"
    assert history(op, "webchat:restart") == before["webchat"]
    assert api.sent_to(CHAT)[1].endswith("You said: while you were away")

    again = say(api, ASK_INFO)
    assert node_answer(again)["pid"] == node.proc.pid
    wait_until(lambda: settled(api, op, 2), 15, "the channel to settle")
    assert api.sent_to(CHAT) == [first, api.sent_to(CHAT)[1], again]  # nothing redelivered
    assert [text_of(m) for m in history(op) if m["role"] == "user"] == [
        ASK_INFO,
        SLEEP_30,
        "while you were away",
        ASK_INFO,
    ]
    assert_serving(gw, op)


def test_gateway_crash_mid_run_keeps_what_was_stored(stack: Stack, api: BotApiDouble) -> None:
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    node_entry(op, node, approve=True)
    first = say(api, ASK_INFO)
    api.push(CHAT, SLEEP_30)
    wait_until(
        lambda: [p for p in node.children() if p.name() == "sleep"], 15, "the run on the node"
    )
    stored = history(op)
    assert [text_of(m) for m in conversation(stored)] == [ASK_INFO, first, SLEEP_30]
    gw.proc.kill()  # SIGKILL: no drain, nothing flushed on the way out
    gw.proc.wait(timeout=10)

    gw = stack.start_gateway()
    op = stack.operator()
    assert history(op) == stored  # committed rows survive the crash, nothing half-written
    node_entry(op, node, approve=False, timeout=40)
    assert node_answer(say(api, ASK_INFO))["pid"] == node.proc.pid
    assert [text_of(m) for m in conversation(history(op))][:3] == [ASK_INFO, first, SLEEP_30]
    assert len(conversation(history(op))) == 5
    assert_serving(gw, op)


def test_a_message_queued_behind_a_run_survives_a_crash(stack: Stack, api: BotApiDouble) -> None:
    """Telegram forgets a message once the gateway polls past it; a message waiting behind
    another run of its session must be durable by then (sessions.py, the inbox)."""
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    node_entry(op, node, approve=True)
    api.push(CHAT, SLEEP_30)
    wait_until(
        lambda: [p for p in node.children() if p.name() == "sleep"], 15, "the run on the node"
    )
    api.push(CHAT, "queued behind it")
    wait_until(lambda: settled(api, op, 2, pending=2), 15, "Telegram to hand it over")
    assert [text_of(m) for m in history(op)] == [SLEEP_30]  # its run has not started
    gw.proc.kill()
    gw.proc.wait(timeout=10)

    gw = stack.start_gateway()
    op = stack.operator()
    running, queued, unanswered = history(op)
    assert text_of(running) == SLEEP_30
    assert (queued["role"], text_of(queued), queued["sender"]) == (
        "user",
        "queued behind it",
        str(CHAT),
    )
    assert unanswered["role"] == "assistant" and unanswered["stopReason"] == "aborted"
    assert "1 message(s) accepted before the gateway stopped were never answered" in gw.output()
    node_entry(op, node, approve=False, timeout=40)
    assert node_answer(say(api, ASK_INFO))["pid"] == node.proc.pid
    assert len(conversation(history(op))) == 5
    assert_serving(gw, op)


class BreaksAfterDelivery(BotApiDouble):
    """A Bot API that hands out the first message, then fails every ``getUpdates`` (so it
    never hears the offset that would confirm it) until ``failures`` is cleared."""

    armed = True

    def _get_updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        result = super()._get_updates(body)
        if result and self.armed:
            self.armed = False
            self.fail_next("getUpdates", 500, count=10_000)
        return result


def test_a_bot_api_outage_across_a_restart_answers_nothing_twice(stack: Stack) -> None:
    api = BreaksAfterDelivery(BOT_TOKEN)
    try:
        stack.configure(telegram_url=api.url)
        gw = stack.start_gateway()
        api.push(CHAT, "hello once")
        wait_until(lambda: api.sent_to(CHAT), 15, "the reply")
        polls = api.count_calls("getUpdates")
        wait_until(lambda: api.count_calls("getUpdates") > polls, 15, "a failing poll")
        assert gw.stop() == 0  # restarted in the middle of the outage
        with api._cond:
            api.failures.clear()  # the API is back
        gw = stack.start_gateway()
        op = stack.operator()
        wait_until(lambda: settled(api, op, 0), 15, "the old update to be confirmed")
        assert len(api.sent_to(CHAT)) == 1
        assert say(api, "and again").endswith("You said: and again")
        assert [text_of(m) for m in history(op) if m["role"] == "user"] == [
            "hello once",
            "and again",
        ]
        assert_serving(gw, op)
    finally:
        api.close()
