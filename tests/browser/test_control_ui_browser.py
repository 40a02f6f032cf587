"""The gateway Control UI in real headless Chromium, against a real token gateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import launch_browser
from tests.conftest import GatewayProcess
from tests.device_key import Key
from tests.wire import Wire

pytestmark = pytest.mark.e2e
TOKEN = "ui-t0ken-" + uuid.uuid4().hex
WAIT_MS = 20_000
AUTH_KEY = "openclaw.controlUi.auth"
NODE_CLIENT = {
    "id": "node-host",
    "version": "2026.9.6",
    "platform": "linux",
    "mode": "node",
    "displayName": "Build box",
}
# Ticks every 0.5 s so the page's "last tick" shows one without a long wait.
GATEWAY_CONFIG = {"gateway": {"auth": {"mode": "token"}, "limits": {"tickIntervalMs": 500}}}


@pytest.fixture
def browser() -> Iterator[Any]:
    with launch_browser() as launched:
        yield launched


@pytest.fixture
def gw(home: Path, gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    state = home / ".openclaw-ui"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps(GATEWAY_CONFIG))
    env = {"OPENCLAW_PROFILE": "ui", "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    return gateway_factory("ui", env_extra=env)


def logged_in(browser: Any, gw: GatewayProcess) -> Any:
    """A page connected with the token (typed into the login form)."""
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{gw.port}/")
    page.get_by_label("Gateway token or password").fill(TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    return page


def features(gw: GatewayProcess) -> set[str]:
    wire = Wire(gw.port)
    try:
        hello = wire.hello(auth={"token": TOKEN})
        return set(hello["payload"]["features"]["methods"])
    finally:
        wire.close()


def test_login_identity_presence_and_events(browser: Any, gw: GatewayProcess) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{gw.port}/")
    # No token yet: the login prompt, and no identity anywhere on the page.
    expect(page.get_by_label("Gateway token or password")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#app")).to_be_hidden()
    assert str(gw.state_dir) not in page.content()
    # A wrong token: refused, still the prompt.
    page.get_by_label("Gateway token or password").fill("wrong-" + TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
    expect(page.locator("#app")).to_be_hidden()

    page.get_by_label("Gateway token or password").fill(TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#id-profile")).to_have_text("ui")
    expect(page.locator("#id-port")).to_have_text(str(gw.port))
    expect(page.locator("#id-state-dir")).to_have_text(str(gw.state_dir))
    expect(page.locator("#id-version")).to_contain_text("openclaw-multi")
    expect(page.locator("#id-auth")).to_have_text("token")
    expect(page.locator("#h-status")).to_have_text("ok")
    # The token sits in this tab's sessionStorage only: no cookie, no localStorage, no URL.
    stored = page.evaluate(f"sessionStorage.getItem('{AUTH_KEY}')")
    assert json.loads(stored) == {"kind": "token", "secret": TOKEN}
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert TOKEN not in page.url

    # Presence: this page, then a second client appears and leaves.
    clients = page.locator("#clients tr")
    expect(clients).to_have_count(1, timeout=WAIT_MS)
    expect(clients.first).to_contain_text("(this page)")
    second = Wire(gw.port)
    assert second.hello(auth={"token": TOKEN})["ok"] is True
    expect(page.locator('#clients tr[data-client="cli"]')).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#h-operators")).to_have_text("2", timeout=WAIT_MS)
    second.close()
    expect(page.locator('#clients tr[data-client="cli"]')).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#events li .ev", has_text="presence").first).to_be_visible()
    expect(page.locator("#h-tick")).not_to_contain_text("none yet", timeout=WAIT_MS)

    # A reload reconnects from sessionStorage without asking again.
    page.reload()
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#id-profile")).to_have_text("ui")
    # "Forget token" drops it and shows the prompt.
    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_label("Gateway token or password")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{AUTH_KEY}')") is None

    # A #token= link (a fragment: never sent to the server) connects and leaves the URL clean.
    other = browser.new_page()
    other.goto(f"http://127.0.0.1:{gw.port}/#token={TOKEN}")
    expect(other.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    assert TOKEN not in other.url
    log = gw.output()
    assert TOKEN not in log

    # Phone width: nothing scrolls sideways.
    other.set_viewport_size({"width": 390, "height": 844})
    assert other.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_refused_credential_is_not_kept(browser: Any, gw: GatewayProcess) -> None:
    """A wrong token leaves no trace in the tab, and a #password= link leaves the URL too."""
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{gw.port}/")
    page.get_by_label("Gateway token or password").fill("wrong-" + TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
    assert page.evaluate(f"sessionStorage.getItem('{AUTH_KEY}')") is None
    # A link pasted into this tab changes only the fragment (a hashchange, no reload).
    page.evaluate("location.hash = 'password=pw-in-the-url'")
    # The handler stores the password and cleans the URL in one go; the refusal then drops it.
    page.wait_for_function("() => !location.href.includes('pw-in-the-url')", timeout=WAIT_MS)
    page.wait_for_function(f"() => sessionStorage.getItem('{AUTH_KEY}') === null", timeout=WAIT_MS)
    expect(page.locator("#login-error")).to_contain_text("refused")
    assert "pw-in-the-url" not in page.url


def test_webchat_send_shows_the_reply(browser: Any, gw: GatewayProcess) -> None:
    from playwright.sync_api import expect

    if "chat.send" not in features(gw):
        pytest.fail("the gateway advertises no chat.send")
    page = logged_in(browser, gw)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT_MS)
    page.get_by_label("Message", exact=True).fill("hello from the browser")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-log li.user")).to_have_text("You: hello from the browser")
    reply = page.locator('#chat-log li.assistant[data-state="final"]')
    expect(reply).to_have_count(1, timeout=WAIT_MS)
    text = reply.locator(".text").inner_text().strip()
    assert text and text != "…"
    print(f"\nwebchat reply: {text[:120]!r}")
    # The conversation is the gateway's: a fresh page loads it back from chat.history.
    again = logged_in(browser, gw)
    expect(again.locator("#chat-log li.user")).to_contain_text("hello from the browser")
    expect(again.locator("#chat-log li.assistant")).to_have_count(1, timeout=WAIT_MS)


