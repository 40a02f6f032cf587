"""The rows of ``openclaw profiles list``: every profile on the host, with live probes.

Theory of operation. One row per profile known on the host: every state dir under home
(configured) plus every profile the supervisor reports (running or desired). Each column
comes from the cheapest source that is right:

=============  ===========================================================================
column         source
=============  ===========================================================================
state          the supervisor's state when it runs; else RUNNING if the identity file
               names a live process (pid + start time), else STOPPED
desired        the supervisor's desired state (null when the supervisor is down)
health         HTTP ``GET /readyz`` on the gateway's port: ok (200, ready), degraded
               (answered but not ready, or slower than ``SLOW_PROBE_MS``), down (no
               process, refused, timed out)
latencyMs      wall time of that probe
pid, version   the identity file the gateway writes beside its lock (supervisor pid first)
port           the identity file; for a stopped profile, ``gateway.port`` or derived
bind           the profile's config (``gateway.bind``)
uptimeS, rss   psutil on the pid (process create time, resident set size)
clients        the same ``/readyz`` answer: authenticated WebSocket clients (operators
               and nodes) the gateway counts
restarts,      the supervisor (null when it is down)
lastExit,
lastError
owner          ``systemd`` or ``launchd`` when a service definition is installed for the
               profile (profiles/service_files.py); else ``supervisor`` when the supervisor
               wants it up or holds its gateway (or, while it is down, desired.json says
               so); else ``none``
=============  ===========================================================================

All probes run concurrently on one event loop, each bounded by ``timeout``, so the listing
costs about one probe whatever the number of profiles; nothing here opens a WebSocket or
reads a secret.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psutil

from openclaw_multi import runtime
from openclaw_multi.errors import ConfigError, OpenClawError, UsageError
from openclaw_multi.profiles.config import load_config
from openclaw_multi.profiles.discovery import list_profiles
from openclaw_multi.profiles.lock import Identity, identity_is_live, read_identity
from openclaw_multi.profiles.names import parse_profile_name
from openclaw_multi.profiles.paths import ProfilePaths, resolve_paths
from openclaw_multi.profiles.ports import derived_port, resolve_port
from openclaw_multi.profiles.service_files import ServiceDefinition, find_gateway_services
from openclaw_multi.protocol.control import ProfileStatus

from .http_probe import probe_http

__all__ = [
    "HEALTH_DEGRADED",
    "HEALTH_DOWN",
    "HEALTH_OK",
    "SLOW_PROBE_MS",
    "Listing",
    "ProfileRow",
    "collect_rows",
    "row_is_unhealthy",
]

HEALTH_OK = "ok"
HEALTH_DEGRADED = "degraded"
HEALTH_DOWN = "down"

SLOW_PROBE_MS = 250.0
"""A ready answer slower than this is ``degraded``: the gateway serves, but struggles."""

DEFAULT_PROBE_TIMEOUT_S = 1.0

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


class ProfileRow(msgspec.Struct, kw_only=True, rename="camel"):
    """One profile in ``openclaw profiles list --json`` (documented in docs/profiles.md).

    Every key is always present (null when unknown). No secret is ever part of a row.
    """

    name: str
    state: str
    desired: bool | None
    supervised: bool
    owner: str
    should_run: bool
    health: str
    latency_ms: float | None
    pid: int | None
    port: int | None
    bind: str | None
    uptime_s: float | None
    restarts: int | None
    last_exit: int | None
    last_error: str | None
    clients: int | None
    rss_bytes: int | None
    version: str | None
    state_dir: str


@dataclass
class Listing:
    """What :func:`collect_rows` found, and how long its phases took (for benchmarks)."""

    rows: list[ProfileRow]
    supervisor_running: bool
    probe_seconds: float
    collect_seconds: float


@dataclass
class _Draft:
    paths: ProfilePaths
    status: ProfileStatus | None
    identity: Identity | None
    pid: int | None
    port: int | None
    host: str
    bind: str | None
    config_error: str | None
    services: list[ServiceDefinition] = field(default_factory=list)


def row_is_unhealthy(row: ProfileRow) -> bool:
    """True when a profile that should run (desired, or running) is not ``ok``."""
    return row.should_run and row.health != HEALTH_OK


def _paths_for(display: str, home: Path) -> ProfilePaths | None:
    try:
        name = parse_profile_name(display)
    except UsageError:
        return None
    return resolve_paths(name, {"HOME": str(home)}, explicit=False)


def _draft(
    paths: ProfilePaths, status: ProfileStatus | None, env: Mapping[str, str] | None = None
) -> _Draft:
    identity = read_identity(paths.identity_path)
    if identity is not None and not identity_is_live(identity):
        identity = None
    bind: str | None = None
    config_port: int | None = None
    config_error: str | None = None
    try:
        config = load_config(paths.config_path)
        bind = config.gateway.bind
        config_port = resolve_port(paths.name, config_port=config.gateway.port)
    except ConfigError as err:
        config_error = str(err)
    pid = status.pid if status is not None and status.pid is not None else None
    if pid is None and identity is not None:
        pid = identity.pid
    port: int | None
    if identity is not None:
        port = identity.port
    elif status is not None and status.port is not None:
        port = status.port
    else:
        port = config_port if config_port is not None else derived_port(paths.name)
    host = identity.host if identity is not None else "127.0.0.1"
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1" if host != "::" else "::1"
    services = find_gateway_services(paths, os.environ if env is None else env)
    return _Draft(paths, status, identity, pid, port, host, bind, config_error, services)


@dataclass(frozen=True)
class _Probe:
    """One ``/readyz`` answer: HTTP status (None: no answer), latency, clients it counts."""

    status: int | None
    latency_ms: float
    clients: int | None = None


async def _probe_one(host: str, port: int, tls: str | None, timeout: float) -> _Probe:
    started = time.perf_counter()
    try:
        status, body = await asyncio.wait_for(
            probe_http(host, port, "/readyz", timeout=timeout, tls_fingerprint=tls), timeout
        )
    except (OpenClawError, OSError, TimeoutError, ValueError):
        return _Probe(None, (time.perf_counter() - started) * 1000.0)
    return _Probe(status, (time.perf_counter() - started) * 1000.0, _client_count(body))


def _client_count(body: dict[str, Any]) -> int | None:
    counts = body.get("connections")
    if not isinstance(counts, dict):
        return None
    clients = [counts.get("operators"), counts.get("nodes")]
    return sum(c for c in clients if isinstance(c, int))


async def _probe_all(
    targets: Sequence[tuple[str, int, str | None] | None], timeout: float
) -> list[_Probe | None]:
    async def one(target: tuple[str, int, str | None] | None) -> _Probe | None:
        if target is None:
            return None
        return await _probe_one(target[0], target[1], target[2], timeout)

    return list(await asyncio.gather(*(one(t) for t in targets)))


def _process_facts(pid: int) -> tuple[float | None, int | None]:
    """(uptime seconds, RSS bytes) of a live pid."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return max(0.0, time.time() - proc.create_time()), int(proc.memory_info().rss)
    except (psutil.Error, OSError):
        return None, None


