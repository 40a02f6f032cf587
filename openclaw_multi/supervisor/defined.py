"""Defined units: a managed process kept by a stored definition (a tunnel, a node host), and
the set of them a supervisor holds.

:class:`DefinedUnit` is what :class:`~.tunnel.TunnelUnit` and :class:`~.node_unit.NodeUnit`
share beyond :class:`~.managed.ManagedUnit`: the definition (its ``desired`` kept in step with
the unit's), the process's output file (appended, 0600; what the current process wrote is
read back to explain a failure), the pid file written at spawn and read to adopt a process an
earlier supervisor left running, and a readiness poller ended with the process.

:class:`DefinedUnits` is what :class:`~.tunnels.Tunnels` and :class:`~.node_hosts.NodeHosts`
share: at start it loads the definitions, adopts the processes still running and starts the
units that should run; a start defines or updates one unit and answers once it is up (or
failed); a stop answers once its process is gone (``remove`` also forgets it). Every change
to a definition or a desired state is saved at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from openclaw_multi.errors import UsageError
from openclaw_multi.protocol.control import ControlReply

from .child import GatewayProcess
from .definitions import Definition, ProcessPid, UnitFiles
from .managed import ManagedUnit
from .policy import RestartPolicy
from .states import ProcessState

__all__ = ["DefinedUnit", "DefinedUnits", "UnitSettings"]

_LOG = logging.getLogger("openclaw.supervisor")

D = TypeVar("D", bound=Definition)
F = TypeVar("F", bound=UnitFiles)
S = TypeVar("S")
U = TypeVar("U", bound="DefinedUnit[Any, Any, Any]")


@dataclass(frozen=True)
class UnitSettings:
    """What every defined unit of a supervisor is given."""

    home: Path
    """The home the supervisor serves."""
    policy: RestartPolicy
    probe_timeout: float
    base_env: Mapping[str, str]
    """The supervisor's environment (a unit derives its process's from it)."""


class DefinedUnit(ManagedUnit, Generic[D, F, S]):
    """A managed process kept by a definition of type ``D``, reported as status ``S``.

    Args:
        name: The unit's name (its key in the definitions file).
        definition: Its definition.
        files: Where its files live.
        settings: The supervisor's settings.
        persist: Saves every definition (called when ``desired`` changes).
    """

    definition: D
    """The current definition (its ``desired`` may lag: see :meth:`stored`)."""

    def __init__(
        self,
        name: str,
        definition: D,
        files: F,
        settings: UnitSettings,
        persist: Callable[[], None],
    ) -> None:
        super().__init__(
            name,
            policy=settings.policy,
            probe_timeout=settings.probe_timeout,
            persist=persist,
            desired=definition.desired,
        )
        self.files = files
        self._use_definition(definition)
        self._home = settings.home
        self._base_env = settings.base_env
        self._output_offset = 0
        self._poller: asyncio.Task[None] | None = None

    # --- hooks (a subclass fills these in) -------------------------------------------------

    @property
    def output_path(self) -> Path:
        """Where the process's stdout and stderr are appended."""
        raise NotImplementedError

    def status(self) -> S:
        """This unit as the control protocol reports it."""
        raise NotImplementedError

    def redefine(self, definition: D) -> bool:
        """Take a new definition; True if a running process must be restarted to apply it."""
        raise NotImplementedError

    def _use_definition(self, definition: D) -> None:
        """Make ``definition`` current (an override also updates what derives from it)."""
        self.definition = definition

    def _recorded_process(self, recorded: ProcessPid) -> GatewayProcess:
        """The (unwatched) process a pid file names, set up so ``verify`` can check it."""
        raise NotImplementedError

    def _adopt_note(self) -> str:
        """Appended to the "adopted" log line."""
        return ""

    # --- shared ------------------------------------------------------------------------------

    def stored(self) -> D:
        """The definition with the current desired state (what the definitions file keeps)."""
        if self.definition.desired == self.desired:
            return self.definition
        return msgspec.structs.replace(self.definition, desired=self.desired)

    def _open_output(self, header: str) -> int:
        """Open the output file (append, 0600), note where this spawn's output starts and
        write ``header`` (one line). The caller closes the returned fd."""
        self.files.ensure_dir()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.output_path, flags, 0o600)
        try:
            self._output_offset = os.fstat(fd).st_size
            os.write(fd, f"{header}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _output_since_spawn(self, tail: int) -> str:
        """The last ``tail`` bytes (at most) the current process wrote; "" if unreadable."""
        try:
            with self.output_path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = self._output_offset if self._output_offset <= size else 0
                f.seek(max(start, size - tail))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _spawned(self, child: GatewayProcess, poll: Coroutine[Any, Any, None]) -> None:
        """Record ``child``'s pid (for adoption) and start its readiness poller."""
        try:
            self.files.write_pid(self.name, ProcessPid(pid=child.pid, start_time=child.start_time))
        except OSError as err:  # adoption after a crash is lost; the process still works
            _LOG.warning(
                "%s %s: cannot record %s pid: %s", self.kind, self.name, self.process_noun, err
            )
        self._poller = asyncio.get_running_loop().create_task(
            poll, name=f"{self.kind}-ready:{self.name}"
        )

    def _forget_process(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self.files.remove_pid(self.name)

    def try_adopt(self) -> bool:
        """Adopt the process an earlier supervisor started for this unit, if it still runs."""
        if self.child is not None or self.state is not ProcessState.STOPPED:
            return False
        recorded = self.files.read_pid(self.name)
        if recorded is None:
            return False
        child = self._recorded_process(recorded)
        if not child.verify():
            self.files.remove_pid(self.name)
            return False
        child.watch()
        if not child.verify():  # the pidfd pins it now; check once more
            child.close()
            return False
        try:
            self._output_offset = self.output_path.stat().st_size
        except OSError:
            self._output_offset = 0
        self._adopted(child)
        _LOG.info(
            "%s %s: adopted %s pid %d%s",
            self.kind,
            self.name,
            self.process_noun,
            child.pid,
            self._adopt_note(),
        )
        return True


class DefinedUnits(Generic[U, D, F, S]):
    """The units of one kind in one supervisor directory.

    Attributes:
        noun: What a unit is, for messages (``tunnel``, ``node host``).
        list_hint: The command that lists them (for "no such unit").
    """

    noun: ClassVar[str] = "unit"
    list_hint: ClassVar[str] = ""

    def __init__(
        self,
        directory: Path,
        home: Path,
        *,
        policy: RestartPolicy,
        probe_timeout: float,
        base_env: Mapping[str, str],
    ) -> None:
        self.files = self._files(directory)
        self._settings = UnitSettings(home, policy, probe_timeout, base_env)
        self._units: dict[str, U] = {}

    # --- hooks (a subclass fills these in) -------------------------------------------------

    def _files(self, directory: Path) -> F:
        """The files of these units in supervisor directory ``directory``."""
        raise NotImplementedError

    def _load(self) -> dict[str, D]:
        """The stored definitions (never raises)."""
        raise NotImplementedError

    def _save(self, definitions: dict[str, D]) -> None:
        """Store the definitions (raises ``OSError``)."""
        raise NotImplementedError

    def _make(self, name: str, definition: D) -> U:
        """A new unit (its driver not started yet), given ``self._settings`` and
        ``self._persist``."""
        raise NotImplementedError

    def _reply(self, ok: bool, error: str | None, statuses: list[S]) -> ControlReply:
        """The control reply carrying ``statuses``."""
        raise NotImplementedError

    def _remove_files(self, name: str) -> None:
        """A unit was removed: delete its per-unit files."""
        self.files.remove_pid(name)

    # --- life of the supervisor --------------------------------------------------------

    def load(self) -> None:
        """Make a unit for every stored definition and adopt the processes still running."""
        for name, definition in sorted(self._load().items()):
            self._units[name] = self._make(name, definition)
        for unit in self._units.values():
            unit.try_adopt()

    def launch(self) -> None:
        """Start every unit's driver (desired ones get started)."""
        for unit in self._units.values():
            unit.launch()

    async def close(self, *, stop_process: bool) -> None:
        """End supervision; stop the processes only if asked (else they are adopted later)."""
        await asyncio.gather(*(u.close(stop_process=stop_process) for u in self._units.values()))

    def statuses(self) -> list[S]:
        """Every unit, by name."""
        return [self._units[n].status() for n in sorted(self._units)]

    def owns_pid(self, pid: int) -> bool:
        """Is ``pid`` the process of one of the units?"""
        return any(u.owns_pid(pid) for u in self._units.values())

    # --- commands ------------------------------------------------------------------------

    def definition_of(self, name: str) -> D | None:
        """The current definition of ``name``, if it is defined."""
        unit = self._units.get(name)
        return unit.definition if unit is not None else None

    async def _apply(self, name: str, definition: D) -> ControlReply:
        """Define or redefine ``name``, then start it (restart when a change needs it)."""
        unit = self._units.get(name)
        if unit is None:
            unit = self._make(name, definition)
            self._units[name] = unit
            unit.launch()
            restart = False
        else:
            running = unit.state in (ProcessState.STARTING, ProcessState.RUNNING)
            restart = unit.redefine(definition) and running
        self._persist()
        result = await (unit.restart() if restart else unit.start())
        self._persist()
        return self._reply(result is None, result, [unit.status()])

    async def _stop(self, name: str, *, remove: bool) -> ControlReply:
        """Stop ``name``; with ``remove``, also forget it once stopped.

        Raises:
            UsageError: No unit ``name``.
        """
        unit = self._units.get(name)
        if unit is None:
            raise UsageError(f"no {self.noun} {name} (see: {self.list_hint})")
        result = await unit.stop()
        status = unit.status()
        if result is None and remove:
            unit.discard()
            del self._units[name]
            self._remove_files(name)
        self._persist()
        return self._reply(result is None, result, [status])

    def _persist(self) -> None:
        stored = {name: unit.stored() for name, unit in self._units.items()}
        try:
            self._save(stored)
        except OSError as err:
            _LOG.error("cannot write %s: %s", self.files.definitions_path, err)
