"""The supervisor's control-socket messages, and their codec, built once.

Framing: newline-delimited JSON over the unix socket. A client connects, writes one request
line, reads one reply line, and closes. JSON encoding never emits a raw newline (it is
escaped inside strings), so a line is always one whole message.

A request is a tagged union on ``"op"``::

    {"op":"start","profiles":["work"],"all":false}
    {"op":"status"}

A reply is always a :class:`ControlReply`; a refused command is ``ok: false`` with a
one-line ``error``, never a dropped connection. Anything that is not a valid message becomes
:class:`ControlProtocolError` with a one-line message, never a traceback.
"""

from __future__ import annotations

from typing import Final

import msgspec

from openclaw_multi.errors import SupervisorError

MAX_REQUEST_BYTES: Final = 64 * 1024
"""Longest request line a server reads; longer is refused unparsed."""

MAX_REPLY_BYTES: Final = 16 * 1024 * 1024
"""Longest reply line a client reads (a status of many profiles stays far below it)."""


class ControlProtocolError(SupervisorError):
    """A control-socket message could not be decoded or made no sense."""


class _Request(msgspec.Struct, frozen=True, tag_field="op"):
    """Base of the requests: tagged on ``"op"``."""


class _Targeted(_Request, frozen=True):
    """A command on some profiles, or on ``all`` of them; exactly one of the two.

    Raises:
        ControlProtocolError: Both or neither were given.
    """

    profiles: list[str] = []
    all: bool = False

    def __post_init__(self) -> None:
        # Runs on decode as well as on construction: a request without a target is refused
        # by whoever builds it, on either side of the socket.
        if self.all and self.profiles:
            raise ControlProtocolError("give profile names or all, not both")
        if not self.all and not self.profiles:
            raise ControlProtocolError("no profile named (give names or all)")


class Start(_Targeted, frozen=True, tag="start"):
    """Make the profiles desired-up and start them; clears FATAL and the restart history."""


class Stop(_Targeted, frozen=True, tag="stop"):
    """Make the profiles desired-down and stop their gateways."""


class Restart(_Targeted, frozen=True, tag="restart"):
    """Stop then start the profiles' gateways; they end desired-up."""


class Reset(_Request, frozen=True, tag="reset"):
    """Clear FATAL and the restart history of the named profiles."""

    profiles: list[str]

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ControlProtocolError("no profile named")


class Status(_Request, frozen=True, tag="status"):
    """Report every known profile."""


class Shutdown(_Request, frozen=True, tag="shutdown"):
    """Stop the supervisor; its gateways keep serving unless ``stop_gateways``."""

    stop_gateways: bool = False


class Ping(_Request, frozen=True, tag="ping"):
    """Is a supervisor listening here? Answered with an empty ``ok`` reply."""


def _check_port(value: int | None, what: str) -> None:
    if value is not None and not 1 <= value <= 65535:
        raise ControlProtocolError(f"{what} must be 1-65535, got {value}")


class TunnelStart(_Request, frozen=True, tag="tunnel-start"):
    """Define (or update) tunnel ``name`` and start it; answered once it is healthy.

    Without ``ssh`` the tunnel must already be defined, and is started as it was. Given
    fields replace the stored ones; a running tunnel whose definition changed is restarted.
    ``local_port`` None: keep the stored one, or pick a free one once and keep it.
    ``known_hosts`` None: the tunnel's own file in the supervisor dir (accept-new).
    """

    name: str
    ssh: str | None = None
    identity: str | None = None
    remote_port: int | None = None
    local_port: int | None = None
    known_hosts: str | None = None

    def __post_init__(self) -> None:
        _check_port(self.remote_port, "remote_port")
        _check_port(self.local_port, "local_port")


class TunnelStop(_Request, frozen=True, tag="tunnel-stop"):
    """Stop tunnel ``name`` (desired-down); with ``remove`` also forget its definition."""

    name: str
    remove: bool = False


class TunnelList(_Request, frozen=True, tag="tunnel-list"):
    """Report every defined tunnel."""


class NodeStart(_Request, frozen=True, tag="node-start"):
    """Define (or update) the node host of profile ``name`` and start it.

    Answered once the host is up (its status file names its pid), not once it has reached
    its gateway: a host keeps retrying that itself. Without ``url`` the node must already be
    defined. Secrets never travel here: the CLI stores a token in the profile first.
    """

    name: str
    url: str | None = None
    display_name: str | None = None


class NodeStop(_Request, frozen=True, tag="node-stop"):
    """Stop node host ``name`` (desired-down); with ``remove`` also forget its definition."""

    name: str
    remove: bool = False


class NodeList(_Request, frozen=True, tag="node-list"):
    """Report every defined node host."""


ControlRequest = (
    Start
    | Stop
    | Restart
    | Reset
    | Status
    | Shutdown
    | Ping
    | TunnelStart
    | TunnelStop
    | TunnelList
    | NodeStart
    | NodeStop
    | NodeList
)


