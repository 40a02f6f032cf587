"""The host dashboard in real headless Chromium: login, live rows, actions, logs, phone width."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openclaw_multi.protocol.control import Start
from tests.browser.harness import Dashboard, launch_browser, start_dashboard
from tests.supervisor.test_daemon import Harness

pytestmark = pytest.mark.e2e
WAIT_MS = 30_000


@pytest.fixture
def browser() -> Iterator[Any]:
    with launch_browser() as launched:
        yield launched


@pytest.fixture
def sup() -> Iterator[Harness]:
    home = Path(tempfile.mkdtemp(prefix="ocb-"))  # short: the control socket path is limited
    harness = Harness(home)
    try:
        yield harness
    finally:
        harness.cleanup()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def dash(sup: Harness) -> Iterator[Dashboard]:
    sup.profile("alpha")
    sup.profile("beta")
    reply = sup.request(Start(profiles=["alpha", "beta"]))
    assert reply.ok, reply.error
    started = start_dashboard(sup.home, sup.env, "--interval", "0.5")
    try:
        yield started
    finally:
        started.stop()


def test_dashboard_in_chromium(browser: Any, dash: Dashboard, sup: Harness) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    data_seen: list[str] = []
    page.on(
        "response",
        lambda r: data_seen.append(r.url) if "/api/" in r.url and r.status == 200 else None,
    )

    # No secret: a login prompt and no data at all.
    page.goto(dash.url)
    expect(page.get_by_label("Dashboard secret")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    assert "alpha" not in page.content()
    # A wrong secret: the prompt again, with an error, still no data.
    page.goto(f"{dash.url}#secret=wrong-{dash.secret}")
    expect(page.locator("#login-error")).to_contain_text("wrong")
    expect(page.get_by_label("Dashboard secret")).to_be_visible()
    assert "alpha" not in page.content()
    assert data_seen == []

    # The printed URL logs in, and the secret leaves the address bar.
    page.goto(dash.login_url)
    alpha = page.locator('tr.profile[data-profile="alpha"]')
    beta = page.locator('tr.profile[data-profile="beta"]')
    expect(alpha).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    expect(beta).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    expect(alpha).to_have_attribute("data-health", "ok", timeout=WAIT_MS)
    assert dash.secret not in page.url and "#" not in page.url
    expect(alpha.locator('[data-label="Port"]')).to_have_text(str(sup.ports["alpha"]))
    expect(page.locator("#summary")).to_contain_text("2 running")

    # Stop alpha from the page: its row changes; beta's does not.
    page.get_by_role("button", name="Stop alpha", exact=True).click()
    expect(alpha).to_have_attribute("data-state", "STOPPED", timeout=WAIT_MS)
    expect(alpha).to_have_attribute("data-health", "down", timeout=WAIT_MS)
    expect(page.locator("#notice")).to_contain_text("alpha: stop done")
    assert sup.status("alpha").state == "STOPPED"
    expect(beta).to_have_attribute("data-state", "RUNNING")

    # Start it again with the keyboard alone.
    start = page.get_by_role("button", name="Start alpha", exact=True)
    expect(start).to_be_enabled()
    start.focus()
    page.keyboard.press("Enter")
    expect(alpha).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    assert sup.status("alpha").state == "RUNNING"

    # Restart beta: a new gateway process, RUNNING again.
    old_pid = sup.status("beta").pid
    page.get_by_role("button", name="Restart beta").click()
    expect(page.locator("#notice")).to_contain_text("beta: restart done", timeout=WAIT_MS)
    expect(beta).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    assert sup.status("beta").pid not in (None, old_pid)

    # The log tail of a profile.
    logs = page.get_by_role("button", name="Show the log of beta")
    logs.click()
    expect(logs).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Last lines of the log of beta")).not_to_be_empty(timeout=WAIT_MS)

    # Sparklines fill in as history accumulates.
    expect(beta.locator('[data-label="Latency"] svg polyline')).to_have_count(1, timeout=WAIT_MS)

    # No cookie at all (127.0.0.1 cookies reach every port): the session id is in this tab's
    # sessionStorage, and a request with it as a cookie reads nothing.
    assert page.context.cookies() == []
    sid = page.evaluate("sessionStorage.getItem('openclaw.dashboard.session')")
    assert sid
    as_cookie = {"Cookie": f"ocdash_{dash.port}={sid}"}
    assert page.request.get(f"{dash.url}api/state", headers=as_cookie).status == 401
    header = {"X-Dashboard-Session": sid}
    assert page.request.get(f"{dash.url}api/state", headers=header).status == 200

    # A reload keeps the session without the secret in the URL.
    page.reload()
    expect(beta).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    # A new tab has no session: it asks for the secret (the printed URL) again.
    # (noopener: a tab of its own, as one the user opens, not a copy of this one's storage).
    with page.context.expect_page() as opened:
        page.evaluate("url => window.open(url, '_blank', 'noopener')", dash.url)
    other = opened.value
    expect(other.get_by_label("Dashboard secret")).to_be_visible(timeout=WAIT_MS)
    assert "alpha" not in other.content()
    other.close()

    # Phone width: no sideways scrolling, every cell still labelled.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(beta).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Log out: back to the prompt, the tab forgets the id, and the old id reads no data.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Dashboard secret")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('openclaw.dashboard.session')") is None
    assert page.request.get(f"{dash.url}api/state", headers=header).status == 401
    assert errors == [] or all("401" in e for e in errors), errors
