"""Node host messages of the control socket: round trips and wire shape."""

from __future__ import annotations

import json

import pytest

from openclaw_multi.protocol.control import (
    ControlReply,
    ControlRequest,
    NodeHostStatus,
    NodeList,
    NodeStart,
    NodeStop,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

REQUESTS: list[ControlRequest] = [
    NodeStart(name="laptop"),
    NodeStart(name="laptop", url="ws://gw:18789/", display_name="Build box"),
    NodeStop(name="laptop"),
    NodeStop(name="laptop", remove=True),
    NodeList(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_round_trip(request_: ControlRequest) -> None:
    assert decode_request(encode_request(request_)) == request_


def test_wire_shape() -> None:
    wire = json.loads(encode_request(NodeStart(name="laptop", url="ws://gw/")))
    assert wire == {"op": "node-start", "name": "laptop", "url": "ws://gw/", "display_name": None}
    assert json.loads(encode_request(NodeList())) == {"op": "node-list"}


def test_status_reply_is_camel_case() -> None:
    status = NodeHostStatus(
        name="laptop", state="RUNNING", desired=True, url="ws://gw/", pid=7, connected=True
    )
    reply = ControlReply(ok=True, nodes=[status])
    assert decode_reply(encode_reply(reply)) == reply
    row = json.loads(encode_reply(reply))["nodes"][0]
    assert row["lastExit"] is None and row["nodeId"] is None and row["connected"] is True
