"""The supervisor process: profiles, readiness socket, control socket, signals, shutdown.

Start-up order is fixed: the caller holds ``supervisor.lock`` (one supervisor per home);
then the desired state is read, every desired or discovered profile gets a unit, running
gateways are adopted (never a second gateway for a profile that serves), the notify socket
and the control socket are bound, the identity file is written, and the drivers start
(spawning desired-but-dead gateways).

Signals only record: SIGTERM/SIGINT set an event the main coroutine waits on. It then shuts
down in a fixed order -- stop accepting commands, stop the gateways only if
``--stop-gateways`` was asked (a second signal skips that wait), close the sockets, remove the
identity file. Gateways otherwise keep serving and the next supervisor adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import metadata
from typing import Any

import msgspec

from openclaw_multi import __version__
from openclaw_multi.errors import UsageError
from openclaw_multi.profiles.atomic import write_file_atomic
from openclaw_multi.profiles.discovery import list_profiles
from openclaw_multi.profiles.lock import process_start_time
from openclaw_multi.profiles.names import display_name, parse_profile_name
from openclaw_multi.profiles.paths import resolve_paths
from openclaw_multi.protocol.control import (
    ControlReply,
    ControlRequest,
    NodeList,
    NodeStart,
    NodeStop,
    Ping,
    ProfileStatus,
    Reset,
    Restart,
    Shutdown,
    Start,
    Status,
    Stop,
    TunnelList,
    TunnelStart,
    TunnelStop,
)

from .control_server import ControlServer
from .desired import load_desired, save_desired
from .home import SupervisorPaths
from .node_hosts import NodeHosts
from .options import SupervisorOptions
from .readiness import NotifyMessage, NotifySocket
from .states import ProcessState
from .tunnels import Tunnels
from .unit import ProfileUnit, UnitContext

__all__ = ["Supervisor", "SupervisorIdentity"]

_LOG = logging.getLogger("openclaw.supervisor")


class SupervisorIdentity(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``supervisor.json``: who runs this home's supervisor.

    Attributes:
        pid: The supervisor's pid.
        start_time: Its process start time (tells a reused pid apart).
        version: The openclaw-multi version it runs.
    """

    pid: int
    start_time: int
    version: str


def _version() -> str:
    try:
        return metadata.version("openclaw-multi")
    except metadata.PackageNotFoundError:
        return __version__


