"""Issue 5, end to end: a chat message makes the gateway's agent run a command on a node.

Every piece is its own process or server: the gateway and our node host (``openclaw node
run``) are subprocesses; the Telegram Bot API double and the chat-completions fake run in
this process on loopback. What is proved (docs/reliability.md, "Command flow"):

* Telegram -> agent -> ``system.info`` on the approved node -> the node's own answer is
  posted back to the chat, and the chat's session holds both messages (offline backend);
* the same with a model: the fake model asks for the node's ``system_info`` tool, receives
  the node's answer as the tool result, and its final text reaches the chat;
* the same from webchat (``chat.send``): ``chat`` delta and final events, then history;
* a node whose command surface is not approved cannot be invoked: the reply says it awaits
  approval and nothing reaches the node; after ``openclaw nodes approve`` the same request
  works.
"""

from __future__ import annotations

import json
import socket
import sys

import pytest
from conftest import wait_until
from e2e.flow import (
    BOT_TOKEN,
    CHAT,
    NODE_NAME,
    OPENAI_KEY,
    SESSION,
    STORED_SESSION,
    TOKEN,
    NodeHost,
    Stack,
    chat_run,
    conversation,
    history,
    node_answer,
    node_entry,
    text_of,
)
from fakes.openai_server import FakeOpenAI, reply, tool_call
from fakes.telegram_bot_api import BotApiDouble

pytestmark = pytest.mark.e2e
ASK_INFO = f"/node {NODE_NAME} system.info"


def assert_is_the_nodes_info(info: dict[str, object], node: NodeHost, node_id: str) -> None:
    """``system.info`` as only the running node host can answer it, from the node the
    operator approved (its node id is the host's own device key)."""
    assert info["pid"] == node.proc.pid
    assert info["hostname"] == socket.gethostname()
    assert info["platform"] == sys.platform
    assert info["displayName"] == NODE_NAME
    assert "system.info" in info["commands"]  # type: ignore[operator]
    assert node_id == node.node_id()


def test_telegram_message_runs_system_info_on_the_node_and_the_answer_is_posted(
    stack: Stack, api: BotApiDouble
) -> None:
    stack.configure(telegram_url=api.url)
    gw = stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    entry = node_entry(op, node, approve=True)

    api.push(CHAT, ASK_INFO)
    wait_until(lambda: api.sent_to(CHAT), 20, "the reply in the chat")
    (posted,) = api.sent_to(CHAT)
    assert_is_the_nodes_info(node_answer(posted), node, entry["nodeId"])

    user, call, result, assistant = history(op)
    assert (user["role"], text_of(user), user["channel"]) == ("user", ASK_INFO, "telegram")
    # what the agent did is in the history: the node command, its arguments, its answer
    [block] = call["content"]
    assert (call["role"], block["type"], block["name"]) == ("assistant", "toolCall", "system.info")
    assert block["arguments"] == {"nodeId": entry["nodeId"], "params": {}}
    assert (result["role"], result["toolCallId"], result["isError"]) == (
        "toolResult",
        block["id"],
        False,
    )
    assert_is_the_nodes_info(json.loads(text_of(result)), node, entry["nodeId"])
    assert user["sender"] == str(CHAT)
    assert (assistant["role"], assistant["channel"]) == ("assistant", "telegram")
    assert text_of(assistant) == posted
    assert assistant.get("stopReason") not in ("error", "aborted")
    # no secret in anything the processes printed or logged
    gw.stop()
    for text in (gw.output(), node.output(), node.log()):
        assert TOKEN not in text and BOT_TOKEN.split(":")[1] not in text


