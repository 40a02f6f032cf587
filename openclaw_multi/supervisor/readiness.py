"""Readiness pushed by gateways: the sd_notify datagram socket (``notify.sock``).

Each gateway gets ``NOTIFY_SOCKET=<supervisor dir>/notify.sock`` and sends
newline-separated ``KEY=VALUE`` datagrams (sd_notify(3)): ``READY=1`` once it serves,
``STATUS=...`` lines, and ``ERRNO=78`` with a one-line ``STATUS`` when it refuses to start.
``SO_PASSCRED`` makes the kernel attach the sender's pid, uid and gid to every datagram, so
a message is credited to the process that really sent it, not to whatever pid it claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["NotifyMessage", "NotifySocket", "parse_notify"]

_LOG = logging.getLogger("openclaw.supervisor")

_MAX_DATAGRAM: Final = 4096
_CREDS: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class NotifyMessage:
    """One sd_notify datagram.

    Attributes:
        pid: The sender's pid from the kernel credentials (None if none came with it).
        fields: Its ``KEY=VALUE`` lines; a later repeat of a key wins.
    """

    pid: int | None
    fields: dict[str, str]

    @property
    def ready(self) -> bool:
        """``READY=1``: the gateway listens and serves."""
        return self.fields.get("READY") == "1"

    @property
    def status(self) -> str | None:
        """``STATUS=``: one line for people."""
        return self.fields.get("STATUS")

    @property
    def errno(self) -> int | None:
        """``ERRNO=``: set with a STATUS when the gateway refuses to start."""
        raw = self.fields.get("ERRNO")
        return int(raw) if raw is not None and raw.isdigit() else None


def parse_notify(data: bytes) -> dict[str, str]:
    """Parse an sd_notify datagram into its ``KEY=VALUE`` fields (bad lines are skipped)."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


class NotifySocket:
    """The bound datagram socket; calls ``on_message`` for each datagram from our uid."""

    def __init__(self, path: Path, on_message: Callable[[NotifyMessage], None]) -> None:
        self.path = path
        self._on_message = on_message
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind (replacing a stale file: the caller holds the supervisor lock) and listen.

        Raises:
            OSError: The socket cannot be bound.
        """
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            old_umask = os.umask(0o177)  # created 0600: no window with a wider mode
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old_umask)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _readable(self) -> None:
        assert self._sock is not None
        # Drain everything queued: one wakeup may stand for several datagrams.
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(
                    _MAX_DATAGRAM, socket.CMSG_SPACE(_CREDS.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                _LOG.warning("notify socket: %s", err)
                return
            pid, uid = _sender(ancdata)
            if uid is not None and uid != os.getuid():
                _LOG.warning("notify socket: ignoring a datagram from uid %d", uid)
                continue
            try:
                self._on_message(NotifyMessage(pid, parse_notify(data)))
            except Exception:  # a bug in a handler must not kill the socket
                _LOG.exception("notify handler failed")


def _sender(ancdata: list[tuple[int, int, bytes]]) -> tuple[int | None, int | None]:
    for level, kind, payload in ancdata:
        is_creds = level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        if is_creds and len(payload) >= _CREDS.size:
            pid, uid, _gid = _CREDS.unpack_from(payload)
            return pid, uid
    return None, None
