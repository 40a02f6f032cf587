"""One gateway process as the supervisor holds it: spawn or adopt, watch, stop.

A gateway is started as a program (``python -m openclaw_multi.gateway``), in its own session
and process group, with its output appended to a file under its state dir: never a pipe, so
it keeps serving when the supervisor dies. Its exit is watched with a pidfd, which works
for a gateway adopted from an earlier supervisor (not our child) as well as for our own.

Nothing is signalled unless it is still the process we recorded: same pid, same start time,
and a command line that mentions ``openclaw``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import psutil

from openclaw_multi.faults import FAULT_ENV_PREFIX
from openclaw_multi.profiles.lock import Identity, identity_matches_process, process_start_time
from openclaw_multi.profiles.paths import ProfilePaths, env_for_profile

__all__ = [
    "STDERR_LOG_NAME",
    "GatewayProcess",
    "adopt_gateway",
    "gateway_argv",
    "gateway_env",
    "spawn_gateway",
    "spawn_in_session",
]

_LOG = logging.getLogger("openclaw.supervisor")

STDERR_LOG_NAME: Final = "gateway.stderr.log"
"""Where a supervised gateway's stdout and stderr go (under ``<state>/logs``)."""

_STDERR_LOG_MAX: Final = 1024 * 1024
"""Rotate the stderr file at spawn once it is this big (it only gets crash output)."""

_KILL_WAIT_S: Final = 5.0
"""After SIGKILL, how long to wait for the exit before giving up on this process."""

_POLL_S: Final = 0.2
"""Exit polling interval where ``pidfd_open`` is missing (Linux < 5.3)."""


def gateway_argv(name: str | None) -> list[str]:
    """The gateway's command line: no secrets, ever (argv is world-readable in /proc)."""
    profile = ["--profile", name] if name is not None else []
    return [sys.executable, "-m", "openclaw_multi.gateway", *profile, "--quiet"]


def gateway_env(
    name: str | None, base_env: Mapping[str, str], home: Path, notify_path: Path
) -> dict[str, str]:
    """The gateway's environment.

    Every ``OPENCLAW_*`` variable of the supervisor is dropped (it may belong to another
    profile, or carry a token); ``OPENCLAW_HOME`` pins the home the supervisor manages, and
    ``NOTIFY_SOCKET`` points readiness at the supervisor.
    """
    env = env_for_profile(name, base_env)
    env.update((k, v) for k, v in base_env.items() if k.startswith(FAULT_ENV_PREFIX))  # tests
    env["OPENCLAW_HOME"] = str(home)
    env["NOTIFY_SOCKET"] = str(notify_path)
    return env


class GatewayProcess:
    """A running gateway: its pid, its start time, and a future that resolves on its exit.

    Attributes:
        pid: The process id (also its process-group id when we started it).
        start_time: :func:`process_start_time` at spawn/adoption: tells a reused pid apart.
        started_at: Unix seconds when it started (display only).
        started_mono: Monotonic seconds when we spawned or adopted it.
        exited: Resolves to the exit status (negative: killed by that signal), or None when
            the status cannot be known (an adopted process is not our child).
    """

    def __init__(
        self,
        pid: int,
        start_time: int,
        popen: subprocess.Popen[bytes] | None,
        *,
        loop: asyncio.AbstractEventLoop,
        started_at: float | None = None,
    ) -> None:
        self.pid = pid
        self.start_time = start_time
        self.started_at = started_at if started_at is not None else time.time()
        self.started_mono = time.monotonic()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        self._popen = popen
        self._loop = loop
        self._pidfd: int | None = None
        self._poll: asyncio.TimerHandle | None = None

    @property
    def adopted(self) -> bool:
        """True if an earlier supervisor (or a person) started it, not us."""
        return self._popen is None

    @property
    def alive(self) -> bool:
        """False once its exit was seen."""
        return not self.exited.done()

    def watch(self) -> None:
        """Start watching for the exit (pidfd readable = the process is gone)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._gone()
            return
        except (OSError, AttributeError):
            self._poll = self._loop.call_later(_POLL_S, self._poll_alive)
            return
        self._pidfd = fd
        self._loop.add_reader(fd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        self._close_pidfd()
        self._gone()

    def _poll_alive(self) -> None:
        if process_start_time(self.pid) != self.start_time or self._is_zombie():
            self._gone()
        else:
            self._poll = self._loop.call_later(_POLL_S, self._poll_alive)

    def _is_zombie(self) -> bool:
        try:
            return bool(psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE)
        except (psutil.Error, OSError):
            return False

    def _gone(self) -> None:
        code: int | None = None
        if self._popen is not None:
            # Our child: reap it (no zombie) and learn its status. It has exited, so this
            # does not block.
            code = self._popen.wait()
        if not self.exited.done():
            self.exited.set_result(code)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def close(self) -> None:
        """Stop watching (the supervisor is going away; the process is left alone)."""
        self._close_pidfd()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def verify(self) -> bool:
        """Is ``pid`` still this gateway (start time and ``openclaw`` in its command line)?"""
        if self.exited.done():
            return False
        return identity_matches_process(_bare_identity(self.pid, self.start_time))

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the gateway's process group, after checking it is ours.

        A gateway started by hand (and adopted) may share a process group with its shell;
        then only the gateway itself is signalled.

        Returns:
            True if a signal was sent.
        """
        if not self.verify():
            return False
        try:
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError as err:
            _LOG.warning("cannot signal gateway pid %d: %s", self.pid, err)
            return False
        return True

    async def terminate(self, stop_timeout: float) -> int | None:
        """SIGTERM the group, wait ``stop_timeout``, then SIGKILL it; return the exit status.

        SIGCONT follows SIGTERM so a stopped (SIGSTOP) gateway wakes up and acts on it.
        """
        if self.alive and self.signal_group(signal.SIGTERM):
            self.signal_group(signal.SIGCONT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), stop_timeout)
        if self.alive:
            _LOG.warning(
                "gateway pid %d ignored SIGTERM for %.1fs: SIGKILL", self.pid, stop_timeout
            )
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), _KILL_WAIT_S)
        if self.alive:
            _LOG.error("gateway pid %d survived SIGKILL for %.0fs", self.pid, _KILL_WAIT_S)
            return None
        return self.exited.result()


