"""The audit's checks, with plain values (no files, no processes)."""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec
import pytest

from openclaw_multi.client.audit import AuditInput, audit, token_weakness
from openclaw_multi.profiles.config import ProfileConfig


def _ids(gateway: dict[str, object], **extra: object) -> dict[str, str]:
    config = msgspec.convert({"gateway": gateway}, ProfileConfig)
    snapshot = AuditInput("p", Path("/h/.openclaw-p/openclaw.json"), config, **extra)  # type: ignore[arg-type]
    return {f.id: f.severity for f in audit(snapshot)}


@pytest.mark.parametrize(
    ("token", "weak"),
    [
        (secrets.token_urlsafe(32), False),
        (secrets.token_hex(16), False),
        ("a" * 40, True),
        ("abcabcabcabcabcabcabcabcabc", True),
        ("short", True),
    ],
    ids=["urlsafe-32", "hex-16", "repeated-char", "repeated-run", "short"],  # same on every worker
)
def test_token_weakness(token: str, weak: bool) -> None:
    assert (token_weakness(token) is not None) is weak


def test_safe_loopback_token_profile_has_no_findings() -> None:
    assert _ids({"auth": {"mode": "token", "token": secrets.token_urlsafe(32)}}) == {}


def test_exposure_findings() -> None:
    found = _ids({"bind": "custom", "customBindHost": "0.0.0.0", "auth": {"token": "x" * 10}})
    assert found["bind-non-loopback"] == "medium"
    assert found["tls-off-non-loopback"] == "high"
    assert found["token-weak"] == "high"
    good = secrets.token_urlsafe(32)
    tailnet = _ids(
        {
            "bind": "tailnet",
            "tls": {"enabled": True},
            "auth": {"token": good, "allowTailscale": True},
        }
    )
    assert tailnet == {"bind-non-loopback": "medium", "tailscale-non-loopback": "medium"}
    assert _ids({"bind": "custom", "customBindHost": "::1"}) == {"auth-none": "medium"}


def test_trusted_proxy_findings() -> None:
    found = _ids({"bind": "lan", "tls": {"enabled": True}, "trustedProxies": ["0.0.0.0/0"],
                  "auth": {"mode": "trusted-proxy"}})  # fmt: skip
    assert found["trusted-proxies-wide"] == "high" and found["trusted-proxy-exposed"] == "medium"


def test_remote_findings() -> None:
    assert _ids({"mode": "remote"}) == {"auth-none": "medium", "remote-no-url": "medium"}
    found = _ids({"remote": {"url": "ws://gw.example:1", "token": "t"}})
    assert found["remote-plaintext"] == "high"
    assert _ids({"remote": {"url": "ws://box.tail1234.ts.net:1"}})["remote-plaintext"] == "medium"
    assert "remote-plaintext" not in _ids({"remote": {"url": "ws://127.0.0.1:1"}})
    pinned = _ids({"remote": {"url": "wss://192.0.2.1:1", "tlsFingerprint": "ab" * 32}})
    assert "remote-unpinned-ip" not in pinned
    assert (
        _ids({"remote": {"url": "wss://192.0.2.1:1", "tlsFingerprint": "x"}})["remote-pin-invalid"]
        == "high"
    )


def test_file_and_certificate_findings() -> None:
    modes = {"config": (Path("/c"), 0o644), "tls-key": (Path("/k"), 0o600)}
    found = _ids({"tls": {"enabled": True}}, file_modes=modes, cert_days_left=3.0,
                 state_dir_mode=0o755)  # fmt: skip
    assert found["config-permissions"] == "low"  # no secret in it
    assert found["tls-cert-expiring"] == "medium" and found["state-dir-permissions"] == "medium"
    assert "tls-key-permissions" not in found
    assert _ids({"tls": {"enabled": True}}, cert_days_left=-1.0)["tls-cert-expired"] == "high"


def test_unreadable_config() -> None:
    findings = audit(AuditInput("p", Path("/c"), None, "bad json at 1:2"))
    assert [(f.id, f.severity) for f in findings] == [("config-unreadable", "high")]
