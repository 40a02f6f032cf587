"""One node host under supervision: ``openclaw --profile NAME node run`` as a managed unit.

Like a tunnel (:mod:`.tunnel`), a node host is a :class:`~.managed.ManagedUnit`: the same
states, backoff, burst limit and commands. What is particular to it:

* Launch: ``python -m openclaw_multi.cli.main --profile NAME node run --url URL [--name N]``
  in its own session, stdin ``/dev/null``, output appended to ``nodes/<name>.out``, with the
  profile's environment (no other ``OPENCLAW_*`` variable; ``OPENCLAW_HOME`` pinned). No
  secret is on its command line: it reads the token ``openclaw node start`` stored in the
  profile (``nodehost-token``, 0600), or presents its device token.
* Readiness: the host writes ``<state>/nodehost.status.json`` (client/nodehost/status.py)
  once it is up; a file naming this pid is READY. Up means serving and reconnecting on its
  own: a gateway that is down is the host's business (``connected: false``), not a restart.
* Health: the status file still names this pid (the process being alive is watched anyway).
* Final failures (FATAL, no retry until ``node start``): exit 1 (no credentials), 2 (bad
  options) and 78 (bad config, another host on the profile), with the host's own
  ``error:`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Final

import msgspec

from openclaw_multi.profiles.lock import process_start_time
from openclaw_multi.profiles.paths import ProfilePaths, env_for_profile, resolve_paths
from openclaw_multi.protocol.control import NodeHostStatus

from .child import GatewayProcess, spawn_in_session
from .defined import DefinedUnit
from .node_defs import NodeDefinition, NodeFiles, ProcessPid
from .states import ProcessState

__all__ = ["NodeHostProcess", "NodeUnit"]

STATUS_FILE: Final = "nodehost.status.json"
"""Written by the node host (client/nodehost/status.py); read here by shape only."""
_FINAL_EXITS: Final = (1, 2, 78)
_READY_POLL_S: Final = 0.05
_OUT_TAIL: Final = 8 * 1024


class _LinkStatus(msgspec.Struct, frozen=True, rename="camel"):
    pid: int
    node_id: str | None = None
    connected: bool | None = None
    last_error: str | None = None


_status_decoder: Final = msgspec.json.Decoder(_LinkStatus)


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


class NodeHostProcess(GatewayProcess):
    """A node host process: checked to still be ``node run`` for this profile before a signal."""

    profile = ""

    def verify(self) -> bool:
        if self.exited.done() or process_start_time(self.pid) != self.start_time:
            return False
        argv = _cmdline(self.pid)
        if argv is None or "node" not in argv or "run" not in argv or "--profile" not in argv:
            return False
        at = argv.index("--profile")
        return at + 1 < len(argv) and argv[at + 1] == self.profile


class NodeUnit(DefinedUnit[NodeDefinition, NodeFiles, NodeHostStatus]):
    """One supervised node host: its definition, process, restart history and command."""

    kind = "node"
    process_noun = "node host"
    probe_hint = "node host stuck?"

    @functools.cached_property
    def paths(self) -> ProfilePaths:
        """The paths of the profile the node host runs as."""
        return resolve_paths(self.name, {"HOME": str(self._home)}, explicit=True)

    @property
    def status_path(self) -> Path:
        """The host's own status file."""
        return self.paths.state_dir / STATUS_FILE

    # --- what the supervisor reads -----------------------------------------------------

    def _link(self) -> _LinkStatus | None:
        child = self.child
        try:
            link = _status_decoder.decode(self.status_path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return link if child is not None and link.pid == child.pid else None

    def status(self) -> NodeHostStatus:
        """This node host as the control protocol reports it."""
        child = self.child
        link = self._link()
        return NodeHostStatus(
            name=self.name,
            state=self.state.value,
            desired=self.desired,
            url=self.definition.url,
            display_name=self.definition.display_name,
            pid=child.pid if child is not None else None,
            connected=link.connected if link is not None else None,
            node_id=link.node_id if link is not None else None,
            started_at=child.started_at if child is not None else None,
            restarts=self.tracker.total_restarts,
            last_exit=self.last_exit,
            last_error=self.last_error or (link.last_error if link is not None else None),
            log_path=str(self.paths.log_dir / "node.log"),
        )

    def redefine(self, definition: NodeDefinition) -> bool:
        """Take a new definition; True if a running host must be restarted to apply it."""
        changed = (definition.url, definition.display_name) != (
            self.definition.url,
            self.definition.display_name,
        )
        self.definition = definition
        return changed

    # --- the process hooks -----------------------------------------------------------------

    @property
    def output_path(self) -> Path:
        """``nodes/<name>.out``."""
        return self.files.out_path(self.name)

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "openclaw_multi.cli.main", "--profile", self.name]
        argv += ["node", "run", "--url", self.definition.url]
        if self.definition.display_name:
            argv += ["--name", self.definition.display_name]
        return argv

    def _env(self) -> dict[str, str]:
        env = env_for_profile(self.name, self._base_env)
        env["OPENCLAW_HOME"] = str(self._home)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def _launch(self) -> GatewayProcess:
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()  # a stale file must not make the new process READY
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out_fd = self._open_output(f"-- {stamp} starting node host for {self.definition.url}")
        try:
            child = spawn_in_session(
                self._argv(),
                env=self._env(),
                cwd=self.files.nodes_dir,
                log_fd=out_fd,
                loop=asyncio.get_running_loop(),
                process_type=NodeHostProcess,
            )
        finally:
            os.close(out_fd)
        assert isinstance(child, NodeHostProcess)
        child.profile = self.name
        self._spawned(child, self._poll_ready(child))
        return child

    async def _poll_ready(self, child: GatewayProcess) -> None:
        """Until the host's status file names this pid (or the process is gone)."""
        while child.alive and self.child is child and self.state is ProcessState.STARTING:
            await asyncio.sleep(_READY_POLL_S)
            if self._link() is not None:
                self._ready.set()
                self._wake.set()
                return

    async def _probe_ok(self) -> bool:
        return self._link() is not None

    def _error_line(self) -> str | None:
        """The last ``error:`` line the host printed since this spawn."""
        text = self._output_since_spawn(_OUT_TAIL)
        lines = [line for line in text.splitlines() if line.startswith("error: ")]
        return lines[-1].removeprefix("error: ") if lines else None

    def _exit_detail(self, code: int | None) -> str | None:
        return self._error_line() if code else None

    def _final_error(self) -> str | None:
        if self.last_exit not in _FINAL_EXITS:
            return None
        return self._error_line() or f"exit {self.last_exit}"

    def _recorded_process(self, recorded: ProcessPid) -> GatewayProcess:
        child = NodeHostProcess(
            recorded.pid, recorded.start_time, None, loop=asyncio.get_running_loop()
        )
        child.profile = self.name
        return child