class Supervisor:
    """All profiles of one home, and the sockets through which the world reaches them."""

    def __init__(
        self, paths: SupervisorPaths, options: SupervisorOptions, env: Mapping[str, str]
    ) -> None:
        self.paths = paths
        self.options = options
        self._env = dict(env)
        self._units: dict[str, ProfileUnit] = {}
        self._ctx = UnitContext(
            home=paths.home,
            notify_path=paths.notify_path,
            base_env=self._env,
            policy=options.policy,
            probe_timeout=options.probe_timeout,
            persist=self._persist,
        )
        self._tunnels = Tunnels(
            paths.directory,
            paths.home,
            policy=options.policy,
            probe_timeout=options.probe_timeout,
            base_env=self._env,
        )
        self._nodes = NodeHosts(
            paths.directory,
            paths.home,
            policy=options.policy,
            probe_timeout=options.probe_timeout,
            base_env=self._env,
        )
        self._notify = NotifySocket(paths.notify_path, self._on_notify)
        self._control = ControlServer(paths.socket_path, self._handle, self._after_reply)
        self._exit = asyncio.Event()
        self._force = asyncio.Event()
        self._signals: list[int] = []
        self._closing = False
        self._saved: dict[str, bool] | None = None  # desired.json as last written by us
        self._stop_gateways = options.stop_gateways

    # --- running -------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Serve until a signal or a Shutdown request; return the exit status (0).

        Args:
            on_ready: Called once the control socket listens (the detaching parent waits
                for it).
        """
        loop = asyncio.get_running_loop()
        desired = load_desired(self.paths.desired_path)
        for name in sorted(set(desired) | {p.display_name for p in list_profiles(self.paths.home)}):
            self._unit(name, desired=desired.get(name, False))
        self._notify.open(loop)
        for unit in self._units.values():
            unit.try_adopt()
        self._persist()
        self._tunnels.load()  # and adopts the ssh processes still running
        self._nodes.load()  # and adopts the node hosts still running
        await self._control.start()
        self._write_identity()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        for unit in self._units.values():
            unit.launch()
        self._tunnels.launch()
        self._nodes.launch()
        _LOG.info(
            "supervisor pid %d ready: %d profile(s), socket %s",
            os.getpid(),
            len(self._units),
            self.paths.socket_path,
        )
        if on_ready is not None:
            on_ready()
        try:
            await self._exit.wait()
            if self._signals:
                _LOG.info("signal %d: shutting down", self._signals[0])
            await self._shutdown()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            self._notify.close()
            self._remove_identity()
        _LOG.info("supervisor stopped")
        return 0

    def _on_signal(self, signum: int) -> None:
        # Record only; run() acts. A second signal skips waiting for gateways to stop.
        self._signals.append(signum)
        if self._exit.is_set():
            self._force.set()
        self._exit.set()

    def _after_reply(self, request: ControlRequest) -> None:
        if isinstance(request, Shutdown):
            self._exit.set()

    async def _shutdown(self) -> None:
        self._closing = True
        # No new connections; requests in flight get their answer ("shutting down") from
        # the units closing, and only then are leftover connections dropped.
        self._control.stop_listening()
        stop = self._stop_gateways
        closing: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(
                *(u.close(stop_process=stop) for u in self._units.values()),
                self._tunnels.close(stop_process=stop),
                self._nodes.close(stop_process=stop),
            )
        )
        force: asyncio.Future[Any] = asyncio.ensure_future(self._force.wait())
        await asyncio.wait({closing, force}, return_when=asyncio.FIRST_COMPLETED)
        force.cancel()
        if not closing.done():
            _LOG.warning("second signal: exiting without waiting for gateways to stop")
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closing
        await self._control.close(grace=1.0)

    async def _stop_all_for_shutdown(self) -> None:
        """Stop every gateway (Shutdown with stop_gateways), keeping desired state as it is."""
        self._stop_gateways = True
        await asyncio.gather(
            *(u.close(stop_process=True) for u in self._units.values()),
            self._tunnels.close(stop_process=True),
            self._nodes.close(stop_process=True),
        )

    # --- units ---------------------------------------------------------------------------

    def _unit(self, name: str, *, desired: bool = False) -> ProfileUnit:
        unit = self._units.get(name)
        if unit is None:
            canonical = parse_profile_name(name)
            paths = resolve_paths(canonical, {"HOME": str(self.paths.home)}, explicit=False)
            unit = ProfileUnit(paths, self._ctx, desired=desired)
            self._units[name] = unit
        return unit

    def _known(self) -> list[ProfileUnit]:
        """Every profile: managed ones plus any configured on disk since (created STOPPED).

        A unit whose profile was removed from disk (``profiles rm``) and that has nothing to
        do is forgotten, so it does not linger in listings.
        """
        for name, unit in list(self._units.items()):
            if unit.idle and not unit.paths.state_dir.exists():
                unit.discard()
                del self._units[name]
        for paths in list_profiles(self.paths.home):
            if paths.display_name not in self._units:
                unit = self._unit(paths.display_name)
                if not self._closing:
                    unit.launch()
        return [self._units[n] for n in sorted(self._units)]

    def _persist(self) -> None:
        desired: dict[str, bool] = {n: True for n, unit in self._units.items() if unit.desired}
        if desired == self._saved:
            return
        try:
            save_desired(self.paths.desired_path, desired)
        except OSError as err:
            # Left unsaved: the next command tries again (a full disk must not lose it).
            _LOG.error("cannot write %s: %s", self.paths.desired_path, err)
            return
        self._saved = desired

    def _on_notify(self, message: NotifyMessage) -> None:
        pid = message.pid
        if pid is None:
            main = message.fields.get("MAINPID", "")
            pid = int(main) if main.isdigit() else None
        for unit in self._units.values():
            if pid is not None and unit.owns_pid(pid):
                unit.on_notify(message)
                return
        _LOG.debug("notify from unknown pid %s: %s", pid, message.fields)

    # --- identity ------------------------------------------------------------------------

    def _write_identity(self) -> None:
        pid = os.getpid()
        identity = SupervisorIdentity(
            pid=pid, start_time=process_start_time(pid) or 0, version=_version()
        )
        write_file_atomic(self.paths.identity_path, msgspec.json.encode(identity), 0o600)

    def _remove_identity(self) -> None:
        try:
            raw = self.paths.identity_path.read_bytes()
            if msgspec.json.decode(raw, type=SupervisorIdentity).pid == os.getpid():
                self.paths.identity_path.unlink()
        except (OSError, msgspec.DecodeError):
            pass

    # --- commands ------------------------------------------------------------------------

    async def _handle(self, request: ControlRequest) -> ControlReply:
        try:
            return await self._dispatch(request)
        except UsageError as err:
            return ControlReply(ok=False, error=str(err))
        except Exception as err:  # one bad request must not take the supervisor down
            _LOG.exception("control request %r failed", request)
            return ControlReply(ok=False, error=f"internal error: {type(err).__name__}: {err}")

    async def _dispatch(self, request: ControlRequest) -> ControlReply:
        if isinstance(request, Ping):
            return ControlReply(ok=True)
        if isinstance(request, Status):
            return ControlReply(
                ok=True,
                profiles=[u.status() for u in self._known()],
                tunnels=self._tunnels.statuses(),
                nodes=self._nodes.statuses(),
            )
        if isinstance(request, TunnelList):
            return await self._tunnels.handle(request)
        if isinstance(request, NodeList):
            return await self._nodes.handle(request)
        if isinstance(request, Shutdown):
            self._closing = True
            self._control.stop_listening()
            if request.stop_gateways:
                await self._stop_all_for_shutdown()
            return ControlReply(ok=True)
        if self._closing:
            return ControlReply(ok=False, error="the supervisor is shutting down")
        if isinstance(request, Reset):
            units = self._targets(request.profiles, False)
            return await self._each(units, lambda u: u.reset())
        if isinstance(request, Start):
            units = self._targets(request.profiles, request.all)
            return await self._each(units, lambda u: u.start())
        if isinstance(request, Stop):
            units = self._targets(request.profiles, request.all, running_only=True)
            return await self._each(units, lambda u: u.stop())
        if isinstance(request, Restart):
            units = self._targets(request.profiles, request.all)
            return await self._each(units, lambda u: u.restart())
        if isinstance(request, TunnelStart | TunnelStop):
            return await self._tunnels.handle(request)
        if isinstance(request, NodeStart | NodeStop):
            return await self._nodes.handle(request)
        return ControlReply(ok=False, error=f"unsupported request {type(request).__name__}")

    def _targets(
        self, names: list[str], all_: bool, *, running_only: bool = False
    ) -> list[ProfileUnit]:
        if all_:
            known = self._known()
            if running_only:
                return [u for u in known if u.desired or u.state is not ProcessState.STOPPED]
            return known
        units: list[ProfileUnit] = []
        for raw in names:
            name = display_name(parse_profile_name(raw))  # UsageError: refused as a whole
            unit = self._unit(name)
            unit.launch()
            if unit not in units:
                units.append(unit)
        return units

    async def _each(
        self,
        units: list[ProfileUnit],
        command: Callable[[ProfileUnit], Awaitable[str | None]],
    ) -> ControlReply:
        started = time.monotonic()
        results = await asyncio.gather(*(command(u) for u in units))
        errors = [r for r in results if r is not None]
        statuses: list[ProfileStatus] = [u.status() for u in units]
        _LOG.info(
            "command on %s: %s in %.3fs",
            ", ".join(u.name for u in units) or "no profile",
            "; ".join(errors) or "ok",
            time.monotonic() - started,
        )
        if errors:
            return ControlReply(ok=False, error="; ".join(errors), profiles=statuses)
        return ControlReply(ok=True, profiles=statuses)
