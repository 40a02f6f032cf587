"""The browser tests' own rule: skip without Chromium locally, fail in CI."""

from __future__ import annotations

import pytest

from tests.browser import harness


def test_missing_chromium_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "chromium_path", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="need Chromium in CI"):
        harness.require_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        harness.require_browser()


def test_chromium_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCLAW_CHROMIUM", "/bin/true")
    assert harness.chromium_path() == "/bin/true"
