"""The browser Origin rule (protocol/origin.py), case by case."""

from __future__ import annotations

import pytest

from openclaw_multi.protocol.origin import check_browser_origin, is_browser_client, parse_origin


def test_which_clients_are_checked() -> None:
    assert is_browser_client("openclaw-control-ui", "ui")
    assert is_browser_client("webchat-ui", "ui")
    assert is_browser_client("webchat", "webchat")
    assert is_browser_client("cli", "webchat")
    assert not is_browser_client("cli", "cli")
    assert not is_browser_client("node-host", "node")
    assert not is_browser_client("webchat", "ui")


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("http://127.0.0.1:18789", "http://127.0.0.1:18789"),
        ("HTTP://LocalHost:80", "http://localhost"),
        ("https://gw.example:443/", "https://gw.example"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_parse_origin(raw: str, origin: str) -> None:
    parsed = parse_origin(raw)
    assert parsed is not None and parsed.origin == origin


@pytest.mark.parametrize(
    "raw",
    [None, "", "null", "127.0.0.1", "http://a/b", "http://u:p@host", "http://host?x", "ftp//x"],
)
def test_odd_origins_are_refused(raw: str | None) -> None:
    assert parse_origin(raw) is None
    assert check_browser_origin(raw, "127.0.0.1:1", local=True) == "origin missing or invalid"


@pytest.mark.parametrize(
    ("origin", "host", "local", "allowed", "verdict"),
    [
        # The page served by the gateway itself, over loopback.
        ("http://127.0.0.1:5000", "127.0.0.1:5000", True, (), None),
        ("http://localhost:5000", "localhost:5000", True, (), None),
        # Any loopback page for a loopback peer (a dev server on another port).
        ("http://localhost:3000", "127.0.0.1:5000", True, (), None),
        # ...but not for a remote peer.
        ("http://localhost:3000", "127.0.0.1:5000", False, (), "origin not allowed"),
        # Same host on a private address or a .local / .ts.net name.
        ("http://192.168.1.5:5000", "192.168.1.5:5000", False, (), None),
        ("https://box.tail1.ts.net", "box.tail1.ts.net", False, (), None),
        ("http://nas.local:5000", "nas.local:5000", False, (), None),
        # Same host, but a public name: only with the allowlist.
        ("https://gw.example", "gw.example", False, (), "origin not allowed"),
        ("https://gw.example", "gw.example", False, ("https://GW.example",), None),
        ("https://other.example", "gw.example", False, ("*",), None),
        # A foreign page, even to a loopback gateway (the cross-site WebSocket case).
        ("https://evil.example", "127.0.0.1:5000", True, (), "origin not allowed"),
        ("http://192.168.1.9:5000", "192.168.1.5:5000", False, (), "origin not allowed"),
    ],
)
def test_rule(
    origin: str, host: str, local: bool, allowed: tuple[str, ...], verdict: str | None
) -> None:
    assert check_browser_origin(origin, host, local=local, allowed=allowed) == verdict
