"""One SSH tunnel under supervision: an ``ssh -N -L`` process as a :class:`~.managed.ManagedUnit`.

A tunnel is a managed process like a gateway: the same states, backoff, burst limit, probes
and commands (:mod:`.managed`). What is particular to it:

* Launch: the local port is checked first (taken: FATAL at once, naming the holder, as a
  gateway's port conflict is); then ``ssh`` (:func:`.ssh.ssh_argv`) runs in its own session,
  stdin ``/dev/null``, no terminal, output appended to ``tunnels/<name>.log``, with an
  environment that carries no ``OPENCLAW_*`` variable. Its pid and start time go to
  ``tunnels/<name>.pid`` so a restarted supervisor adopts it instead of starting a second.
* Readiness: ssh has no READY. A poller (it only records and wakes the driver) asks
  ``GET /readyz`` through the tunnel, 50 ms apart for the first 3 s; a 200 from a port that our ssh
  process holds is READY. When ssh reports that the server could not reach the remote port
  (``channel N: open failed``), the start fails at once instead of at ``ready_timeout``.
* Health: the shared probe, through the tunnel, every ``probe_interval``; after
  ``probe_failures_before_restart`` failures in a row ssh is killed and reconnected with
  the shared backoff. ssh exiting (server gone, link dead: ``ServerAlive*``) is an exit
  like any other.
* Final failures (FATAL, no retry until ``tunnel start``): the server refused the key, the
  host key is unknown (strict) or changed, the local port is taken, a bad ssh option.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from openclaw_multi.faults import FAULT_ENV_PREFIX
from openclaw_multi.profiles.lock import find_port_holder, process_start_time
from openclaw_multi.protocol.control import TunnelStatus

from .child import GatewayProcess, spawn_in_session
from .defined import DefinedUnit
from .definitions import ProcessPid
from .managed import LaunchRefused
from .probe import probe_readyz
from .ssh import (
    LOG_MARKER,
    channel_open_failure,
    classify_ssh_log,
    forward_spec,
    parse_destination,
    ssh_argv,
)
from .states import ProcessState
from .tunnel_defs import TunnelDefinition, TunnelFiles

__all__ = ["SshProcess", "TunnelUnit", "ssh_env"]


_LOG_MAX: Final = 1024 * 1024
"""Rotate a tunnel's log at spawn once it is this big."""

_LOG_TAIL: Final = 16 * 1024
"""How much of the log (written by the current ssh) is read to explain a failure."""

_READY_POLL_S: Final = 0.05
"""Readiness polls this far apart (a refused connect to a port ssh has not bound yet is
cheap) for the first ``_READY_FAST_POLLS``, then ``_READY_POLL_SLOW_S``."""
_READY_FAST_POLLS: Final = 60
_READY_POLL_SLOW_S: Final = 0.25


def ssh_env(base_env: Mapping[str, str]) -> dict[str, str]:
    """ssh's environment: the supervisor's, without a single ``OPENCLAW_*`` variable.

    ``SSH_AUTH_SOCK`` and ``HOME`` stay (the person's agent and config); ``SSH_ASKPASS``
    is never consulted (``SSH_ASKPASS_REQUIRE=never``; ``BatchMode=yes`` already forbids
    every prompt).
    """
    env = {
        k: v
        for k, v in base_env.items()
        if not k.startswith("OPENCLAW_") or k.startswith(FAULT_ENV_PREFIX)
    }
    env.pop("NOTIFY_SOCKET", None)
    env.pop("DISPLAY", None)
    env["SSH_ASKPASS_REQUIRE"] = "never"
    return env


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            import psutil

            argv: list[str] = psutil.Process(pid).cmdline()
            return argv
        except Exception:
            return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


class SshProcess(GatewayProcess):
    """An ssh process of a tunnel: watched, stopped and verified like a gateway.

    Only the check before a signal differs: the pid must still have the recorded start
    time and run ``ssh`` with this tunnel's ``-L`` forward.
    """

    forward = ""
    """This tunnel's ``-L`` argument (set right after spawn or adoption)."""

    def verify(self) -> bool:
        if self.exited.done() or process_start_time(self.pid) != self.start_time:
            return False
        argv = _cmdline(self.pid)
        return (
            argv is not None
            and bool(argv)
            and os.path.basename(argv[0]) == "ssh"
            and self.forward in argv
        )