def _bare_identity(pid: int, start_time: int) -> Identity:
    # identity_matches_process only reads pid and start_time; the rest is filler.
    return Identity(
        pid=pid,
        start_time=start_time,
        port=0,
        host="",
        config_path="",
        state_dir="",
        created_at=0.0,
        version="",
    )


def _open_stderr_log(paths: ProfilePaths) -> int:
    paths.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = paths.log_dir / STDERR_LOG_NAME
    with contextlib.suppress(OSError):
        if path.stat().st_size > _STDERR_LOG_MAX:
            # Safe: no gateway of this profile runs while we spawn one.
            os.replace(path, path.with_name(STDERR_LOG_NAME + ".1"))
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def spawn_gateway(
    paths: ProfilePaths,
    env: Mapping[str, str],
    *,
    loop: asyncio.AbstractEventLoop,
) -> GatewayProcess:
    """Start a gateway for ``paths`` in its own session and start watching it.

    Args:
        paths: The profile's paths (name, state dir).
        env: Its full environment, from :func:`gateway_env`.
        loop: The running loop (for the exit watch).

    Returns:
        The watched process.

    Raises:
        OSError: The state dir, the log file or the process could not be created.
    """
    log_fd = _open_stderr_log(paths)
    try:
        return spawn_in_session(
            gateway_argv(paths.name), env=env, cwd=paths.state_dir, log_fd=log_fd, loop=loop
        )
    finally:
        os.close(log_fd)


def spawn_in_session(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_fd: int,
    loop: asyncio.AbstractEventLoop,
    process_type: type[GatewayProcess] = GatewayProcess,
) -> GatewayProcess:
    """Start ``argv`` in its own session and process group, and start watching it.

    stdin is ``/dev/null`` and there is no controlling terminal (nothing can prompt);
    stdout and stderr go to ``log_fd`` (a file, never a pipe: the process outlives us).

    Raises:
        OSError: The process could not be created.
    """
    popen = subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=log_fd,
        close_fds=True,
        start_new_session=True,
    )
    # Until we reap it, the pid cannot be reused, so this start time is the child's.
    start_time = process_start_time(popen.pid) or 0
    process = process_type(popen.pid, start_time, popen, loop=loop)
    process.watch()
    return process


def adopt_gateway(identity: Identity, *, loop: asyncio.AbstractEventLoop) -> GatewayProcess | None:
    """Watch a gateway that an earlier supervisor (or a person) started.

    Args:
        identity: The gateway's identity file.
        loop: The running loop.

    Returns:
        The watched process, or None if ``identity`` does not name a live openclaw process
        (pid reused, start time differs, unrelated command).
    """
    if not identity_matches_process(identity):
        return None
    process = GatewayProcess(
        identity.pid, identity.start_time, None, loop=loop, started_at=identity.created_at
    )
    process.watch()
    # The pidfd pins the process now: checking again closes the window in which the pid
    # could have died and been reused between the first check and pidfd_open.
    if not process.verify():
        process.close()
        return None
    return process
