"""How the Control UI draws the web chat, against a scripted gateway in the browser.

The page is the real package file, served through Playwright's router, and its WebSocket is
answered by ``FakeGateway`` below (no gateway process): that lets a test hand the page exactly
the transcript shapes of docs/agent.md, stray events, and thousands of runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from openclaw_multi.gateway import page as ui_page
from tests.browser.harness import launch_browser

pytestmark = pytest.mark.e2e
WAIT_MS = 20_000
# Never reached: every request to it is answered by the router below.
ORIGIN = "http://127.0.0.1:9"
SESSION = "agent:main:main"

TOOL_TRANSCRIPT = [
    {"role": "user", "content": [{"type": "text", "text": "which python?"}], "id": "m1"},
    {
        "role": "assistant",
        "content": [
            {"type": "toolCall", "id": "call-1", "name": "system_which", "arguments": {"bin": "py"}}
        ],
        "id": "m2",
    },
    {
        "role": "toolResult",
        "toolCallId": "call-1",
        "toolName": "system_which",
        "content": [{"type": "text", "text": '{"path":"/usr/bin/python3"}'}],
        "isError": False,
        "id": "m3",
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look again."},
            {"type": "toolCall", "id": "call-2", "name": "system_run", "arguments": {}},
        ],
        "id": "m4",
    },
    {
        "role": "toolResult",
        "toolCallId": "call-2",
        "toolName": "system_run",
        "content": [{"type": "text", "text": '{"code":"DENIED","message":"no"}'}],
        "isError": True,
        "id": "m5",
    },
    {"role": "assistant", "content": [{"type": "text", "text": "It is /usr/bin/python3."}]},
]


class FakeGateway:
    """Answers the page's WebSocket: challenge, hello, chat.history; anything else fails."""

    def __init__(self, messages: list[dict[str, Any]], before_history: list[dict[str, Any]]):
        self.messages = messages
        self.before_history = before_history  # events sent just before history answers
        self.socket: Any = None
        self.history_fails = False

    def event(self, name: str, payload: dict[str, Any]) -> None:
        self.socket.send(json.dumps({"type": "event", "event": name, "payload": payload}))

    def attach(self, socket: Any) -> None:
        self.socket = socket
        socket.on_message(self.on_message)
        self.event("connect.challenge", {"nonce": "n", "ts": 1})

    def on_message(self, raw: str | bytes) -> None:
        frame = json.loads(raw)
        method, rid = frame.get("method"), frame.get("id")
        if method == "connect" and frame["params"].get("auth", {}).get("token") != "t":
            error = {
                "code": "INVALID_REQUEST",
                "message": "unauthorized",
                "details": {"code": "AUTH_TOKEN_MISSING"},
            }
            self.socket.send(json.dumps({"type": "res", "id": rid, "ok": False, "error": error}))
        elif method == "connect":
            payload = {
                "type": "hello-ok",
                "features": {"methods": ["chat.history", "chat.send"]},
                "snapshot": {},
                "server": {"connId": "c1"},
            }
            self.socket.send(json.dumps({"type": "res", "id": rid, "ok": True, "payload": payload}))
        elif method == "chat.history" and not self.history_fails:
            for ev in self.before_history:
                self.event("chat", ev)
            history = {"sessionKey": SESSION, "messages": self.messages}
            self.socket.send(json.dumps({"type": "res", "id": rid, "ok": True, "payload": history}))
        else:
            error = {"code": "UNAVAILABLE", "message": "not in this fake"}
            self.socket.send(json.dumps({"type": "res", "id": rid, "ok": False, "error": error}))


@pytest.fixture
def browser() -> Iterator[Any]:
    with launch_browser() as launched:
        yield launched


def open_page(browser: Any, fake: FakeGateway, init_script: str | None = None) -> Any:
    """The Control UI at ORIGIN with its WebSocket answered by ``fake``."""
    page = browser.new_page()
    if init_script:
        page.add_init_script(init_script)

    def serve(route: Any) -> None:
        path = route.request.url[len(ORIGIN) :].split("#")[0] or "/"
        found = ui_page.asset(path)
        if found is None:
            route.fulfill(status=404, body="")
            return
        body, kind = found
        csp = ui_page.CONTENT_SECURITY_POLICY
        route.fulfill(
            status=200, body=body, headers={"Content-Type": kind, "Content-Security-Policy": csp}
        )

    page.route(ORIGIN + "/**", serve)
    page.route_web_socket("ws://127.0.0.1:9/**", fake.attach)
    return page