def test_approve_a_pending_node(browser: Any, gw: GatewayProcess) -> None:
    from playwright.sync_api import expect

    if "node.pair.approve" not in features(gw):
        pytest.fail("the gateway advertises no node.pair.approve")
    page = logged_in(browser, gw)
    expect(page.locator("#pending-empty")).to_be_visible()
    key = Key()
    node_wire, res = key.connect(
        gw.port,
        auth={"token": TOKEN},
        role="node",
        scopes=[],
        client=dict(NODE_CLIENT),
        caps=["system"],
        commands=["system.which"],
    )
    try:
        assert res["ok"] is True, res
        pending = page.locator("#pending li")
        expect(pending).to_have_count(1, timeout=WAIT_MS)
        expect(pending).to_contain_text("Build box")
        expect(pending).to_contain_text("system.which")
        page.get_by_role("button", name="Approve Build box").click()
        expect(pending).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#pairing-note")).to_have_text("Build box approved")
        row = page.locator(f'#nodes tr[data-node="{key.device_id}"]')
        expect(row).to_have_attribute("data-approval", "approved", timeout=WAIT_MS)
        # The gateway agrees: the node's surface is approved.
        op = Wire(gw.port)
        op.hello(auth={"token": TOKEN})
        listed = op.call("node.pair.list")["payload"]
        op.close()
        assert listed["pending"] == []
        assert [n["nodeId"] for n in listed["paired"]] == [key.device_id]

        # A second node is rejected from the page: nothing of it is approved.
        spare = Key()
        spare_wire, res = spare.connect(
            gw.port,
            auth={"token": TOKEN},
            role="node",
            scopes=[],
            client={**NODE_CLIENT, "displayName": "Spare box"},
            caps=["system"],
            commands=["system.which"],
        )
        assert res["ok"] is True, res
        expect(pending).to_have_count(1, timeout=WAIT_MS)
        page.get_by_role("button", name="Reject Spare box").click()
        expect(pending).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#pairing-note")).to_have_text("Spare box rejected")
        op = Wire(gw.port)
        op.hello(auth={"token": TOKEN})
        listed = op.call("node.pair.list")["payload"]
        op.close()
        spare_wire.close()
        assert listed["pending"] == []
        assert [n["nodeId"] for n in listed["paired"]] == [key.device_id]
    finally:
        node_wire.close()


def test_password_login_and_reconnect_after_restart(
    browser: Any, home: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    from playwright.sync_api import expect

    state = home / ".openclaw-pw"
    state.mkdir()
    config = {"gateway": {"auth": {"mode": "password"}}}
    (state / "openclaw.json").write_text(json.dumps(config))
    env = {"OPENCLAW_PROFILE": "pw", "OPENCLAW_GATEWAY_PASSWORD": TOKEN}
    gw = gateway_factory("pw", env_extra=env)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{gw.port}/")
    page.get_by_label("Password", exact=True).check()
    page.get_by_label("Gateway token or password").fill(TOKEN)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#id-auth")).to_have_text("password")
    first_conn = page.locator("#id-conn").inner_text()

    # The gateway goes away and comes back on the same port: the page reconnects by itself.
    assert gw.stop() == 0
    expect(page.locator("#conn-state")).to_have_text("reconnecting…", timeout=WAIT_MS)
    gateway_factory("pw", port=gw.port, env_extra=env)
    expect(page.locator("#conn-state")).to_have_text("connected", timeout=30_000)
    expect(page.locator("#id-conn")).not_to_have_text(first_conn)
