"""The connect decision, row by row of protocol.md's rules table, with plain values."""

from __future__ import annotations

import msgspec
import pytest

from openclaw_multi.protocol import codes, scopes
from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.handshake import (
    Accepted,
    AuthPolicy,
    Rejected,
    evaluate_connect,
    negotiate_protocol,
    secrets_equal,
)

TOKEN = AuthPolicy("token", b"s3cret-token")
PASSWORD = AuthPolicy("password", b"hunter2")
OPEN = AuthPolicy("none")


def params(**overrides: object) -> ConnectParams:
    raw: dict[str, object] = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": "1.0", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "scopes": [scopes.READ, scopes.WRITE],
    }
    raw.update(overrides)
    return msgspec.convert(raw, ConnectParams)


def test_open_gateway_accepts_and_grants_requested_known_scopes() -> None:
    decision = evaluate_connect(params(scopes=[scopes.READ, "bogus.scope"]), OPEN, ready=True)
    assert decision == Accepted(
        protocol=4, role="operator", scopes=frozenset({scopes.READ}), method="none"
    )


def test_not_ready_is_retryable_unavailable_1013() -> None:
    decision = evaluate_connect(params(), OPEN, ready=False)
    assert isinstance(decision, Rejected)
    assert decision.error.code == codes.UNAVAILABLE
    assert decision.error.retryable is True
    assert isinstance(decision.error.retry_after_ms, int) and decision.error.retry_after_ms > 0
    assert decision.close_code == 1013


@pytest.mark.parametrize(("lo", "hi"), [(1, 3), (5, 6), (3, 3)])
def test_protocol_mismatch_for_operators(lo: int, hi: int) -> None:
    decision = evaluate_connect(params(minProtocol=lo, maxProtocol=hi), OPEN, ready=True)
    assert isinstance(decision, Rejected)
    assert decision.close_code == 1002
    assert decision.error.code == codes.INVALID_REQUEST
    assert decision.error.message == "protocol mismatch"
    assert decision.error.details == {
        "code": "PROTOCOL_MISMATCH",
        "clientMinProtocol": lo,
        "clientMaxProtocol": hi,
        "expectedProtocol": 4,
    }


def test_protocol_3_allowed_for_probe_and_node_only() -> None:
    probe = params(
        minProtocol=3,
        maxProtocol=3,
        client={"id": "openclaw-probe", "version": "1", "platform": "x", "mode": "probe"},
    )
    node = params(minProtocol=3, maxProtocol=3, role="node")
    assert negotiate_protocol(probe) == 3
    assert negotiate_protocol(node) == 3
    assert negotiate_protocol(params(minProtocol=3, maxProtocol=3)) is None
    assert negotiate_protocol(params(minProtocol=3, maxProtocol=9)) == 4


def test_probe_clients_get_no_scopes() -> None:
    probe = params(
        client={"id": "openclaw-probe", "version": "1", "platform": "x", "mode": "probe"},
        scopes=[scopes.ADMIN],
    )
    decision = evaluate_connect(probe, OPEN, ready=True)
    assert isinstance(decision, Accepted)
    assert decision.scopes == frozenset()


def test_token_accepted() -> None:
    decision = evaluate_connect(params(auth={"token": "s3cret-token"}), TOKEN, ready=True)
    assert isinstance(decision, Accepted)
    assert decision.method == "token"


def test_token_mismatch() -> None:
    decision = evaluate_connect(params(auth={"token": "nope"}), TOKEN, ready=True)
    assert isinstance(decision, Rejected)
    assert decision.close_code == 1008
    assert decision.auth_failure
    assert decision.error.code == codes.INVALID_REQUEST
    assert decision.error.message.startswith("unauthorized: gateway token mismatch")
    assert decision.error.details == {"code": "AUTH_TOKEN_MISMATCH"}


@pytest.mark.parametrize(
    ("client", "local", "kind", "hint"),
    [
        (
            {"id": "cli", "mode": "cli"},
            True,
            "token",
            "use this gateway's gateway.auth.token or pair the device",
        ),
        (
            {"id": "cli", "mode": "cli"},
            False,
            "token",
            "set gateway.remote.token to match gateway.auth.token",
        ),
        (
            {"id": "cli", "mode": "cli"},
            True,
            "password",
            "use this gateway's gateway.auth.password",
        ),
        (
            {"id": "openclaw-control-ui", "mode": "ui"},
            True,
            "token",
            "open the dashboard URL and paste the token in Control UI settings",
        ),
        (
            {"id": "webchat", "mode": "webchat"},
            True,
            "password",
            "enter the password in Control UI settings",
        ),
        ({"id": "gateway-client", "mode": "backend"}, True, "token", "provide gateway auth token"),
        ({"id": "cli", "mode": "probe"}, True, "password", "provide gateway auth password"),
    ],
)
def test_mismatch_message_is_worded_per_client_like_the_reference(
    client: dict[str, str], local: bool, kind: str, hint: str
) -> None:
    """The reference gateway's own wording (2026.9.6, formatGatewayAuthFailureMessage)."""
    info = {"version": "1.0", "platform": "linux", **client}
    policy = TOKEN if kind == "token" else PASSWORD
    decision = evaluate_connect(
        params(client=info, auth={kind: "wrong"}), policy, ready=True, local=local
    )
    assert isinstance(decision, Rejected)
    assert decision.error.message == f"unauthorized: gateway {kind} mismatch ({hint})"


def test_no_credentials_is_device_identity_required() -> None:
    decision = evaluate_connect(params(), TOKEN, ready=True)
    assert isinstance(decision, Rejected)
    assert decision.close_code == 1008
    assert decision.error.code == codes.NOT_PAIRED
    assert decision.error.message == "device identity required"
    assert decision.error.details == {"code": "DEVICE_IDENTITY_REQUIRED"}


def test_password_gateway() -> None:
    ok = evaluate_connect(params(auth={"password": "hunter2"}), PASSWORD, ready=True)
    bad = evaluate_connect(params(auth={"password": "hunter3"}), PASSWORD, ready=True)
    wrong_kind = evaluate_connect(params(auth={"token": "hunter2"}), PASSWORD, ready=True)
    assert isinstance(ok, Accepted) and ok.method == "password"
    assert isinstance(bad, Rejected) and bad.error.details == {"code": "AUTH_PASSWORD_MISMATCH"}
    assert isinstance(wrong_kind, Rejected) and wrong_kind.auth_failure


def test_node_role_gets_no_operator_scopes() -> None:
    decision = evaluate_connect(params(role="node", scopes=[scopes.ADMIN]), OPEN, ready=True)
    assert isinstance(decision, Accepted)
    assert decision.role == "node" and decision.scopes == frozenset()


def test_secrets_equal_is_exact() -> None:
    assert secrets_equal("abc", b"abc")
    assert not secrets_equal("abc", b"abcd")
    assert not secrets_equal("", b"abc")
    assert not secrets_equal("\udcff", b"abc")  # lone surrogate must not raise


@pytest.mark.parametrize(
    ("granted", "required", "ok"),
    [
        (frozenset(), None, True),
        (frozenset(), scopes.READ, False),
        (frozenset({scopes.READ}), scopes.READ, True),
        (frozenset({scopes.WRITE}), scopes.READ, True),
        (frozenset({scopes.READ}), scopes.WRITE, False),
        (frozenset({scopes.ADMIN}), scopes.PAIRING, True),
        (frozenset({scopes.PAIRING}), scopes.ADMIN, False),
    ],
)
def test_scope_coverage(granted: frozenset[str], required: str | None, ok: bool) -> None:
    assert scopes.covers(granted, required) is ok
