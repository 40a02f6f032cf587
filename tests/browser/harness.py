"""Shared by the dashboard and Control UI tests: a real `openclaw dashboard` process, the
system Chromium driven by Playwright, and supervised profiles.

Chromium is Debian's ``chromium`` (installed by scripts/setup-system-packages); Playwright never
downloads a browser here. Without it, browser tests skip locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until

URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+)/)#secret=(\S+)")


def chromium_path() -> str | None:
    """The system Chromium, if installed (``OPENCLAW_CHROMIUM`` overrides)."""
    for candidate in (os.environ.get("OPENCLAW_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


def require_browser() -> str:
    """The Chromium path; skip (locally) or fail (in CI) when Chromium or Playwright is missing."""
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
        why = "the playwright package is not installed (pip install -e '.[dev]')"
    else:
        why = "no system Chromium (apt-get install chromium, or ./scripts/setup-system-packages)"
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium in CI: {why}")
        pytest.skip(why)
    return path


@contextlib.contextmanager
def launch_browser() -> Iterator[Any]:
    """A headless system Chromium under Playwright, closed afterwards."""
    path = require_browser()
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root cannot use the sandbox
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Dashboard:
    """An `openclaw dashboard` we started."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    secret: str
    output: Path

    @property
    def login_url(self) -> str:
        return f"{self.url}#secret={self.secret}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_dashboard(home: Path, env: dict[str, str], *args: str) -> Dashboard:
    """Run ``openclaw dashboard --no-open`` for ``home`` and read its printed URL."""
    output = home / "dashboard.out"
    cmd = [sys.executable, "-m", "openclaw_multi.cli.main", "dashboard", "--no-open", *args]
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=sink, stderr=subprocess.STDOUT
        )

    def printed() -> re.Match[str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}: {output.read_text()}")
        return URL_LINE.search(output.read_text())

    try:
        match = wait_until(printed, 20.0, "the dashboard URL")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        raise
    assert isinstance(match, re.Match)
    return Dashboard(proc, match.group(1), int(match.group(2)), match.group(3), output)
