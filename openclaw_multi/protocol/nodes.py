"""Node method params and the pure rules of ``node.invoke`` and node pairing.

Shapes follow the reference gateway's schemas (``NodeInvokeParamsSchema``,
``NodeInvokeResultParamsSchema``, ``NodeEventParamsSchema``, ``NodeRenameParamsSchema``,
``NodePairApproveParamsSchema``...); error texts follow its
``respondUnavailableOnNodeInvokeErrorWithProvenance`` and ``node command not allowed``
messages. The command-surface rules (which scopes approve a surface, when a reconnect
needs approval again, what stays usable meanwhile) are the reference's
``node-pairing-authz`` and ``node-connect-reconcile`` (docs/protocol.md, Nodes).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from . import codes, scopes
from .types import MAX_TIMER_MS, NonEmpty

DEFAULT_INVOKE_TIMEOUT_MS: Final = 30_000
MAX_INVOKE_TIMEOUT_MS: Final = MAX_TIMER_MS


class NodeIdParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty


class NodeRenameParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty
    display_name: NonEmpty


class NodePairRequestParams(msgspec.Struct, frozen=True, rename="camel"):
    """``node.pair.approve`` / ``node.pair.reject``."""

    request_id: NonEmpty


class NodePairRemoveParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty


class NodeInvokeParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty
    command: NonEmpty
    idempotency_key: NonEmpty
    params: Any = msgspec.UNSET
    timeout_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None
    session_key: str | None = None


class NodeInvokeResultParams(msgspec.Struct, frozen=True, rename="camel"):
    id: NonEmpty
    node_id: NonEmpty
    ok: bool
    payload: Any = msgspec.UNSET
    # a JSON string; anything else counts as ``payload``
    payload_json: Any = msgspec.field(default=None, name="payloadJSON")
    error: dict[str, Any] | None = None


class NodeEventParams(msgspec.Struct, frozen=True, rename="camel"):
    event: NonEmpty
    payload: Any = msgspec.UNSET
    payload_json: str | None = msgspec.field(default=None, name="payloadJSON")


class NodeSkillsParams(msgspec.Struct, frozen=True):
    skills: list[Any]


class NodePluginToolsParams(msgspec.Struct, frozen=True):
    tools: list[Any]


class RunnerInventoryParams(msgspec.Struct, frozen=True, rename="camel"):
    protocol_features: list[str]
    worker_host: dict[str, Any] | None = None


def invoke_timeout_ms(requested: int | None) -> int:
    """The wait for a node's answer: 30 s unless asked, clamped to a timer's range."""
    if not requested:
        return DEFAULT_INVOKE_TIMEOUT_MS
    return min(requested, MAX_INVOKE_TIMEOUT_MS)


def not_declared_message(command: str, platform: str | None) -> str:
    """INVALID_REQUEST text for a command the node did not declare (the reference's)."""
    return (
        f"node command not allowed: the node (platform: {platform or 'unknown'}) "
        f'does not support "{command}"'
    )


def failure(error: Any, *, dispatched: bool) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of a failed invoke: UNAVAILABLE ``"<code>: <message>"``."""
    node_error = error if isinstance(error, dict) else None
    node_code = _text(node_error.get("code")) if node_error else None
    node_message = (_text(node_error.get("message")) if node_error else None) or (
        "node invoke failed"
    )
    message = f"{node_code}: {node_message}" if node_code else node_message
    details = {"nodeError": node_error, "nodeCommandDispatched": dispatched}
    return codes.UNAVAILABLE, message, details


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


# -- command-surface approval ---------------------------------------------------------------
# Commands that reach a shell or the host's files: approving a surface that declares one
# takes operator.admin (the reference's isAdminPairApprovalCommand, plus our node host's own
# file commands fs.list/fs.read, which read the host's files as fs.listDir does).
ADMIN_APPROVAL_COMMANDS: Final = frozenset(
    {
        "fs.list",
        "fs.read",
        "system.run.prepare",
        "system.run",
        "system.which",
        "system.execApprovals.get",
        "system.execApprovals.set",
        "browser.proxy",
        "browser.proxy.upload.v1",
        "fs.listDir",
        "terminal.upload",
    }
)

PENDING_APPROVAL: Final = "pending-approval"
PENDING_REAPPROVAL: Final = "pending-reapproval"
APPROVED: Final = "approved"
UNAPPROVED: Final = "unapproved"


def surface_list(values: list[str] | None) -> list[str]:
    """Caps or commands as compared for approval: trimmed, non-empty, deduplicated, sorted."""
    return sorted({v.strip() for v in values or () if isinstance(v, str) and v.strip()})


def approve_scopes(commands: list[str]) -> list[str]:
    """The operator scopes approving a surface with these commands takes.

    No commands: ``operator.pairing``; any shell or file command: plus ``operator.admin``;
    other commands: plus ``operator.write``.
    """
    if any(c in ADMIN_APPROVAL_COMMANDS for c in commands):
        return [scopes.PAIRING, scopes.ADMIN]
    if commands:
        return [scopes.PAIRING, scopes.WRITE]
    return [scopes.PAIRING]


def missing_approve_scope(granted: frozenset[str], commands: list[str]) -> str | None:
    """The first scope of :func:`approve_scopes` that ``granted`` lacks, or None."""
    for scope in approve_scopes(commands):
        if not scopes.covers(granted, scope):
            return scope
    return None


def permission_upgrade(approved: dict[str, bool] | None, declared: dict[str, bool]) -> bool:
    """Whether ``declared`` turns on a permission the approved surface does not have on."""
    return any(on and (approved or {}).get(key) is not True for key, on in declared.items())


def needs_approval(
    *,
    approved_caps: list[str],
    approved_commands: list[str],
    approved_permissions: dict[str, bool] | None,
    caps: list[str],
    commands: list[str],
    permissions: dict[str, bool],
) -> bool:
    """Whether a reconnecting node declares more than its approved surface.

    Fewer caps or commands than approved never need approval (the surface only shrinks).
    """
    return (
        not set(commands) <= set(approved_commands)
        or not set(caps) <= set(approved_caps)
        or permission_upgrade(approved_permissions, permissions)
    )


def effective_permissions(
    approved: dict[str, bool] | None, declared: dict[str, bool]
) -> dict[str, bool] | None:
    """Declared permissions as far as approved: off stays off, on only where approved."""
    out: dict[str, bool] = {}
    for key, on in declared.items():
        if not on:
            out[key] = False
        elif approved is not None and key in approved:
            out[key] = approved[key]
    return out or None


def same_surface(
    a: tuple[list[str], list[str], dict[str, bool] | None],
    b: tuple[list[str], list[str], dict[str, bool] | None],
) -> bool:
    """Whether two (caps, commands, permissions) surfaces are equal as sets and maps."""
    return set(a[0]) == set(b[0]) and set(a[1]) == set(b[1]) and (a[2] or {}) == (b[2] or {})


def approval_state(*, pending: bool, approved: bool) -> str:
    """``approvalState`` of ``node.list``, with the reference's names."""
    if pending:
        return PENDING_REAPPROVAL if approved else PENDING_APPROVAL
    return APPROVED if approved else UNAPPROVED


def awaiting_approval_message(request_id: str) -> str:
    """UNAVAILABLE text for a command whose approval is pending."""
    return (
        f"node command awaiting operator approval (requestId: {request_id}); "
        f"run `openclaw nodes approve {request_id}`"
    )


def not_approved_message(command: str) -> str:
    """INVALID_REQUEST text for a declared command no operator approved."""
    return (
        f'node command not allowed: "{command}" is not approved for this node '
        "(it asks again when it reconnects)"
    )
