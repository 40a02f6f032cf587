"""The control socket: newline-delimited JSON requests from the CLI, one per connection.

Only the supervisor's own user may talk to it: the socket file is 0600 in a 0700 directory,
and the peer's uid (``SO_PEERCRED``, filled in by the kernel at connect) is checked too, so a
socket made reachable by a careless chmod still refuses strangers. Every refusal is an
``ok:false`` reply with one line, never a dropped connection or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from openclaw_multi.protocol.control import (
    MAX_REQUEST_BYTES,
    ControlProtocolError,
    ControlReply,
    ControlRequest,
    decode_request,
    encode_reply,
)

__all__ = ["ControlServer", "peer_uid", "replace_stale_socket"]

_LOG = logging.getLogger("openclaw.supervisor")

_READ_TIMEOUT_S: Final = 10.0
"""A client has this long to send its request line."""

_UCRED: Final = struct.Struct("3i")

Handler = Callable[[ControlRequest], Awaitable[ControlReply]]
AfterReply = Callable[[ControlRequest], None]


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix stream socket (``SO_PEERCRED``)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


def replace_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead supervisor.

    Call only while holding the supervisor lock: then no live supervisor of this home can
    be behind the file. The connect probe is for the log (a stale file refuses).
    """
    if not path.exists() and not path.is_symlink():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
            state = "answered (replacing it anyway: we hold the lock)"
        except OSError as err:
            state = f"stale ({err.strerror or err})"
    _LOG.info("control socket %s %s", path, state)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ControlServer:
    """The asyncio unix server; hands each decoded request to ``handler``."""

    def __init__(self, path: Path, handler: Handler, after_reply: AfterReply) -> None:
        """Prepare the server.

        Args:
            path: The socket file.
            handler: Answers one request.
            after_reply: Called once the reply was written (shutdown happens there, so its
                requester hears ``ok`` before the socket goes away).
        """
        self.path = path
        self._handler = handler
        self._after_reply = after_reply
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Replace a stale socket file, bind (mode 0600) and listen.

        Raises:
            OSError: The socket cannot be bound.
        """
        replace_stale_socket(self.path)
        old_umask = os.umask(0o177)  # created 0600: no window with a wider mode
        try:
            self._server = await asyncio.start_unix_server(
                self._on_client, path=str(self.path), limit=MAX_REQUEST_BYTES + 2
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    def stop_listening(self) -> None:
        """Refuse new connections and remove the socket file; requests in flight go on.

        Done first thing on shutdown, so that once a Shutdown is answered nobody can reach
        this supervisor any more (the next client starts a new one).
        """
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def close(self, grace: float = 0.0) -> None:
        """Stop listening; give requests in flight ``grace`` seconds, then cancel them."""
        self.stop_listening()
        if self._clients and grace > 0:
            await asyncio.wait(set(self._clients), timeout=grace)
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nobody to answer
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read the request line before judging the peer: answering first and closing would
        # race the client's write (EPIPE) and it might never see the reason.
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), _READ_TIMEOUT_S)
        except TimeoutError:
            line = b""
            error: str | None = "no request within 10 s"
        except asyncio.LimitOverrunError:
            line = b""
            error = f"request over {MAX_REQUEST_BYTES} bytes"
        except asyncio.IncompleteReadError as err:
            if not err.partial.strip():
                return  # connected and left (a liveness probe)
            line, error = err.partial, None
        else:
            error = None
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid != os.getuid():
            _LOG.warning("control socket: refused a peer with uid %s", uid)
            await _send(writer, ControlReply(ok=False, error="permission denied"))
            return
        if error is not None:
            await _send(writer, ControlReply(ok=False, error=f"bad control request: {error}"))
            return
        try:
            request = decode_request(line)
        except ControlProtocolError as err:
            await _send(writer, ControlReply(ok=False, error=str(err)))
            return
        reply = await self._handler(request)
        await _send(writer, reply)
        self._after_reply(request)


async def _send(writer: asyncio.StreamWriter, reply: ControlReply) -> None:
    writer.write(encode_reply(reply))
    await writer.drain()
