"""Talking to this home's supervisor over its control socket (what the CLI uses).

Blocking and synchronous on purpose: a CLI command sends one request and waits for one
reply. When nothing listens and ``autostart`` is on, the supervisor is started as a program
(``python -m openclaw_multi.supervisor``: never imported, see architecture.md); that program
detaches and exits only once its socket listens, and we then wait, bounded, until it
answers a Ping.

Usage::

    client = SupervisorClient(home)
    reply = client.request(Start(profiles=["work"]))
    if not reply.ok:
        print(reply.error)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from openclaw_multi.errors import SupervisorError
from openclaw_multi.profiles.discovery import SUPERVISOR_DIR_NAME
from openclaw_multi.protocol.control import (
    MAX_REPLY_BYTES,
    ControlProtocolError,
    ControlReply,
    ControlRequest,
    Ping,
    TunnelList,
    TunnelStart,
    TunnelStop,
    decode_reply,
    encode_request,
)

__all__ = ["SupervisorClient", "supervisor_dir"]

SOCKET_NAME: Final = "supervisor.sock"
LOG_NAME: Final = "supervisor.log"
_MAX_UNIX_PATH: Final = 107
_START_TIMEOUT_S: Final = 20.0
_PING_TIMEOUT_S: Final = 2.0
_RESPAWN_AFTER_S: Final = 3.0
_KEEP_ENV_PREFIXES: Final = ("OPENCLAW_SUPERVISOR_",)
_KEEP_ENV: Final = frozenset(
    {"OPENCLAW_HOME", "OPENCLAW_SYSTEMD_DIR", "OPENCLAW_SYSTEMD_SYSTEM_DIR", "OPENCLAW_LAUNCHD_DIR"}
)  # the service dirs: the supervisor must see the units the CLI sees (one owner per profile)


def supervisor_dir(home: Path) -> Path:
    """The supervisor's directory of ``home``: ``<home>/.openclaw-supervisor``."""
    return home / SUPERVISOR_DIR_NAME


class _NotListening(Exception):
    """No supervisor behind the socket (missing file, or connect refused)."""