class ProfileStatus(msgspec.Struct, frozen=True):
    """One profile as the supervisor sees it.

    Attributes:
        name: Display name; ``"default"`` for the unnamed profile.
        state: A :class:`~openclaw_multi.supervisor.states.ProcessState` name.
        desired: Whether the profile should run.
        pid: The gateway's pid, if a process exists.
        port: The gateway's port, if known.
        started_at: Unix seconds when the current process started.
        restarts: Restarts the supervisor has made.
        last_exit: The last exit status (negative: killed by that signal).
        last_error: One line, e.g. a gateway's own exit-78 message.
    """

    name: str
    state: str
    desired: bool
    pid: int | None = None
    port: int | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None


class TunnelStatus(msgspec.Struct, frozen=True):
    """One SSH tunnel as the supervisor sees it (``openclaw tunnel list --json``).

    Attributes:
        name: The tunnel's name.
        state: A :class:`~openclaw_multi.supervisor.states.ProcessState` name.
        desired: Whether it should run.
        ssh: The SSH destination, ``[user@]host[:port]``.
        local_port: Listened on at ``127.0.0.1`` here.
        remote_port: Reached at ``127.0.0.1`` on the SSH server.
        pid: The ssh process, if one exists.
        healthy: The last ``GET /readyz`` through the tunnel answered 200 (None: not probed).
        started_at: Unix seconds when the current ssh started.
        restarts: Reconnects the supervisor has made.
        last_exit: ssh's last exit status (negative: killed by that signal).
        last_error: One line: ssh's own words or the probe failure.
        identity: The private key file given with ``--identity``, if any.
        known_hosts: The known_hosts file in use.
        strict_host_keys: True when ``known_hosts`` is the person's own file (no new keys
            are accepted); False for the tunnel's own file (accept-new).
        log_path: Where ssh's output goes.
    """

    name: str
    state: str
    desired: bool
    ssh: str
    local_port: int
    remote_port: int
    pid: int | None = None
    healthy: bool | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    strict_host_keys: bool = False
    log_path: str | None = None


class NodeHostStatus(msgspec.Struct, frozen=True, rename="camel"):
    """One supervised node host (``openclaw node status --json``).

    Attributes:
        name: The profile it runs as.
        state: A :class:`~openclaw_multi.supervisor.states.ProcessState` name.
        desired: Whether it should run.
        url: The gateway it joins.
        display_name: ``--name``, if given.
        pid: The node host process, if one exists.
        connected: Its link to the gateway is up (None: unknown, e.g. not running).
        node_id: Its node id (device id), once it has run.
        started_at: Unix seconds when the current process started.
        restarts: Restarts the supervisor has made.
        last_exit: The last exit status (negative: killed by that signal).
        last_error: One line: the host's own words or the supervisor's.
        log_path: The host's log (``<state>/logs/node.log``).
    """

    name: str
    state: str
    desired: bool
    url: str
    display_name: str | None = None
    pid: int | None = None
    connected: bool | None = None
    node_id: str | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    log_path: str | None = None


class ControlReply(msgspec.Struct, frozen=True):
    """The one reply to a request: ``ok`` with the affected profiles (or tunnels, or node
    hosts), or a one-line error."""

    ok: bool
    error: str | None = None
    profiles: list[ProfileStatus] = []
    tunnels: list[TunnelStatus] = []
    nodes: list[NodeHostStatus] = []


_ENCODER: Final = msgspec.json.Encoder()
_REQUEST_DECODER: Final = msgspec.json.Decoder(ControlRequest)
_REPLY_DECODER: Final = msgspec.json.Decoder(ControlReply)


def encode_request(request: ControlRequest) -> bytes:
    """One request line, newline included."""
    return _ENCODER.encode(request) + b"\n"


def decode_request(data: bytes) -> ControlRequest:
    """Parse one request line (the trailing newline is optional).

    Raises:
        ControlProtocolError: Too long, not UTF-8 JSON, unknown ``op``, or wrong fields.
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise ControlProtocolError(
            f"bad control request: {len(data)} bytes, limit {MAX_REQUEST_BYTES}"
        )
    try:
        return _REQUEST_DECODER.decode(data)
    except (msgspec.DecodeError, ControlProtocolError) as exc:
        raise ControlProtocolError(f"bad control request: {_one_line(exc)}") from None


def encode_reply(reply: ControlReply) -> bytes:
    """One reply line, newline included."""
    return _ENCODER.encode(reply) + b"\n"


def decode_reply(data: bytes) -> ControlReply:
    """Parse one reply line (the trailing newline is optional).

    Raises:
        ControlProtocolError: Too long, not UTF-8 JSON, or not a reply.
    """
    if len(data) > MAX_REPLY_BYTES:
        raise ControlProtocolError(f"bad control reply: {len(data)} bytes, limit {MAX_REPLY_BYTES}")
    try:
        return _REPLY_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ControlProtocolError(f"bad control reply: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
