"""The pure rules of node.invoke (protocol/nodes.py)."""

from __future__ import annotations

import msgspec
import pytest

from openclaw_multi.protocol import nodes


def test_timeout_default_and_clamp() -> None:
    assert nodes.invoke_timeout_ms(None) == nodes.DEFAULT_INVOKE_TIMEOUT_MS
    assert nodes.invoke_timeout_ms(0) == nodes.DEFAULT_INVOKE_TIMEOUT_MS
    assert nodes.invoke_timeout_ms(250) == 250
    assert nodes.invoke_timeout_ms(10**12) == nodes.MAX_INVOKE_TIMEOUT_MS


def test_failure_shapes() -> None:
    error = {"code": "TIMEOUT", "message": "node invoke timed out"}
    code, message, details = nodes.failure(error, dispatched=True)
    assert (code, message) == ("UNAVAILABLE", "TIMEOUT: node invoke timed out")
    assert details == {"nodeError": error, "nodeCommandDispatched": True}
    assert nodes.failure(None, dispatched=True)[1] == "node invoke failed"
    assert nodes.failure({"message": " boom "}, dispatched=False)[1] == "boom"


def test_invoke_params_need_an_idempotency_key() -> None:
    decode = msgspec.json.Decoder(nodes.NodeInvokeParams).decode
    ok = decode(b'{"nodeId":"n","command":"c","idempotencyKey":"k","params":null}')
    assert ok.params is None and ok.timeout_ms is None
    assert decode(b'{"nodeId":"n","command":"c","idempotencyKey":"k"}').params is msgspec.UNSET
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"nodeId":"n","command":"c"}')
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"nodeId":"n","command":"c","idempotencyKey":"k","timeoutMs":-1}')


def test_result_params_read_payload_json() -> None:
    decode = msgspec.json.Decoder(nodes.NodeInvokeResultParams).decode
    res = decode(b'{"id":"i","nodeId":"n","ok":true,"payloadJSON":"{\\"a\\":1}"}')
    assert res.payload_json == '{"a":1}'
