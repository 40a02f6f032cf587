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


def test_approve_scopes_follow_the_declared_commands() -> None:
    assert nodes.approve_scopes([]) == ["operator.pairing"]
    assert nodes.approve_scopes(["canvas.show"]) == ["operator.pairing", "operator.write"]
    for admin_only in ("system.run", "system.which", "fs.listDir", "browser.proxy"):
        assert nodes.approve_scopes(["canvas.show", admin_only]) == [
            "operator.pairing",
            "operator.admin",
        ]
    # our node host's file commands read the host's files: admin too, as docs/cli.md says
    for admin_only in ("fs.list", "fs.read"):
        assert nodes.approve_scopes(["canvas.show", admin_only]) == [
            "operator.pairing",
            "operator.admin",
        ]
    pairing = frozenset({"operator.pairing"})
    assert nodes.missing_approve_scope(pairing, []) is None
    assert nodes.missing_approve_scope(pairing, ["canvas.show"]) == "operator.write"
    assert nodes.missing_approve_scope(frozenset(), []) == "operator.pairing"
    # admin covers every scope
    assert nodes.missing_approve_scope(frozenset({"operator.admin"}), ["system.run"]) is None


def test_surface_lists_are_trimmed_sets() -> None:
    assert nodes.surface_list([" b", "a", "b", "", "  "]) == ["a", "b"]
    assert nodes.surface_list(None) == []


def test_needs_approval_only_when_the_surface_grows() -> None:
    base = {
        "approved_caps": ["system"],
        "approved_commands": ["a", "b"],
        "approved_permissions": {"camera": True},
    }
    same = {"caps": ["system"], "commands": ["a", "b"], "permissions": {"camera": True}}
    assert not nodes.needs_approval(**base, **same)  # type: ignore[arg-type]
    fewer = {"caps": [], "commands": ["a"], "permissions": {"camera": False}}
    assert not nodes.needs_approval(**base, **fewer)  # type: ignore[arg-type]
    assert nodes.needs_approval(**base, **{**same, "commands": ["a", "c"]})  # type: ignore[arg-type]
    assert nodes.needs_approval(**base, **{**same, "caps": ["system", "x"]})  # type: ignore[arg-type]
    more = {**same, "permissions": {"camera": True, "mic": True}}
    assert nodes.needs_approval(**base, **more)  # type: ignore[arg-type]
    assert nodes.permission_upgrade(None, {"mic": True})
    assert not nodes.permission_upgrade(None, {"mic": False})


def test_effective_permissions_and_states() -> None:
    assert nodes.effective_permissions({"a": True}, {"a": True, "b": True, "c": False}) == {
        "a": True,
        "c": False,
    }
    assert nodes.effective_permissions(None, {}) is None
    assert nodes.same_surface((["a"], ["x", "y"], None), (["a"], ["y", "x"], {}))
    assert not nodes.same_surface((["a"], ["x"], None), (["a"], ["x"], {"p": True}))
    assert nodes.approval_state(pending=True, approved=False) == "pending-approval"
    assert nodes.approval_state(pending=True, approved=True) == "pending-reapproval"
    assert nodes.approval_state(pending=False, approved=True) == "approved"
    assert nodes.approval_state(pending=False, approved=False) == "unapproved"
    assert "awaiting operator approval" in nodes.awaiting_approval_message("r1")
    assert nodes.not_approved_message("x").startswith('node command not allowed: "x"')


def test_pair_params() -> None:
    decode = msgspec.json.Decoder(nodes.NodePairRequestParams).decode
    assert decode(b'{"requestId":"r"}').request_id == "r"
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"requestId":""}')
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b"{}", type=nodes.NodePairRemoveParams)
