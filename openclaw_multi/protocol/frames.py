"""The three wire frames (``req``, ``res``, ``event``) and the codec objects, built once.

Incoming ``params`` and ``payload`` stay :class:`msgspec.Raw` until a handler asks for a
typed view, so a frame is parsed exactly once and never round-trips through a dict.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from . import codes

UNSET = msgspec.UNSET
NULL = msgspec.Raw(b"null")


class ErrorShape(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    """``res.error``: a code from :mod:`codes`, a message for people, optional extras."""

    code: str
    message: str
    details: Any = UNSET
    retryable: bool | msgspec.UnsetType = UNSET
    retry_after_ms: int | msgspec.UnsetType = UNSET


class RequestFrame(msgspec.Struct, frozen=True):
    """``{"type":"req","id","method","params"?}``; ``id`` is opaque and echoed back."""

    type: Literal["req"]
    id: Annotated[str, msgspec.Meta(min_length=1)]
    method: str
    params: msgspec.Raw = NULL


class ResponseFrame(msgspec.Struct, frozen=True, omit_defaults=True, tag="res", tag_field="type"):
    """``{"type":"res","id","ok","payload"?|"error"?}``."""

    id: str
    ok: bool
    payload: Any = UNSET
    error: ErrorShape | msgspec.UnsetType = UNSET


class StateVersion(msgspec.Struct, frozen=True):
    """Monotonic counters a client uses to order presence/health snapshots."""

    presence: int
    health: int


class EventFrame(
    msgspec.Struct,
    frozen=True,
    omit_defaults=True,
    tag="event",
    tag_field="type",
    rename={"state_version": "stateVersion"},
):
    """``{"type":"event","event","payload"?,"seq"?,"stateVersion"?}``."""

    event: str
    payload: Any = UNSET
    seq: int | msgspec.UnsetType = UNSET
    state_version: StateVersion | msgspec.UnsetType = UNSET


class IncomingResponse(msgspec.Struct, frozen=True, tag="res", tag_field="type"):
    """A ``res`` as a client receives it: the payload stays raw until the caller types it."""

    id: str
    ok: bool
    payload: msgspec.Raw = NULL
    error: ErrorShape | None = None


class IncomingEvent(
    msgspec.Struct,
    frozen=True,
    tag="event",
    tag_field="type",
    rename={"state_version": "stateVersion"},
):
    """An ``event`` as a client receives it."""

    event: str
    payload: msgspec.Raw = NULL
    seq: int | None = None
    state_version: StateVersion | None = None


DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
"""What decoding untrusted bytes may raise: malformed or invalid JSON, and nesting deeper
than msgspec's recursion limit (found by fuzzing: ``[[[[...`` 5,000 deep)."""

# One encoder and one decoder per direction, shared by every connection.
encoder = msgspec.json.Encoder()
request_decoder = msgspec.json.Decoder(RequestFrame)
server_frame_decoder = msgspec.json.Decoder(IncomingResponse | IncomingEvent)


def error_response(
    request_id: str,
    code: str,
    message: str,
    *,
    details: Any = UNSET,
    retryable: bool | msgspec.UnsetType = UNSET,
    retry_after_ms: int | msgspec.UnsetType = UNSET,
) -> ResponseFrame:
    """Build an ``ok:false`` response."""
    return ResponseFrame(
        id=request_id,
        ok=False,
        error=ErrorShape(
            code=code,
            message=message,
            details=details,
            retryable=retryable,
            retry_after_ms=retry_after_ms,
        ),
    )


def invalid_params(request_id: str, method: str, err: msgspec.ValidationError) -> ResponseFrame:
    """INVALID_REQUEST for params that failed validation, in the reference's wording."""
    return error_response(
        request_id, codes.INVALID_REQUEST, f"invalid {method} params: {describe_validation(err)}"
    )


def describe_validation(err: msgspec.ValidationError) -> str:
    """Turn msgspec's message into the JSON-schema style the reference uses.

    ``Invalid enum value 'x' - at `$.client.id``` becomes
    ``at /client/id: must be equal to one of the allowed values``.
    """
    text = str(err)
    where = "root"
    if " - at `$" in text:
        text, _, path = text.partition(" - at `$")
        path = path.rstrip("`")
        where = "/" + path.lstrip(".").replace(".", "/").replace("[", "/").replace("]", "")
    if text.startswith("Object missing required field `"):
        name = text.split("`")[1]
        return f"at {where}: must have required property '{name}'"
    if text.startswith("Invalid enum value") or text.startswith("Invalid value"):
        return f"at {where}: must be equal to one of the allowed values"
    if text.startswith("Expected `"):
        wanted = text.split("`")[1]
        return f"at {where}: must be {_JSON_TYPE_NAMES.get(wanted, wanted)}"
    return f"at {where}: {text}"


_JSON_TYPE_NAMES = {
    "int": "integer",
    "str": "string",
    "bool": "boolean",
    "object": "object",
    "array": "array",
    "float": "number",
}
