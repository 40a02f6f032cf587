"""SSH tunnels, decided with plain values: destinations, the ``ssh`` command line, its errors.

Pure (no processes, sockets or clocks): :mod:`.tunnel` runs what this module decides.

The command line forwards ``127.0.0.1:<local>`` on this host to ``127.0.0.1:<remote>`` on the
SSH server, and nothing else::

    ssh -N -T -n -o BatchMode=yes -o ExitOnForwardFailure=yes
        -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -o ConnectTimeout=10
        -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=<file>
        -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no
        -o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no
        -o RequestTTY=no [-o IdentitiesOnly=yes -i FILE] [-p PORT]
        -L 127.0.0.1:<local>:127.0.0.1:<remote> -- [user@]host

* ``BatchMode=yes``: never a password, passphrase or host-key question (there is no one to
  answer; stdin is ``/dev/null`` and there is no terminal either). A refused key fails.
* ``ExitOnForwardFailure=yes``: a local port that cannot be bound ends ssh, loudly, instead
  of leaving a connection that forwards nothing.
* Host keys: a per-tunnel known_hosts file with ``accept-new`` (the first connection
  records the key, a changed key is refused afterwards), or the person's own file with
  ``StrictHostKeyChecking=yes``.
* ``-o`` options on the command line win over ``~/.ssh/config``, which still applies for
  everything else (``ProxyJump``, ``User``...). No secret is ever on the command line: there
  are no passwords at all, and the identity is a file path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from openclaw_multi.errors import UsageError

__all__ = [
    "ALIVE_COUNT_MAX",
    "ALIVE_INTERVAL_S",
    "DEFAULT_REMOTE_PORT",
    "LOG_MARKER",
    "SshDestination",
    "SshFailure",
    "channel_open_failure",
    "classify_ssh_log",
    "forward_spec",
    "parse_destination",
    "parse_port_number",
    "parse_tunnel_name",
    "ssh_argv",
]

DEFAULT_REMOTE_PORT: Final = 18789
"""OpenClaw's default gateway port, on the SSH server's loopback."""

ALIVE_INTERVAL_S: Final = 10
"""``ServerAliveInterval``: a keepalive over the encrypted channel every this many seconds."""

ALIVE_COUNT_MAX: Final = 3
"""``ServerAliveCountMax``: this many unanswered keepalives end ssh (a dead link in ~30 s)."""

CONNECT_TIMEOUT_S: Final = 10
"""``ConnectTimeout``: the TCP connect to the SSH server."""

LOG_MARKER: Final = "openclaw-tunnel: "
"""Lines the supervisor writes into a tunnel's log start with this (ssh's own lines do not)."""

_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_USER_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})")
_IPV6_RE: Final = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")


def parse_tunnel_name(raw: str) -> str:
    """Check a tunnel name: 1-64 letters, digits, ``_``, ``-``, starting with a letter/digit.

    Raises:
        UsageError: Anything else.
    """
    if not _NAME_RE.fullmatch(raw):
        raise UsageError(
            f"invalid tunnel name {raw!r} (use 1-64 letters, numbers, '_', '-'; "
            "start with a letter or number)"
        )
    return raw


def parse_port_number(raw: str | int, what: str) -> int:
    """A TCP port 1-65535 from text or an int.

    Raises:
        UsageError: Not a number, or out of range.
    """
    try:
        port = int(raw)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535 or (isinstance(raw, str) and not raw.strip().isdigit()):
        raise UsageError(f"invalid {what} {raw!r}: use a port number from 1 to 65535")
    return port


@dataclass(frozen=True)
class SshDestination:
    """Where ssh connects: ``[user@]host[:port]`` (IPv6 in brackets: ``[::1]:2222``)."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"

    @property
    def login(self) -> str:
        """The ``[user@]host`` argument of ssh (the port goes in ``-p``)."""
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_destination(raw: str) -> SshDestination:
    """Parse ``--ssh``: ``[user@]host[:port]``.

    Nothing that ssh could read as an option (a leading ``-``), no spaces, no shell or
    ssh-config metacharacters.

    Raises:
        UsageError: Not of that form.
    """
    bad = UsageError(f"invalid --ssh {raw!r}: use user@host or user@host:port")
    text = raw.strip()
    user: str | None = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        if not _USER_RE.fullmatch(user):
            raise bad
    port: int | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not _IPV6_RE.fullmatch(host) or ":" not in host:
            raise bad
        if rest:
            if not rest.startswith(":"):
                raise bad
            port = parse_port_number(rest[1:], "--ssh port")
    else:
        host, sep, port_text = text.partition(":")
        if sep:
            port = parse_port_number(port_text, "--ssh port")
        if not _HOST_RE.fullmatch(host):
            raise bad
    return SshDestination(host=host, user=user, port=port)


