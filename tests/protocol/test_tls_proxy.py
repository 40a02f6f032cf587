"""Pure parts of remote access: fingerprints, the proxy-header verdict, the connect decision."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.handshake import Accepted, AuthPolicy, Rejected, evaluate_connect
from openclaw_multi.protocol.proxy import (
    ProxyPolicy,
    ProxyUser,
    identify_proxy_user,
    parse_networks,
)
from openclaw_multi.protocol.tls import (
    TlsPinMismatch,
    certificate_fingerprint,
    format_fingerprint,
    normalize_fingerprint,
    pinned_client_context,
)

HEX = hashlib.sha256(b"cert").hexdigest()


@pytest.mark.parametrize(
    "text",
    [HEX, HEX.upper(), format_fingerprint(HEX), format_fingerprint(HEX).lower(),
     f"  sha256:{HEX} ", f"SHA256:{format_fingerprint(HEX)}"],
)  # fmt: skip
def test_fingerprint_forms_normalize_alike(text: str) -> None:
    assert normalize_fingerprint(text) == HEX


@pytest.mark.parametrize("text", ["", "abc", HEX[:-1], HEX + "0", HEX[:-1] + "g", "AA:" * 32])
def test_bad_fingerprints_are_refused(text: str) -> None:
    assert normalize_fingerprint(text) is None


def test_format_and_mismatch_message() -> None:
    shown = format_fingerprint(HEX)
    assert len(shown.split(":")) == 32 and shown == shown.upper()
    assert certificate_fingerprint(b"cert") == HEX
    err = TlsPinMismatch("ab" * 32, HEX)
    assert (
        str(err)
        == f"TLS fingerprint mismatch: expected {format_fingerprint('ab' * 32)}, got {shown}"
    )


def test_pinned_context_refuses_a_non_fingerprint() -> None:
    with pytest.raises(ValueError):
        pinned_client_context("nope")
    assert pinned_client_context(None).verify_mode == 0  # CERT_NONE, for probes only


# -- proxy identities --------------------------------------------------------------------------
TAILSCALE = ProxyPolicy(allow_tailscale=True, trusted_proxies=parse_networks(["127.0.0.1", "::1"]))
TRUSTED = ProxyPolicy(
    trusted_proxy_mode=True,
    trusted_proxies=parse_networks(["10.0.0.0/30"]),
    required_headers=("x-forwarded-proto",),
    allow_users=("bob",),
)


def test_no_identity_headers_no_verdict() -> None:
    assert identify_proxy_user({"host": "x"}, "127.0.0.1", TAILSCALE).ignored == ()


def test_tailscale_from_loopback_proxy() -> None:
    verdict = identify_proxy_user(
        {"tailscale-user-login": "alice", "x-forwarded-for": "100.1.2.3, 127.0.0.1"},
        "::ffff:127.0.0.1",
        TAILSCALE,
    )
    assert verdict.user == ProxyUser("tailscale", "alice", "100.1.2.3")


@pytest.mark.parametrize(
    ("headers", "peer", "policy", "reason"),
    [
        ({"tailscale-user-login": "a"}, "127.0.0.2", TAILSCALE, "not a trusted loopback proxy"),
        ({"tailscale-user-login": "a"}, "192.168.1.5", TAILSCALE, "not a trusted loopback proxy"),
        ({"tailscale-user-login": "a"}, "127.0.0.1", ProxyPolicy(), "not enabled"),
        ({"tailscale-user-login": " "}, "127.0.0.1", TAILSCALE, "empty"),
        ({"x-forwarded-user": "bob"}, "127.0.0.1", TAILSCALE, "not an identity header"),
        ({"x-forwarded-user": "bob", "x-forwarded-proto": "https"}, "10.0.0.9", TRUSTED,
         "not in gateway.trustedProxies"),
        ({"x-forwarded-user": "bob"}, "10.0.0.1", TRUSTED, "missing required header"),
        ({"x-forwarded-user": "eve", "x-forwarded-proto": "https"}, "10.0.0.1", TRUSTED,
         "allowUsers"),
        ({"x-forwarded-user": "bob"}, "garbage", TRUSTED, "peer address unknown"),
    ],
)  # fmt: skip
def test_headers_that_do_not_count(
    headers: dict[str, str], peer: str, policy: ProxyPolicy, reason: str
) -> None:
    verdict = identify_proxy_user(headers, peer, policy)
    assert verdict.user is None and verdict.ignored and reason in verdict.reason


def test_trusted_proxy_user() -> None:
    headers = {"x-forwarded-user": "bob", "x-forwarded-proto": "https"}
    assert identify_proxy_user(headers, "10.0.0.2", TRUSTED).user == ProxyUser(
        "trusted-proxy", "bob", None
    )


def test_parse_networks_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks(["127.0.0.1", "nope"])


# -- the connect decision with proxies ------------------------------------------------------------
def _params(**auth: str) -> ConnectParams:
    return msgspec.convert(
        {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
            "role": "operator",
            "scopes": ["operator.read"],
            "auth": auth,
        },
        ConnectParams,
    )


def test_proxy_user_authenticates_with_requested_scopes() -> None:
    policy = AuthPolicy("token", b"secret-token", TAILSCALE)
    decision = evaluate_connect(
        _params(), policy, ready=True, proxy_user=ProxyUser("tailscale", "alice")
    )
    assert isinstance(decision, Accepted)
    assert decision.method == "tailscale" and decision.scopes == frozenset({"operator.read"})


def test_trusted_proxy_mode_falls_back_to_its_token_only() -> None:
    policy = AuthPolicy("trusted-proxy", b"secret-token", TRUSTED, "token")
    assert evaluate_connect(_params(token="secret-token"), policy, ready=True).method == "token"  # type: ignore[union-attr]
    wrong = evaluate_connect(_params(token="nope"), policy, ready=True)
    assert isinstance(wrong, Rejected) and wrong.error.details == {"code": "AUTH_TOKEN_MISMATCH"}
    bare = AuthPolicy("trusted-proxy", None, TRUSTED)
    nothing = evaluate_connect(_params(), bare, ready=True)
    assert isinstance(nothing, Rejected)
    assert nothing.error.details == {"code": "DEVICE_IDENTITY_REQUIRED"}
    proxied = evaluate_connect(
        _params(), bare, ready=True, proxy_user=ProxyUser("trusted-proxy", "bob")
    )
    assert isinstance(proxied, Accepted) and proxied.method == "trusted-proxy"
