"""Node method params and the pure rules of ``node.invoke`` (docs/protocol.md, Nodes).

Shapes follow the reference gateway's schemas (``NodeInvokeParamsSchema``,
``NodeInvokeResultParamsSchema``, ``NodeEventParamsSchema``, ``NodeRenameParamsSchema``);
error texts follow its ``respondUnavailableOnNodeInvokeErrorWithProvenance`` and
``node command not allowed`` messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from . import codes

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

DEFAULT_INVOKE_TIMEOUT_MS: Final = 30_000
MAX_INVOKE_TIMEOUT_MS: Final = 2_147_483_647  # a JS timer's ceiling, as the reference clamps


class NodeIdParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty


class NodeRenameParams(msgspec.Struct, frozen=True, rename="camel"):
    node_id: NonEmpty
    display_name: NonEmpty


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
