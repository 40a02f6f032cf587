"""Tunnel messages of the control socket: round trips, wire shape, refusals."""

from __future__ import annotations

import json

import pytest

from openclaw_multi.protocol.control import (
    ControlProtocolError,
    ControlReply,
    ControlRequest,
    TunnelList,
    TunnelStart,
    TunnelStatus,
    TunnelStop,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

REQUESTS: list[ControlRequest] = [
    TunnelStart(name="office"),
    TunnelStart(
        name="office",
        ssh="me@host.example:2222",
        identity="/home/me/.ssh/id_ed25519",
        remote_port=18789,
        local_port=41022,
        known_hosts="/home/me/.ssh/known_hosts",
    ),
    TunnelStop(name="office"),
    TunnelStop(name="office", remove=True),
    TunnelList(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_round_trip(request_: ControlRequest) -> None:
    line = encode_request(request_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = decode_request(line)
    assert decoded == request_ and type(decoded) is type(request_)


def test_wire_shape() -> None:
    assert json.loads(encode_request(TunnelList())) == {"op": "tunnel-list"}
    assert json.loads(encode_request(TunnelStop(name="a"))) == {
        "op": "tunnel-stop",
        "name": "a",
        "remove": False,
    }
    wire = json.loads(encode_request(TunnelStart(name="a", ssh="u@h")))
    assert wire == {
        "op": "tunnel-start",
        "name": "a",
        "ssh": "u@h",
        "identity": None,
        "remote_port": None,
        "local_port": None,
        "known_hosts": None,
    }
    assert decode_request(b'{"op":"tunnel-start","name":"a"}') == TunnelStart(name="a")


@pytest.mark.parametrize(
    "line",
    [
        b'{"op":"tunnel-start"}',
        b'{"op":"tunnel-start","name":"a","local_port":0}',
        b'{"op":"tunnel-start","name":"a","remote_port":70000}',
        b'{"op":"tunnel-start","name":"a","local_port":"1"}',
        b'{"op":"tunnel-stop","name":3}',
        b'{"op":"tunnel-nope"}',
    ],
)
def test_bad_requests_are_one_line_errors(line: bytes) -> None:
    with pytest.raises(ControlProtocolError) as info:
        decode_request(line)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("bad control request: ")


def test_ports_are_checked_on_construction_too() -> None:
    with pytest.raises(ControlProtocolError):
        TunnelStart(name="a", local_port=65536)


def test_reply_with_tunnels_round_trip() -> None:
    reply = ControlReply(
        ok=False,
        error="ssh: the SSH server refused the key: me@h: Permission denied (publickey).",
        tunnels=[
            TunnelStatus(
                name="office",
                state="FATAL",
                desired=True,
                ssh="me@h:2222",
                local_port=41022,
                remote_port=18789,
                last_exit=255,
                last_error="ssh: the SSH server refused the key",
                known_hosts="/x/tunnels/office.known_hosts",
                log_path="/x/tunnels/office.log",
            ),
            TunnelStatus(
                name="lab",
                state="RUNNING",
                desired=True,
                ssh="h",
                local_port=1,
                remote_port=2,
                pid=42,
                healthy=True,
                started_at=1.5,
                restarts=3,
                strict_host_keys=True,
            ),
        ],
    )
    assert decode_reply(encode_reply(reply)) == reply


def test_an_old_reply_without_tunnels_still_decodes() -> None:
    assert decode_reply(b'{"ok":true,"profiles":[]}') == ControlReply(ok=True)
