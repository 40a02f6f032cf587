"""Frames: exact wire shapes, one decoder, validation messages in the reference's words."""

from __future__ import annotations

import msgspec
import pytest

from openclaw_multi.protocol import limits
from openclaw_multi.protocol.connect import ConnectParams
from openclaw_multi.protocol.frames import (
    EventFrame,
    ResponseFrame,
    StateVersion,
    describe_validation,
    encoder,
    error_response,
    request_decoder,
    server_frame_decoder,
)


def test_request_decodes_with_raw_params_untouched() -> None:
    frame = request_decoder.decode(
        b'{"type":"req","id":"1:abc","method":"health","params":{"probe":true}}'
    )
    assert frame.id == "1:abc" and frame.method == "health"
    assert bytes(frame.params) == b'{"probe":true}'


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"res","id":"1","method":"x"}',
        b'{"id":"1","method":"x"}',
        b'{"type":"req","id":"","method":"x"}',
        b'{"type":"req","id":1,"method":"x"}',
        b"[]",
        b"not json",
        b"\xff\xfe",
    ],
)
def test_malformed_requests_are_rejected(data: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        request_decoder.decode(data)


def test_response_shapes() -> None:
    ok = encoder.encode(ResponseFrame(id="7", ok=True, payload={"a": 1}))
    assert ok == b'{"type":"res","id":"7","ok":true,"payload":{"a":1}}'
    err = encoder.encode(error_response("7", "INVALID_REQUEST", "unknown method: x"))
    assert err == (
        b'{"type":"res","id":"7","ok":false,'
        b'"error":{"code":"INVALID_REQUEST","message":"unknown method: x"}}'
    )
    retry = encoder.encode(
        error_response("8", "UNAVAILABLE", "later", retryable=True, retry_after_ms=500)
    )
    assert b'"retryable":true,"retryAfterMs":500' in retry


def test_event_shapes() -> None:
    challenge = encoder.encode(
        EventFrame(event="connect.challenge", payload={"nonce": "n", "ts": 1})
    )
    assert (
        challenge == b'{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}'
    )
    tick = encoder.encode(
        EventFrame(
            event="presence", payload=[], seq=3, state_version=StateVersion(presence=2, health=1)
        )
    )
    assert tick == (
        b'{"type":"event","event":"presence","payload":[],"seq":3,'
        b'"stateVersion":{"presence":2,"health":1}}'
    )


def test_client_side_decoder_tells_frames_apart() -> None:
    res = server_frame_decoder.decode(b'{"type":"res","id":"1","ok":true,"payload":{"x":[1]}}')
    evt = server_frame_decoder.decode(b'{"type":"event","event":"tick","payload":{"ts":5},"seq":2}')
    assert type(res).__name__ == "IncomingResponse" and bytes(res.payload) == b'{"x":[1]}'
    assert type(evt).__name__ == "IncomingEvent" and evt.seq == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "evil", "version": "1", "platform": "x", "mode": "cli"},
            },
            "at /client/id: must be equal to one of the allowed values",
        ),
        ({"maxProtocol": 4}, "at root: must have required property 'minProtocol'"),
        (
            {"minProtocol": "4", "maxProtocol": 4, "client": {}},
            "at /minProtocol: must be integer",
        ),
        (
            {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "cli", "version": "1", "platform": "x"},
            },
            "at /client: must have required property 'mode'",
        ),
    ],
)
def test_validation_messages(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(msgspec.json.encode(raw), type=ConnectParams)
    assert describe_validation(info.value) == expected


def test_connect_params_ignore_unknown_keys() -> None:
    raw = (
        b'{"minProtocol":4,"maxProtocol":4,"future":true,'
        b'"client":{"id":"cli","version":"1","platform":"x","mode":"cli","extra":1}}'
    )
    params = msgspec.json.decode(raw, type=ConnectParams)
    assert params.role == "operator" and params.scopes == []


def test_failed_auth_throttle_backs_off_and_forgets() -> None:
    throttle = limits.FailedAuthThrottle()
    delays = [throttle.record_failure("10.0.0.1", now=float(i)) for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.record_failure("10.0.0.2", now=6.0) == 0.5  # per peer
    throttle.record_success("10.0.0.1")
    assert throttle.record_failure("10.0.0.1", now=7.0) == 0.5
    assert throttle.record_failure("10.0.0.2", now=1000.0) == 0.5  # forgotten after idling


def test_failed_auth_throttle_table_is_bounded() -> None:
    throttle = limits.FailedAuthThrottle(max_peers=8)
    for i in range(100):
        throttle.record_failure(f"peer{i}", now=0.0)
    assert len(throttle._failures) <= 8
