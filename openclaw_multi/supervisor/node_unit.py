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
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import msgspec

from openclaw_multi.profiles.lock import process_start_time
from openclaw_multi.profiles.paths import env_for_profile, resolve_paths
from openclaw_multi.protocol.control import NodeHostStatus

from .child import GatewayProcess, spawn_in_session
from .managed import ManagedUnit
from .node_defs import NodeDefinition, NodeFiles, ProcessPid
from .policy import RestartPolicy
from .states import ProcessState

__all__ = ["NodeHostProcess", "NodeUnit"]

_LOG = logging.getLogger("openclaw.supervisor")
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


class NodeUnit(ManagedUnit):
    """One supervised node host: its definition, process, restart history and command."""

    kind = "node"
    process_noun = "node host"
    probe_hint = "node host stuck?"

    def __init__(
        self,
        name: str,
        definition: NodeDefinition,
        files: NodeFiles,
        *,
        home: Path,
        policy: RestartPolicy,
        probe_timeout: float,
        persist: Callable[[], None],
        base_env: Mapping[str, str],
    ) -> None:
        super().__init__(
            name,
            policy=policy,
            probe_timeout=probe_timeout,
            persist=persist,
            desired=definition.desired,
        )
        self.definition = definition
        self.files = files
        self.paths = resolve_paths(name, {"HOME": str(home)}, explicit=True)
        self._home = home
        self._base_env = base_env
        self._out_offset = 0
        self._poller: asyncio.Task[None] | None = None

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

    def stored(self) -> NodeDefinition:
        """The definition with the current desired state (what ``nodes.json`` keeps)."""
        if self.definition.desired == self.desired:
            return self.definition
        return msgspec.structs.replace(self.definition, desired=self.desired)

    def redefine(self, definition: NodeDefinition) -> bool:
        """Take a new definition; True if a running host must be restarted to apply it."""
        changed = (definition.url, definition.display_name) != (
            self.definition.url,
            self.definition.display_name,
        )
        self.definition = definition
        return changed

    # --- the process hooks -----------------------------------------------------------------

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
        self.files.ensure_dir()
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()  # a stale file must not make the new process READY
        out = self.files.out_path(self.name)
        out_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            self._out_offset = os.fstat(out_fd).st_size
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            os.write(out_fd, f"-- {stamp} starting node host for {self.definition.url}\n".encode())
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
        try:
            self.files.write_pid(self.name, ProcessPid(pid=child.pid, start_time=child.start_time))
        except OSError as err:
            _LOG.warning("node %s: cannot record pid: %s", self.name, err)
        self._poller = asyncio.get_running_loop().create_task(
            self._poll_ready(child), name=f"node-ready:{self.name}"
        )
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
        try:
            with self.files.out_path(self.name).open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = self._out_offset if self._out_offset <= size else 0
                f.seek(max(start, size - _OUT_TAIL))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        lines = [line for line in text.splitlines() if line.startswith("error: ")]
        return lines[-1].removeprefix("error: ") if lines else None

    def _exit_detail(self, code: int | None) -> str | None:
        return self._error_line() if code else None

    def _final_error(self) -> str | None:
        if self.last_exit not in _FINAL_EXITS:
            return None
        return self._error_line() or f"exit {self.last_exit}"

    def _forget_process(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self.files.remove_pid(self.name)

    def try_adopt(self) -> bool:
        """Adopt the node host an earlier supervisor started, if it still runs."""
        if self.child is not None or self.state is not ProcessState.STOPPED:
            return False
        recorded = self.files.read_pid(self.name)
        if recorded is None:
            return False
        loop = asyncio.get_running_loop()
        child = NodeHostProcess(recorded.pid, recorded.start_time, None, loop=loop)
        child.profile = self.name
        if not child.verify():
            self.files.remove_pid(self.name)
            return False
        child.watch()
        if not child.verify():
            child.close()
            return False
        with contextlib.suppress(OSError):
            self._out_offset = self.files.out_path(self.name).stat().st_size
        self._adopted(child)
        _LOG.info("node %s: adopted node host pid %d", self.name, child.pid)
        return True
