#!/usr/bin/env python3
"""Take the two screenshots of docs/ui.md and the README, in headless system Chromium.

Everything runs in a throw-away home: three profiles (two started under a supervisor, one
left stopped), a node host waiting for approval, one web chat exchange; then all of it is
stopped and removed. Writes ``docs/img/dashboard.png`` and ``docs/img/control-ui.png``::

    .venv/bin/python scripts/screenshots.py [--out docs/img]

Needs Chromium (``apt-get install chromium``) and the ``playwright`` package (dev extra);
Playwright drives the system browser and downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "openclaw_multi.cli.main"]
URL_LINE = re.compile(r"(http://127\.0\.0\.1:\d+/)#secret=(\S+)")
WAIT_MS = 30_000


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.pop("NOTIFY_SOCKET", None)
    env.update(HOME=str(home), NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [*CLI, *args], env=env_for(home), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"openclaw {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def chromium() -> str:
    found = shutil.which(os.environ.get("OPENCLAW_CHROMIUM", "chromium"))
    if not found:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect, sync_playwright

    home = Path(tempfile.mkdtemp(prefix="ocshot-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        cli(home, "profiles", "create", "work", "--generate-token")
        cli(home, "profiles", "create", "personal")
        cli(home, "profiles", "create", "rescue")
        config = json.loads((home / ".openclaw-work" / "openclaw.json").read_text())
        token = config["gateway"]["auth"]["token"]
        cli(home, "profiles", "start", "work", "personal")
        port = json.loads((home / ".openclaw-work" / "gateway.identity.json").read_text())["port"]

        node_log = (home / "node.out").open("wb")
        children.append(
            subprocess.Popen(
                [*CLI, "node", "run", "--profile", "work", "--name", "Build box"],
                env=env_for(home),
                stdout=node_log,
                stderr=subprocess.STDOUT,
            )
        )
        out = home / "dashboard.out"
        with out.open("wb") as sink:
            children.append(
                subprocess.Popen(
                    [*CLI, "dashboard", "--no-open", "--interval", "0.5"],
                    env=env_for(home),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
        match = wait_for(lambda: URL_LINE.search(out.read_text()), "the dashboard URL")
        url, secret = match.group(1), match.group(2)

        args_ = ["--no-sandbox"] if os.geteuid() == 0 else []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=args_)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{url}#secret={secret}")
            work = page.locator('tr.profile[data-profile="work"]')
            expect(work).to_have_attribute("data-health", "ok", timeout=WAIT_MS)
            # Let the sparklines gather a dozen points.
            page.wait_for_function(
                "() => { const p = document.querySelector("
                '\'tr[data-profile="work"] [data-label="RSS"] polyline\');'
                " return p && p.getAttribute('points').split(' ').length >= 12; }",
                timeout=WAIT_MS,
            )
            page.get_by_role("button", name="Show the log of work").click()
            expect(page.get_by_label("Last lines of the log of work")).not_to_be_empty(
                timeout=WAIT_MS
            )
            page.screenshot(path=str(args.out / "dashboard.png"), full_page=True)

            ui = browser.new_page(viewport={"width": 1280, "height": 720})
            ui.goto(f"http://127.0.0.1:{port}/#token={token}")
            expect(ui.locator("#conn-state")).to_have_text("connected", timeout=WAIT_MS)
            expect(ui.locator("#pending li")).to_have_count(1, timeout=WAIT_MS)
            ui.get_by_label("Message", exact=True).fill("Hello! What can you do?")
            ui.get_by_role("button", name="Send").click()
            expect(ui.locator('#chat-log li.assistant[data-state="final"]')).to_have_count(
                1, timeout=WAIT_MS
            )
            ui.screenshot(path=str(args.out / "control-ui.png"), full_page=True)
            browser.close()
        print(f"wrote {args.out / 'dashboard.png'} and {args.out / 'control-ui.png'}")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        subprocess.run(
            [*CLI, "supervisor", "stop", "--all"], env=env_for(home), capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