def test_tool_steps_are_labelled_lines_not_bubbles(browser: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, FakeGateway(TOOL_TRANSCRIPT, []))
    page.goto(ORIGIN + "/#token=t")
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    log = page.locator("#chat-log li")
    expect(log).to_have_count(5, timeout=WAIT_MS)
    texts = [t.strip() for t in log.all_text_contents()]
    assert texts == [
        "You: which python?",
        "Tool step: system_which",
        "Agent: Let me look again.",
        "Tool step: system_run (failed)",
        "Agent: It is /usr/bin/python3.",
    ]
    # No empty bubble for the text-less call, and no raw JSON result anywhere.
    expect(page.locator("#chat-log li.assistant")).to_have_count(2)
    assert '/usr/bin/python3"' not in page.locator("#chat-log").inner_text()
    expect(page.locator('#chat-log li.tool.error[data-tool="system_run"]')).to_have_count(1)


def test_chat_events_before_history_are_ignored(browser: Any) -> None:
    from playwright.sync_api import expect

    stray = {
        "runId": "r-other",
        "sessionKey": "agent:main:telegram:42",
        "seq": 1,
        "state": "final",
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": "not for this page"}],
        },
    }
    page = open_page(browser, FakeGateway([], [stray]))
    page.goto(ORIGIN + "/#token=t")
    expect(page.locator("#chat-session")).to_have_text(f"({SESSION})", timeout=WAIT_MS)
    expect(page.locator("#chat-log li")).to_have_count(0)
    assert "not for this page" not in page.locator("#chat-log").inner_text()


def test_without_history_no_session_is_drawn(browser: Any) -> None:
    """chat.history failed: the page knows no session key, so no other session's run shows."""
    from playwright.sync_api import expect

    fake = FakeGateway([], [])
    fake.history_fails = True
    page = open_page(browser, fake)
    page.goto(ORIGIN + "/#token=t")
    expect(page.locator("#chat-note")).to_contain_text("Could not load", timeout=WAIT_MS)
    text = {"role": "assistant", "content": [{"type": "text", "text": "a telegram reply"}]}
    fake.event(
        "chat",
        {
            "runId": "r1",
            "sessionKey": "agent:main:telegram:42",
            "seq": 1,
            "state": "final",
            "message": text,
        },
    )
    # The event arrived (the events panel lists it) and was not drawn as chat.
    expect(page.locator("#events li", has_text="telegram reply")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#chat-log li")).to_have_count(0)


def test_chat_log_and_runs_are_capped(browser: Any) -> None:
    from playwright.sync_api import expect

    fake = FakeGateway([], [])
    page = open_page(browser, fake)
    page.goto(ORIGIN + "/#token=t")
    expect(page.locator("#chat-session")).to_have_text(f"({SESSION})", timeout=WAIT_MS)
    # 700 runs of this session that never finish: one bubble each, the oldest dropped.
    for i in range(700):
        fake.event(
            "chat",
            {
                "runId": f"r{i}",
                "sessionKey": SESSION,
                "seq": 1,
                "state": "delta",
                "deltaText": f"run {i}",
            },
        )
    last = page.locator("#chat-log li").last
    expect(last).to_have_text("Agent: run 699", timeout=WAIT_MS)
    expect(page.locator("#chat-log li")).to_have_count(500)
    expect(page.locator("#chat-log li").first).to_have_text("Agent: run 200")


# Storage disabled by the browser: every sessionStorage access throws, as Chromium does.
NO_STORAGE = """
Object.defineProperty(window, 'sessionStorage', {
  get() { throw new DOMException('storage is disabled', 'SecurityError'); },
});
"""


def test_disabled_session_storage_still_connects(browser: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, FakeGateway(TOOL_TRANSCRIPT[:1], []), init_script=NO_STORAGE)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(ORIGIN + "/")
    page.get_by_label("Gateway token or password").fill("t")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#chat-log li.user")).to_have_text("You: which python?")
    # "Forget token" works too, from the in-memory copy.
    page.get_by_role("button", name="Forget token").click()
    expect(page.locator("#login-error")).to_have_text("Token forgotten.")
    assert errors == []