class SupervisorClient:
    """A client of the supervisor of one home."""

    def __init__(self, home: Path, *, env: Mapping[str, str] | None = None) -> None:
        """Make a client.

        Args:
            home: The home the profiles live under (``OPENCLAW_HOME`` or ``HOME``).
            env: Environment to start a supervisor with (default: ``os.environ``). Only
                what is safe is passed on: no ``OPENCLAW_*`` variable but ``OPENCLAW_HOME``
                and the ``OPENCLAW_SUPERVISOR_*`` knobs, so no gateway token or password
                ends up in a long-lived process.
        """
        self.home = home
        self.directory = supervisor_dir(home)
        self.socket_path = self.directory / SOCKET_NAME
        self._env = env

    def request(
        self, req: ControlRequest, *, timeout: float = 30.0, autostart: bool = True
    ) -> ControlReply:
        """Send one request and return the reply (``ok:false`` replies are returned).

        Args:
            req: The request.
            timeout: Seconds for the whole exchange, not counting a supervisor start.
            autostart: Start a supervisor when none listens.

        Raises:
            SupervisorError: No supervisor (and ``autostart`` off or the start failed), no
                reply in time, or a reply that does not parse. One line.
        """
        try:
            return self._exchange(req, timeout)
        except _NotListening:
            if not autostart:
                raise SupervisorError(
                    f"the supervisor is not running (no answer on {self.socket_path})"
                ) from None
        self._start_supervisor()
        try:
            return self._exchange(req, timeout)
        except _NotListening:
            raise SupervisorError(
                f"the supervisor stopped answering on {self.socket_path}"
            ) from None

    def is_running(self) -> bool:
        """Tell whether a supervisor answers a Ping (never starts one)."""
        try:
            return self._exchange(Ping(), _PING_TIMEOUT_S).ok
        except (_NotListening, SupervisorError):
            return False

    # --- tunnels (docs/tunnels.md) ---------------------------------------------------------

    def tunnel_start(
        self,
        name: str,
        *,
        ssh: str | None = None,
        identity: str | None = None,
        remote_port: int | None = None,
        local_port: int | None = None,
        known_hosts: str | None = None,
        timeout: float = 60.0,
    ) -> ControlReply:
        """Define (with ``ssh``) or update tunnel ``name`` and start it; the reply comes once
        it is healthy or failed. Paths must be absolute. Starts a supervisor if none runs."""
        request = TunnelStart(
            name=name,
            ssh=ssh,
            identity=identity,
            remote_port=remote_port,
            local_port=local_port,
            known_hosts=known_hosts,
        )
        return self.request(request, timeout=timeout, autostart=True)

    def tunnel_stop(
        self, name: str, *, remove: bool = False, timeout: float = 30.0
    ) -> ControlReply:
        """Stop tunnel ``name`` (and forget it with ``remove``); the reply comes once ssh is
        gone. Starts a supervisor if none runs (it adopts a left-over ssh, then stops it)."""
        return self.request(TunnelStop(name=name, remove=remove), timeout=timeout, autostart=True)

    def tunnel_list(self, *, timeout: float = 5.0) -> ControlReply:
        """Every tunnel's status (never starts a supervisor: SupervisorError if none runs)."""
        return self.request(TunnelList(), timeout=timeout, autostart=False)

    # --- one exchange --------------------------------------------------------------------

    def _exchange(self, req: ControlRequest, timeout: float) -> ControlReply:
        path = os.fsencode(self.socket_path)
        if len(path) > _MAX_UNIX_PATH:
            raise SupervisorError(
                f"socket path {self.socket_path} is over the {_MAX_UNIX_PATH}-byte unix "
                "socket limit: use a shorter OPENCLAW_HOME"
            )
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                raise _NotListening from None
            except OSError as err:
                raise SupervisorError(
                    f"cannot connect to the supervisor at {self.socket_path}: {err.strerror or err}"
                ) from None
            try:
                sock.sendall(encode_request(req))
                raw = _read_line(sock, deadline)
            except TimeoutError:
                raise SupervisorError(
                    f"the supervisor did not answer within {timeout:g}s"
                ) from None
            except OSError as err:
                raise SupervisorError(
                    f"lost the supervisor connection: {err.strerror or err}"
                ) from None
        try:
            return decode_reply(raw)
        except ControlProtocolError as err:
            raise SupervisorError(str(err)) from None

    # --- autostart -----------------------------------------------------------------------

    def _start_env(self) -> dict[str, str]:
        base = os.environ if self._env is None else self._env
        env = {
            k: v
            for k, v in base.items()
            if not k.startswith("OPENCLAW_") or k in _KEEP_ENV or k.startswith(_KEEP_ENV_PREFIXES)
        }
        env.pop("NOTIFY_SOCKET", None)  # systemd's socket is for the CLI's unit, not ours
        env["OPENCLAW_HOME"] = str(self.home)
        return env

    def _start_supervisor(self) -> None:
        """Start a supervisor program and wait until it answers a Ping.

        A program that exits 0 without a supervisor answering lost the lock to one that was
        just shutting down; it is started again until the deadline.
        """
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            self._spawn_supervisor(deadline)
            if self._wait_answering(min(deadline, time.monotonic() + _RESPAWN_AFTER_S)):
                return
            if time.monotonic() >= deadline:
                raise SupervisorError(
                    f"the supervisor started but does not answer on {self.socket_path}"
                )

    def _spawn_supervisor(self, deadline: float) -> None:
        """Run the detaching supervisor program until it reports (it exits once listening)."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            log_fd = os.open(
                self.directory / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
            )
        except OSError as err:
            raise SupervisorError(
                f"cannot prepare {self.directory}: {err.strerror or err}"
            ) from None
        try:
            # The program detaches (fork + setsid) and exits once its socket listens, so
            # waiting for it is bounded and leaves no child behind.
            proc = subprocess.Popen(
                [sys.executable, "-m", "openclaw_multi.supervisor"],
                env=self._start_env(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as err:
            raise SupervisorError(f"cannot start the supervisor: {err}") from None
        finally:
            os.close(log_fd)
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise SupervisorError(
                f"the supervisor did not start within {_START_TIMEOUT_S:g}s; "
                f"see {self.directory / LOG_NAME}"
            ) from None
        if code != 0:
            raise SupervisorError(f"the supervisor did not start (exit {code}): {self._log_tail()}")

    def _wait_answering(self, until: float) -> bool:
        """Poll with Ping until a supervisor answers (True) or ``until`` passes (False)."""
        # Another supervisor may have won the race for the lock and still be binding.
        delay = 0.01
        while True:
            try:
                if self._exchange(Ping(), _PING_TIMEOUT_S).ok:
                    return True
            except _NotListening:
                pass
            if time.monotonic() >= until:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _log_tail(self) -> str:
        path = self.directory / LOG_NAME
        with contextlib.suppress(OSError):
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1].strip()
        return f"see {path}"


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    """Read up to the first newline (bounded by MAX_REPLY_BYTES and the deadline)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            if chunks:
                return b"".join(chunks)
            raise SupervisorError("the supervisor closed the connection without a reply")
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[: newline + 1])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise SupervisorError(f"supervisor reply over {MAX_REPLY_BYTES} bytes")