def test_a_model_calls_the_nodes_tool_and_its_answer_reaches_the_chat(
    stack: Stack, api: BotApiDouble, model: FakeOpenAI
) -> None:
    agent = {
        "backend": "openai",
        "openai": {"baseUrl": model.base_url, "model": "e2e-model", "apiKeyEnv": "E2E_OPENAI_KEY"},
    }
    stack.configure(telegram_url=api.url, agent=agent)
    stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    entry = node_entry(op, node, approve=True)
    final_text = f"Your node {NODE_NAME} runs as pid {node.proc.pid}."
    model.script.extend([tool_call("system_info", {}, "call_info"), reply(final_text)])

    api.push(CHAT, "what is my node?")
    wait_until(lambda: api.sent_to(CHAT), 20, "the model's reply in the chat")
    assert api.sent_to(CHAT) == [final_text]

    first, second = model.requests
    assert first["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    offered = {t["function"]["name"] for t in first["body"]["tools"]}
    assert "system_info" in offered
    assert first["body"]["messages"][-1] == {"role": "user", "content": "what is my node?"}
    # the tool result the model received is the node's own answer
    call, result = second["body"]["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == "system_info"
    assert result["role"] == "tool" and result["tool_call_id"] == "call_info"
    assert_is_the_nodes_info(json.loads(result["content"]), node, entry["nodeId"])

    messages = history(op)
    assert [m["role"] for m in messages] == ["user", "assistant", "toolResult", "assistant"]
    assert messages[1]["content"] == [
        {"type": "toolCall", "id": "call_info", "name": "system_info", "arguments": {}}
    ]
    assert messages[2]["toolCallId"] == "call_info"
    assert json.loads(text_of(messages[2])) == json.loads(result["content"])
    assert [(m["role"], text_of(m)) for m in conversation(messages)] == [
        ("user", "what is my node?"),
        ("assistant", final_text),
    ]


def test_webchat_runs_the_same_command_with_chat_events(stack: Stack) -> None:
    stack.configure()
    stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    entry = node_entry(op, node, approve=True)

    run = chat_run(op, "webchat:e2e", ASK_INFO)
    assert run.states()[-1] == "final" and "delta" in run.states()
    assert all(e["sessionKey"] == "agent:main:webchat:e2e" for e in run.events)
    deltas = [e for e in run.events if e["state"] == "delta"]
    final_text = text_of(run.last["message"])
    assert deltas[-1]["deltaText"] == final_text  # the whole text so far, ending in the answer
    assert_is_the_nodes_info(node_answer(final_text), node, entry["nodeId"])

    user, assistant = conversation(history(op, "webchat:e2e"))
    assert text_of(user) == ASK_INFO and text_of(assistant) == final_text
    assert assistant["runId"] == run.run_id


def test_a_node_awaiting_approval_is_never_invoked_until_approved(
    stack: Stack, api: BotApiDouble
) -> None:
    stack.configure(telegram_url=api.url)
    stack.start_gateway()
    node = stack.start_node()
    op = stack.operator()
    entry = node_entry(op, node, approve=False)
    request_id = entry["pendingRequestId"]
    assert entry["approvalState"] == "pending-approval"
    # a notification leaves a trace in node.log when (and only when) it reaches the node
    notify = f'/node {NODE_NAME} system.notify {{"title": "e2e", "body": "knock"}}'

    api.push(CHAT, notify)
    wait_until(lambda: api.sent_to(CHAT), 20, "the refusal in the chat")
    (refusal,) = api.sent_to(CHAT)
    assert refusal.startswith(f"system.notify on {NODE_NAME} failed: UNAVAILABLE: ")
    assert "awaiting operator approval" in refusal
    assert f"openclaw nodes approve {request_id}" in refusal

    approved = stack.openclaw("nodes", "approve", request_id)
    assert approved.returncode == 0, approved.stderr
    assert TOKEN not in approved.stdout + approved.stderr
    node_entry(op, node, approve=False)  # approved now: returned without approving again
    assert "notification" not in node.log()  # the refused request never reached it

    api.push(CHAT, notify)
    wait_until(lambda: len(api.sent_to(CHAT)) == 2, 20, "the second reply")
    assert api.sent_to(CHAT)[1] == f'system.notify on {NODE_NAME}: {{"ok": true}}'
    wait_until(lambda: "notification (active): e2e - knock" in node.log(), 10, "node.log")
    api.push(CHAT, ASK_INFO)
    wait_until(lambda: len(api.sent_to(CHAT)) == 3, 20, "the third reply")
    assert node_answer(api.sent_to(CHAT)[2])["pid"] == node.proc.pid

    messages = conversation(history(op, STORED_SESSION))  # the stored key: the same session
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert text_of(messages[1]) == refusal
    assert SESSION in STORED_SESSION