def forward_spec(local_port: int, remote_port: int) -> str:
    """The ``-L`` argument: loopback here to loopback there."""
    return f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"


def ssh_argv(
    destination: SshDestination,
    *,
    local_port: int,
    remote_port: int,
    known_hosts: str,
    strict_host_keys: bool,
    identity: str | None = None,
    ssh: str = "ssh",
    alive_interval: int = ALIVE_INTERVAL_S,
    alive_count_max: int = ALIVE_COUNT_MAX,
    connect_timeout: int = CONNECT_TIMEOUT_S,
) -> list[str]:
    """The whole ssh command line of a tunnel (see the module docstring).

    Args:
        destination: The SSH server.
        local_port: Listened on at ``127.0.0.1`` here.
        remote_port: Reached at ``127.0.0.1`` on the server.
        known_hosts: The known_hosts file to use (and, unless strict, to add to).
        strict_host_keys: ``yes`` (the file is the person's) instead of ``accept-new``.
        identity: A private key file (``-i``, and only that key is offered).
        ssh: The ssh program.
        alive_interval: ``ServerAliveInterval``.
        alive_count_max: ``ServerAliveCountMax``.
        connect_timeout: ``ConnectTimeout``.
    """
    options = {
        "BatchMode": "yes",
        "ExitOnForwardFailure": "yes",
        "ServerAliveInterval": str(alive_interval),
        "ServerAliveCountMax": str(alive_count_max),
        "ConnectTimeout": str(connect_timeout),
        "StrictHostKeyChecking": "yes" if strict_host_keys else "accept-new",
        "UserKnownHostsFile": known_hosts,
        "GlobalKnownHostsFile": "/dev/null",
        "UpdateHostKeys": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
        "PermitLocalCommand": "no",
        "RequestTTY": "no",
    }
    if identity is not None:
        options["IdentitiesOnly"] = "yes"
    argv = [ssh, "-N", "-T", "-n"]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    if identity is not None:
        argv += ["-i", identity]
    if destination.port is not None:
        argv += ["-p", str(destination.port)]
    argv += ["-L", forward_spec(local_port, remote_port), "--", destination.login]
    return argv


@dataclass(frozen=True)
class SshFailure:
    """What ssh's own output says went wrong.

    Attributes:
        message: One line for ``lastError``.
        final: Restarting will not help (refused key, bad or changed host key, local port
            taken, bad option): the tunnel goes FATAL until a person acts.
    """

    message: str
    final: bool


# (pattern in a line, final?, message prefix). First match from the end of the log wins.
_KNOWN: Final[tuple[tuple[str, bool, str], ...]] = (
    ("Permission denied (", True, "the SSH server refused the key"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", True, "the SSH server's host key changed"),
    ("Host key verification failed", True, "host key verification failed"),
    ("host key is known for", True, "host key not in the known_hosts file"),
    ("Address already in use", True, "the local port is already in use"),
    ("Could not request local forwarding", True, "the local port could not be forwarded"),
    ("Bad configuration option", True, "bad ssh option"),
    ("Too many authentication failures", True, "the SSH server refused the key"),
)

_NOISE: Final = (
    "Warning: Permanently added",
    "Pseudo-terminal will not be allocated",
)


def _lines(log: str) -> list[str]:
    return [
        line.strip()
        for line in log.splitlines()
        if line.strip() and not line.startswith(LOG_MARKER) and not line.startswith(_NOISE)
    ]


def classify_ssh_log(log: str) -> SshFailure | None:
    """Read what ssh wrote during one run and say what failed.

    Args:
        log: The log text written since that ssh started (supervisor marker lines are
            ignored).

    Returns:
        A known failure (final or not), else the last line ssh printed (not final), else
        None when it printed nothing.
    """
    lines = _lines(log)
    for pattern, final, prefix in _KNOWN:
        for line in reversed(lines):
            if pattern in line:
                return SshFailure(f"{prefix}: {line}", final)
    if lines:
        return SshFailure(lines[-1], False)
    return None


def channel_open_failure(log: str) -> str | None:
    """The line where ssh reports that the server could not reach the remote port, if any.

    ssh stays up when a forwarded connection fails on the server's side (``channel N: open
    failed: connect failed: Connection refused``): the tunnel is up, the gateway behind it
    is not there.
    """
    for line in reversed(_lines(log)):
        if "open failed" in line:
            return line
    return None
