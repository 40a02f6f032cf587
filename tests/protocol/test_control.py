"""Control-socket messages: round trips, framing, and refusing bad input cleanly."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openclaw_multi.errors import SupervisorError
from openclaw_multi.protocol.control import (
    MAX_REQUEST_BYTES,
    ControlProtocolError,
    ControlReply,
    ControlRequest,
    Ping,
    ProfileStatus,
    Reset,
    Restart,
    Shutdown,
    Start,
    Status,
    Stop,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

REQUESTS: list[ControlRequest] = [
    Start(profiles=["work"]),
    Start(profiles=["work", "personal"]),
    Start(all=True),
    Stop(profiles=["default"]),
    Stop(all=True),
    Restart(profiles=["rescue"]),
    Restart(all=True),
    Reset(profiles=["work"]),
    Status(),
    Shutdown(),
    Shutdown(stop_gateways=True),
    Ping(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_request_round_trip(request_: ControlRequest) -> None:
    line = encode_request(request_)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_request(line) == request_
    assert decode_request(line.rstrip(b"\n")) == request_
    assert type(decode_request(line)) is type(request_)


def test_request_wire_shape() -> None:
    assert json.loads(encode_request(Start(profiles=["work"]))) == {
        "op": "start",
        "profiles": ["work"],
        "all": False,
    }
    assert json.loads(encode_request(Status())) == {"op": "status"}
    assert json.loads(encode_request(Ping())) == {"op": "ping"}
    assert json.loads(encode_request(Shutdown())) == {"op": "shutdown", "stop_gateways": False}
    assert json.loads(encode_request(Reset(profiles=["a"]))) == {"op": "reset", "profiles": ["a"]}
    assert json.loads(encode_request(Stop(all=True)))["op"] == "stop"
    assert json.loads(encode_request(Restart(all=True)))["op"] == "restart"


def test_defaults_on_decode() -> None:
    assert decode_request(b'{"op":"stop","all":true}') == Stop(all=True)
    assert decode_request(b'{"op":"shutdown"}') == Shutdown(stop_gateways=False)
    assert decode_request(b' {"op":"ping"}\r\n') == Ping()


def test_names_with_newlines_stay_on_one_line() -> None:
    line = encode_request(Start(profiles=["a\nb"]))
    assert line.count(b"\n") == 1
    assert decode_request(line) == Start(profiles=["a\nb"])


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Status().x = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        Start(all=True).all = False  # type: ignore[misc]


def test_reply_round_trip() -> None:
    reply = ControlReply(
        ok=True,
        profiles=[
            ProfileStatus(
                name="default",
                state="RUNNING",
                desired=True,
                pid=4242,
                port=18789,
                started_at=1_700_000_000.25,
                restarts=2,
                last_exit=1,
                last_error=None,
            ),
            ProfileStatus(
                name="work",
                state="FATAL",
                desired=True,
                restarts=0,
                last_exit=78,
                last_error="exit 78 (config/conflict): port 18790 is in use by pid 77",
            ),
            ProfileStatus(name="rescue", state="STOPPED", desired=False),
        ],
    )
    line = encode_reply(reply)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_reply(line) == reply


def test_error_reply_round_trip() -> None:
    reply = ControlReply(ok=False, error="profile work is already stopping")
    assert decode_reply(encode_reply(reply)) == reply
    assert json.loads(encode_reply(reply)) == {
        "ok": False,
        "error": "profile work is already stopping",
        "profiles": [],
        "tunnels": [],
        "nodes": [],
    }


def test_profile_status_wire_fields() -> None:
    wire = json.loads(encode_reply(ControlReply(ok=True, profiles=[ProfileStatus("x", "S", True)])))
    assert list(wire["profiles"][0]) == [
        "name",
        "state",
        "desired",
        "pid",
        "port",
        "started_at",
        "restarts",
        "last_exit",
        "last_error",
    ]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "truncated"),
        (b"not json", "malformed"),
        (b"[]", "Expected `object`"),
        (b"{}", "op"),
        (b'{"op":"explode"}', "'explode'"),
        (b'{"op":"START","all":true}', "'START'"),
        (b'{"op":7}', "op"),
        (b'{"op":"start","profiles":"work"}', "Expected `array`"),
        (b'{"op":"start","profiles":[1]}', "Expected `str`"),
        (b'{"op":"start","all":"yes"}', "Expected `bool`"),
        (b'{"op":"shutdown","stop_gateways":1}', "Expected `bool`"),
        (b'{"op":"reset","profiles":null}', "Expected `array`"),
        (b'{"op":"reset"}', "profiles"),
        (b'{"op":"start","profiles":["\xff\xfe"]}', "UTF-8"),
        (b"\xff\xfe\x00", "bad control request"),
        (b'{"op":"ping"}\n{"op":"ping"}\n', "trailing"),
        (b'{"op":"start"}', "no profile named"),
        (b'{"op":"start","profiles":[],"all":false}', "no profile named"),
        (b'{"op":"stop","profiles":["a"],"all":true}', "not both"),
        (b'{"op":"reset","profiles":[]}', "no profile named"),
        (b"[" * 10_000, "bad control request"),
    ],
)
def test_bad_requests(data: bytes, fragment: str) -> None:
    with pytest.raises(ControlProtocolError) as info:
        decode_request(data)
    message = str(info.value)
    assert message.startswith("bad control request: ")
    assert fragment in message
    assert "\n" not in message
    # The msgspec error is not chained: the one-line message is the whole story.
    assert info.value.__suppress_context__


def test_oversized_request_is_refused_unparsed() -> None:
    data = encode_request(Start(profiles=["x" * MAX_REQUEST_BYTES]))
    with pytest.raises(ControlProtocolError, match="limit"):
        decode_request(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'{"op":"status"}',
        b'{"ok":"yes","profiles":[]}',
        b'{"ok":true,"profiles":[{"name":"w"}]}',
        b'{"ok":true,"error":null,"profiles":[{"name":"w","state":"RUNNING","desired":1}]}',
    ],
)
def test_bad_replies(data: bytes) -> None:
    with pytest.raises(ControlProtocolError) as info:
        decode_reply(data)
    assert str(info.value).startswith("bad control reply: ")
    assert "\n" not in str(info.value)


def test_targetless_requests_cannot_be_built() -> None:
    with pytest.raises(ControlProtocolError):
        Start()
    with pytest.raises(ControlProtocolError):
        Restart(profiles=["a"], all=True)
    with pytest.raises(ControlProtocolError):
        Reset(profiles=[])


def test_error_class_is_in_the_tree() -> None:
    assert issubclass(ControlProtocolError, SupervisorError)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_control_protocol_error(data: bytes) -> None:
    try:
        decoded = decode_request(data)
    except ControlProtocolError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(decoded, Start | Stop | Restart | Reset | Status | Shutdown | Ping)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_ops = st.sampled_from(["start", "stop", "restart", "reset", "status", "shutdown", "ping", "x"])
_near_requests = st.builds(
    lambda op, fields: {"op": op, **fields},
    _ops,
    st.dictionaries(
        st.sampled_from(["profiles", "all", "stop_gateways", "other"]),
        _json | st.lists(st.text(max_size=8), max_size=3),
        max_size=3,
    ),
)


@given(_near_requests)
def test_almost_valid_requests_only_raise_control_protocol_error(obj: object) -> None:
    data = msgspec.json.encode(obj)
    try:
        decode_request(data)
    except ControlProtocolError as exc:
        assert "\n" not in str(exc)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_as_reply_only_raise_control_protocol_error(data: bytes) -> None:
    try:
        decoded = decode_reply(data)
    except ControlProtocolError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(decoded, ControlReply)
