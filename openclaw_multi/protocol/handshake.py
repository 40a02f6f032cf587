"""Deciding a ``connect``: the handshake as a pure function of params and policy.

Theory of operation: a socket starts in ``AWAITING_CONNECT`` right after the server sends
``connect.challenge``. Its first frame must be a ``connect`` request; :func:`evaluate_connect`
turns the decoded params plus the gateway's :class:`AuthPolicy` into either an
:class:`Accepted` (the socket moves to ``CONNECTED`` and gets ``hello-ok``) or a
:class:`Rejected` carrying the exact error and close code of protocol.md's rules table. The
I/O shell (gateway/) only sends what this module decides; nothing here touches a socket or a
clock, so every row of the table is a plain unit test.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from typing import Literal

from . import PROTOCOL_VERSION, codes, scopes
from .connect import ConnectParams
from .frames import ErrorShape
from .proxy import ProxyPolicy, ProxyUser

AuthMode = Literal["none", "token", "password", "trusted-proxy"]


class Phase(enum.Enum):
    """Where a connection is in its life."""

    AWAITING_CONNECT = "awaiting-connect"
    CONNECTED = "connected"
    CLOSING = "closing"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """What the gateway requires: a mode and, for token/password, the secret as bytes.

    ``trusted-proxy`` authenticates by the proxy's identity header; a token or password set
    beside it (``secret_kind``) still lets local clients such as the CLI in, which have no
    proxy in front of them. ``proxy`` says which proxy identities count (Tailscale Serve
    with ``allowTailscale`` in any mode).
    """

    mode: AuthMode
    secret: bytes | None = None
    proxy: ProxyPolicy = field(default_factory=ProxyPolicy)
    fallback_kind: Literal["token", "password"] | None = None

    @property
    def secret_kind(self) -> str | None:
        """Which shared secret a client may present: ``token``, ``password`` or none."""
        if self.mode in ("token", "password"):
            return self.mode
        return self.fallback_kind if self.mode == "trusted-proxy" else None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The connect is good: negotiated protocol, role, granted scopes and how it authenticated."""

    protocol: int
    role: str
    scopes: frozenset[str]
    method: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The connect is refused with ``error``; the socket is then closed with ``close_code``."""

    error: ErrorShape
    close_code: int
    auth_failure: bool = False


def negotiate_protocol(params: ConnectParams) -> int | None:
    """Pick the protocol for this client: 4, or 3 for probe/node clients; None if neither fits."""
    if params.min_protocol <= PROTOCOL_VERSION <= params.max_protocol:
        return PROTOCOL_VERSION
    legacy_ok = params.client.mode == "probe" or params.role == "node"
    if legacy_ok and params.min_protocol <= 3 <= params.max_protocol:
        return 3
    return None


def secrets_equal(given: str, expected: bytes) -> bool:
    """Compare a presented secret with the configured one in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected)


def evaluate_connect(
    params: ConnectParams,
    policy: AuthPolicy,
    *,
    ready: bool,
    local: bool = True,
    proxy_user: ProxyUser | None = None,
) -> Accepted | Rejected:
    """Decide one ``connect`` request (rows of protocol.md's rules table, in order).

    Args:
        params: the decoded, schema-valid connect params.
        policy: the gateway's auth requirement.
        ready: False while the gateway is still starting or already draining.
        local: the peer is on a loopback address (only the wording of a refusal depends on it).
        proxy_user: who a trusted proxy vouched for on the upgrade request
            (:func:`~.proxy.identify_proxy_user`); such a connect is authenticated as that
            user, by ``tailscale`` or ``trusted-proxy``.
    """
    if not ready:
        return Rejected(
            ErrorShape(
                code=codes.UNAVAILABLE,
                message="gateway not ready",
                retryable=True,
                retry_after_ms=500,
            ),
            codes.CLOSE_TRY_AGAIN_LATER,
        )
    protocol = negotiate_protocol(params)
    if protocol is None:
        return Rejected(
            ErrorShape(
                code=codes.INVALID_REQUEST,
                message="protocol mismatch",
                details={
                    "code": "PROTOCOL_MISMATCH",
                    "clientMinProtocol": params.min_protocol,
                    "clientMaxProtocol": params.max_protocol,
                    "expectedProtocol": PROTOCOL_VERSION,
                },
            ),
            codes.CLOSE_PROTOCOL_ERROR,
        )
    method = _authenticate(params, policy, local, proxy_user)
    if isinstance(method, Rejected):
        return method
    probe = params.client.mode == "probe"
    granted = frozenset() if params.role == "node" else scopes.grant(params.scopes, probe=probe)
    return Accepted(protocol=protocol, role=params.role, scopes=granted, method=method)


def _authenticate(
    params: ConnectParams, policy: AuthPolicy, local: bool, proxy_user: ProxyUser | None
) -> str | Rejected:
    if policy.mode == "none":
        return "none"
    if proxy_user is not None:
        return proxy_user.method
    auth = params.auth
    kind = policy.secret_kind
    given = auth.token if kind == "token" else auth.password if kind == "password" else None
    if given:
        if policy.secret is not None and secrets_equal(given, policy.secret):
            return kind or "token"
        return _mismatch(kind or "token", params, local)
    if auth.present():
        # A credential of the wrong kind (a password to a token gateway, a device token we
        # never issued) is a mismatch, not a missing identity.
        return _mismatch(kind or "token", params, local)
    return Rejected(
        ErrorShape(
            code=codes.NOT_PAIRED,
            message="device identity required",
            details={"code": "DEVICE_IDENTITY_REQUIRED"},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )


_UI_CLIENT_IDS = frozenset({"openclaw-control-ui", "openclaw-tui"})


def mismatch_hint(kind: str, params: ConnectParams, local: bool) -> str:
    """The advice in a refused secret's message, worded per client as the reference words it.

    The reference gateway (2026.9.6, ``formatGatewayAuthFailureMessage``) tells a CLI
    (``client.mode`` ``cli``) to use the gateway's own ``gateway.auth.<kind>`` when it is on
    the same machine, or to fix ``gateway.remote.<kind>`` otherwise; the Control UI, the TUI
    and webchat to enter the secret in the UI; every other client to provide it.
    """
    client = params.client
    if client.mode == "cli":
        if local:
            extra = " or pair the device" if kind == "token" else ""
            return f"use this gateway's gateway.auth.{kind}{extra}"
        return f"set gateway.remote.{kind} to match gateway.auth.{kind}"
    if client.id in _UI_CLIENT_IDS or client.mode == "webchat" or client.id == "webchat-ui":
        if kind == "token":
            return "open the dashboard URL and paste the token in Control UI settings"
        return "enter the password in Control UI settings"
    return f"provide gateway auth {kind}"


def _mismatch(kind: str, params: ConnectParams, local: bool) -> Rejected:
    hint = mismatch_hint(kind, params, local)
    return Rejected(
        ErrorShape(
            code=codes.INVALID_REQUEST,
            message=f"unauthorized: gateway {kind} mismatch ({hint})",
            details={"code": f"AUTH_{kind.upper()}_MISMATCH"},
        ),
        codes.CLOSE_POLICY_VIOLATION,
        auth_failure=True,
    )
