"""The method table: which request names exist, the scope each needs, and their handlers.

A :class:`Method` bundles a params decoder (built once), a handler and a scope. Handlers get
the calling :class:`~.connection.Connection` and typed params, and return the payload (a
Struct, a plain value, or pre-encoded :class:`msgspec.Raw`); async handlers return an
awaitable whose result is sent when ready. Errors are :class:`MethodError`.

A method declared ``with_request_id`` also gets the request id as a third argument, so an
async handler can send an early response for it (``conn.send_response``) before its
awaitable gives the final one: ``agent`` answers ``accepted`` at once and its outcome later,
both with the caller's request id (docs/protocol.md, Methods).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..protocol import codes
from ..protocol.frames import NULL, UNSET, ResponseFrame, error_response

Handler = Callable[..., Any]  # (conn, params) or (conn, params, request_id)


class MethodError(Exception):
    """A handler's refusal, sent back as ``ok:false`` with this code and message.

    ``payload`` (optional) travels beside the error, as the reference does for a failed
    ``agent`` run's final answer (``{runId, status:"error", summary}``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Any = UNSET,
        retryable: bool | msgspec.UnsetType = UNSET,
        payload: Any = UNSET,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.payload = payload

    def response(self, request_id: str) -> ResponseFrame:
        frame = error_response(
            request_id, self.code, self.message, details=self.details, retryable=self.retryable
        )
        if self.payload is not UNSET:
            frame = msgspec.structs.replace(frame, payload=self.payload)
        return frame


class NoParams(msgspec.Struct, frozen=True):
    """Params of methods that take none (unknown keys are ignored)."""


@dataclass(frozen=True, slots=True)
class Method:
    """One entry of the method table."""

    handler: Handler
    scope: str | None
    params: type | None = None
    is_async: bool = False
    with_request_id: bool = False

    def decode(self, raw: msgspec.Raw) -> Any:
        """Decode ``raw`` params into this method's params type (None if it takes none)."""
        if self.params is None:
            return None
        decoder = _DECODERS.get(self.params)
        if decoder is None:
            decoder = _DECODERS[self.params] = msgspec.json.Decoder(self.params)
        if raw == NULL:  # absent or null params mean "all defaults"
            raw = _EMPTY_OBJECT
        return decoder.decode(raw)


_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}
_EMPTY_OBJECT = msgspec.Raw(b"{}")


def unavailable(message: str) -> MethodError:
    """A retryable UNAVAILABLE error."""
    return MethodError(codes.UNAVAILABLE, message, retryable=True)