def _health(probe: _Probe | None) -> tuple[str, float | None]:
    if probe is None or probe.status is None:
        return HEALTH_DOWN, None
    status, latency = probe.status, probe.latency_ms
    if status != 200:
        return HEALTH_DEGRADED, round(latency, 1)
    if latency > SLOW_PROBE_MS:
        return HEALTH_DEGRADED, round(latency, 1)
    return HEALTH_OK, round(latency, 1)


def _owner(draft: _Draft, desired_on_disk: Collection[str]) -> str:
    if draft.services:
        return draft.services[0].kind
    status = draft.status
    if status is not None and (status.desired or status.pid is not None):
        return "supervisor"
    if status is None and draft.paths.display_name in desired_on_disk:
        return "supervisor"
    return "none"


def _row(draft: _Draft, probe: _Probe | None, desired_on_disk: Collection[str] = ()) -> ProfileRow:
    status = draft.status
    desired = status.desired if status is not None else None
    # A gateway the supervisor does not hold (started by hand with `openclaw gateway run`)
    # still runs: its identity file says so, whatever the supervisor's row says.
    unsupervised = draft.identity is not None and (status is None or status.pid is None)
    if status is not None and not unsupervised:
        state = status.state
    else:
        state = "RUNNING" if draft.identity is not None else "STOPPED"
    if status is not None and not unsupervised:
        should_run = status.desired
    else:
        should_run = draft.identity is not None
    health, latency = _health(probe)
    uptime = rss = None
    if draft.pid is not None:
        uptime, rss = _process_facts(draft.pid)
        if uptime is not None:
            uptime = round(uptime, 1)
    clients = probe.clients if probe is not None else None
    last_error = status.last_error if status is not None else None
    if draft.config_error is not None and last_error is None:
        last_error = draft.config_error
    return ProfileRow(
        name=draft.paths.display_name,
        state=state,
        desired=desired,
        supervised=status is not None and not unsupervised,
        owner=_owner(draft, desired_on_disk),
        should_run=should_run,
        health=health,
        latency_ms=latency,
        pid=draft.pid,
        port=draft.port,
        bind=draft.bind,
        uptime_s=uptime,
        restarts=status.restarts if status is not None else None,
        last_exit=status.last_exit if status is not None else None,
        last_error=last_error,
        clients=clients,
        rss_bytes=rss,
        version=draft.identity.version if draft.identity is not None else None,
        state_dir=str(draft.paths.state_dir),
    )