class TunnelUnit(DefinedUnit[TunnelDefinition, TunnelFiles, TunnelStatus]):
    """One tunnel: its definition, ssh process, restart history and pending command."""

    kind = "tunnel"
    process_noun = "ssh"
    probe_hint = "tunnel or remote gateway down?"

    # --- what the supervisor reads -----------------------------------------------------

    def status(self) -> TunnelStatus:
        """This tunnel as the control protocol reports it."""
        child = self.child
        definition = self.definition
        return TunnelStatus(
            name=self.name,
            state=self.state.value,
            desired=self.desired,
            ssh=definition.ssh,
            local_port=definition.local_port,
            remote_port=definition.remote_port,
            pid=child.pid if child is not None else None,
            healthy=self.healthy,
            started_at=child.started_at if child is not None else None,
            restarts=self.tracker.total_restarts,
            last_exit=self.last_exit,
            last_error=self.last_error,
            identity=definition.identity,
            known_hosts=str(self._known_hosts()),
            strict_host_keys=definition.known_hosts is not None,
            log_path=str(self.files.log_path(self.name)),
        )

    def redefine(self, definition: TunnelDefinition) -> bool:
        """Take a new definition; True if a running ssh must be restarted to apply it."""
        changed = _argv_fields(definition) != _argv_fields(self.definition)
        self._use_definition(definition)
        return changed

    def _use_definition(self, definition: TunnelDefinition) -> None:
        super()._use_definition(definition)
        self.host = "127.0.0.1"  # probes and readiness go through the local end
        self.port = definition.local_port

    # --- the ssh hooks ---------------------------------------------------------------------

    @property
    def output_path(self) -> Path:
        """``tunnels/<name>.log``."""
        return self.files.log_path(self.name)

    def _known_hosts(self) -> Path:
        given = self.definition.known_hosts
        return Path(given) if given is not None else self.files.known_hosts_path(self.name)

    def _argv(self) -> list[str]:
        definition = self.definition
        return ssh_argv(
            parse_destination(definition.ssh),
            local_port=definition.local_port,
            remote_port=definition.remote_port,
            known_hosts=str(self._known_hosts()),
            strict_host_keys=definition.known_hosts is not None,
            identity=definition.identity,
            ssh=shutil.which("ssh", path=self._base_env.get("PATH")) or "ssh",
        )

    def _launch(self) -> GatewayProcess:
        definition = self.definition
        self.port = definition.local_port
        self.host = "127.0.0.1"
        _check_local_port(definition.local_port)
        if definition.identity is not None and not os.path.isfile(definition.identity):
            raise LaunchRefused(f"identity file {definition.identity} does not exist")
        argv = self._argv()
        log_path = self.output_path
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > _LOG_MAX:
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log_fd = self._open_output(f"{LOG_MARKER}{stamp} starting: {' '.join(argv)}")
        try:
            child = spawn_in_session(
                argv,
                env=ssh_env(self._base_env),
                cwd=self.files.tunnels_dir,
                log_fd=log_fd,
                loop=asyncio.get_running_loop(),
                process_type=SshProcess,
            )
        finally:
            os.close(log_fd)
        assert isinstance(child, SshProcess)
        child.forward = forward_spec(definition.local_port, definition.remote_port)
        self._spawned(child, self._poll_ready(child))
        return child

    async def _poll_ready(self, child: GatewayProcess) -> None:
        """Until READY or a reason it will not come: probe through the tunnel."""
        polls = 0
        port = self.definition.local_port
        while child.alive and self.child is child and self.state is ProcessState.STARTING:
            polls += 1
            await asyncio.sleep(_READY_POLL_S if polls <= _READY_FAST_POLLS else _READY_POLL_SLOW_S)
            if await probe_readyz("127.0.0.1", port, self._probe_timeout):
                holder = await asyncio.to_thread(find_port_holder, port)
                if holder is None or holder[0] == child.pid:
                    self._ready.set()
                    self._wake.set()
                    return
                # Something else answers on our port (ssh has not bound it yet).
                continue
            refused = channel_open_failure(self._log_since_spawn())
            if refused is not None:
                self._not_ready(
                    f"the SSH server could not reach 127.0.0.1:{self.definition.remote_port} "
                    f"there (no gateway listening?): {refused}"
                )
                return

    def _log_since_spawn(self) -> str:
        return self._output_since_spawn(_LOG_TAIL)

    def _exit_detail(self, code: int | None) -> str | None:
        log = self._log_since_spawn()
        if code is None:  # asked by the probe path: the server's refusal says the most
            refused = channel_open_failure(log)
            if refused is not None:
                return refused
        failure = classify_ssh_log(log)
        return failure.message if failure is not None else None

    def _final_error(self) -> str | None:
        failure = classify_ssh_log(self._log_since_spawn())
        if failure is None or not failure.final:
            return None
        return f"ssh: {failure.message}"

    def _recorded_process(self, recorded: ProcessPid) -> GatewayProcess:
        child = SshProcess(recorded.pid, recorded.start_time, None, loop=asyncio.get_running_loop())
        child.forward = forward_spec(self.definition.local_port, self.definition.remote_port)
        return child

    def _adopt_note(self) -> str:
        return f" on local port {self.definition.local_port}"


def _argv_fields(definition: TunnelDefinition) -> tuple[object, ...]:
    return (
        definition.ssh,
        definition.remote_port,
        definition.local_port,
        definition.identity,
        definition.known_hosts,
    )


def _check_local_port(port: int) -> None:
    """Refuse a local port someone else listens on (ssh would fail the same way, later).

    Raises:
        LaunchRefused: It is taken (naming the holder when the system says who).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As ssh binds: SO_REUSEADDR, so a port in TIME_WAIT after our own ssh is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise LaunchRefused(f"cannot use local port {port}: {err.strerror}") from None
        else:
            return
    holder = find_port_holder(port)
    who = f" by pid {holder[0]} ({holder[1]})" if holder is not None else ""
    raise LaunchRefused(f"local port {port} is already in use{who}")