def collect_rows(
    home: Path,
    supervisor: Sequence[ProfileStatus] | None,
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    desired_on_disk: Collection[str] = (),
) -> Listing:
    """Gather one row per profile, probing every running gateway concurrently.

    Args:
        home: The home directory the profiles live under.
        supervisor: The supervisor's ``status`` reply, or None when it is not running
            (rows then come from identity files and probes alone).
        timeout: Bound of each probe, in seconds.
        env: Where service definitions are looked for (default ``os.environ``).
        desired_on_disk: Profiles ``desired.json`` wants up (for ``owner`` while the
            supervisor is down).

    Returns:
        Rows sorted by name, and the phase timings.
    """
    started = time.perf_counter()
    statuses = {s.name: s for s in supervisor or ()}
    drafts: dict[str, _Draft] = {}
    for paths in list_profiles(home):
        drafts[paths.display_name] = _draft(paths, statuses.get(paths.display_name), env)
    for name, status in statuses.items():
        if name not in drafts:
            found = _paths_for(name, home)
            if found is not None:
                drafts[name] = _draft(found, status, env)
    ordered = [drafts[name] for name in sorted(drafts)]
    # A TLS gateway records its certificate's fingerprint in its identity file: the probe
    # then speaks HTTPS to it, pinned to that certificate.
    targets: list[tuple[str, int, str | None] | None] = [
        (d.host, d.port, d.identity.tls_fingerprint if d.identity is not None else None)
        if d.pid is not None and d.port is not None
        else None
        for d in ordered
    ]
    probe_started = time.perf_counter()
    probes: list[_Probe | None] = (
        runtime.run(_probe_all(targets, timeout)) if any(targets) else [None] * len(targets)
    )
    probe_seconds = time.perf_counter() - probe_started
    rows = [_row(d, p, desired_on_disk) for d, p in zip(ordered, probes, strict=True)]
    return Listing(
        rows=rows,
        supervisor_running=supervisor is not None,
        probe_seconds=probe_seconds,
        collect_seconds=time.perf_counter() - started,
    )


def rows_to_builtins(rows: Sequence[ProfileRow]) -> list[dict[str, Any]]:
    """Rows as plain JSON-ready dicts (camelCase keys, every key present)."""
    result: list[dict[str, Any]] = msgspec.to_builtins(list(rows))
    return result
