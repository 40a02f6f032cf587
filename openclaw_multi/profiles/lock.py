"""One gateway per profile: the kernel lock, the identity file beside it, and port holders.

Theory of operation. The gateway holds an exclusive kernel lock (``flock``; ``filelock``
where there is no ``fcntl``) on ``<realpath(state_dir)>/gateway.lock`` for its whole life;
the kernel drops it when the process dies, however it dies. The lock file's content means
nothing. What the holder is goes in a separate identity file, written atomically: pid,
process start time, port, paths, version. A pid alone is not an identity (pids are reused),
so "is it still running" is always "pid exists and has the recorded start time", and
nothing is signalled unless its command line also mentions ``openclaw``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import msgspec

from openclaw_multi.errors import LockHeldError

from .atomic import write_file_atomic
from .paths import ProfilePaths

__all__ = [
    "Identity",
    "ProfileLock",
    "find_port_holder",
    "identity_is_live",
    "identity_matches_process",
    "port_in_use_message",
    "process_start_time",
    "read_identity",
    "write_identity",
]

_COMMAND_MAX = 120


# --- process identity ------------------------------------------------------------------


def _parse_proc_stat(raw: str) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from the text of /proc/<pid>/stat."""
    # comm (field 2) is in parentheses and may itself hold spaces and ")"; the last ")"
    # ends it. Fields after it start at field 3, so field 22 is index 19 (proc(5)).
    rest = raw[raw.rfind(")") + 1 :].split()
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """:func:`_parse_proc_stat` of a live pid, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return _parse_proc_stat(raw)


_HAVE_PROC = os.path.isdir("/proc/self") and _proc_stat(os.getpid()) is not None


def process_start_time(pid: int) -> int | None:
    """A process's start time, which together with its pid identifies it.

    Args:
        pid: The process id.

    Returns:
        On Linux, field 22 of ``/proc/<pid>/stat`` (clock ticks since boot); elsewhere
        ``psutil.Process(pid).create_time()`` in hundredths of a second. None if there is
        no such process (or it cannot be inspected).
    """
    if pid <= 0:
        return None
    if _HAVE_PROC:
        stat = _proc_stat(pid)
        return None if stat is None else stat[1]
    import psutil  # only off Linux: keeps the gateway's start-up import-light

    try:
        created: float = psutil.Process(pid).create_time()
        return round(created * 100)
    except (psutil.Error, OSError):
        return None


def _is_zombie(pid: int) -> bool:
    # A zombie keeps its pid and start time but holds no lock and no socket.
    if _HAVE_PROC:
        stat = _proc_stat(pid)
        return stat is not None and stat[0] == "Z"
    import psutil

    try:
        status: str = psutil.Process(pid).status()
        return status == str(psutil.STATUS_ZOMBIE)
    except (psutil.Error, OSError):
        return False


def _cmdline(pid: int) -> list[str] | None:
    if _HAVE_PROC:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]
    import psutil

    try:
        argv: list[str] = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return None
    return argv


class Identity(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Who holds a profile's lock: written by the gateway beside the lock file.

    Attributes:
        pid: The gateway's process id.
        start_time: Its :func:`process_start_time` (tells a reused pid apart).
        port: The port it serves.
        host: The address it binds.
        config_path: The config file it loaded.
        state_dir: Its state dir, resolved through symlinks.
        created_at: When it took the lock (unix seconds, for display only).
        version: The openclaw-multi version it runs.
        profile: Its profile name (None for the default profile).
        tls_fingerprint: SHA-256 of the certificate it serves (hex) when the port speaks
            TLS (``gateway.tls``), else None: how probes know to speak TLS, and what to pin.
    """

    pid: int
    start_time: int
    port: int
    host: str
    config_path: str
    state_dir: str
    created_at: float
    version: str
    profile: str | None = None
    tls_fingerprint: str | None = None


_identity_decoder = msgspec.json.Decoder(Identity)
_identity_encoder = msgspec.json.Encoder()


def read_identity(path: Path) -> Identity | None:
    """Read an identity file. Never raises.

    Args:
        path: The identity file.

    Returns:
        The identity, or None if the file is missing, unreadable, truncated or corrupt
        (a reader must treat all of those as "no known holder").
    """
    try:
        return _identity_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def write_identity(path: Path, identity: Identity) -> None:
    """Write an identity file atomically, mode 0600.

    Args:
        path: The identity file (its directory must exist).
        identity: What to record.
    """
    write_file_atomic(path, _identity_encoder.encode(identity), 0o600)


def identity_is_live(identity: Identity) -> bool:
    """Tell whether the recorded process still runs: same pid and same start time.

    Args:
        identity: A recorded identity.

    Returns:
        False for a dead pid, a zombie, or a pid reused by another process.
    """
    start = process_start_time(identity.pid)
    return start is not None and start == identity.start_time and not _is_zombie(identity.pid)


def identity_matches_process(identity: Identity) -> bool:
    """The check before ever signalling ``identity.pid``.

    Args:
        identity: A recorded identity.

    Returns:
        True only if :func:`identity_is_live` and the process's command line mentions
        ``openclaw``.
    """
    if not identity_is_live(identity):
        return False
    argv = _cmdline(identity.pid)
    return argv is not None and "openclaw" in " ".join(argv).lower()


# --- the lock --------------------------------------------------------------------------


def _package_version() -> str:
    from openclaw_multi import __version__

    return __version__


class _KernelLock:
    """A non-blocking exclusive lock the kernel releases when the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._fallback: object | None = None

    def try_acquire(self) -> bool:
        if sys.platform == "win32":  # no fcntl: filelock's msvcrt lock
            import filelock

            lock = filelock.FileLock(str(self._path), timeout=0, mode=0o600, thread_local=False)
            try:
                lock.acquire()
            except filelock.Timeout:
                return False
            self._fallback = lock
            return True
        import fcntl

        # os.open fds are not inherited by children (PEP 446): a gateway's subprocesses
        # must not keep its profile locked after it dies.
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._fallback is not None:
            import filelock

            assert isinstance(self._fallback, filelock.FileLock)
            self._fallback.release()
            self._fallback = None


class ProfileLock:
    """The exclusive right to run a profile's gateway on this host.

    Usage::

        with ProfileLock(paths) as lock:   # raises LockHeldError if another gateway runs
            lock.publish(port, host)       # after binding: tell the world who we are
            serve()
    """

    def __init__(self, paths: ProfilePaths) -> None:
        """Prepare (but do not take) the lock of one profile.

        Args:
            paths: The profile's paths.
        """
        self.paths = paths
        self._kernel: _KernelLock | None = None
        self._identity: Identity | None = None
        self._canonical_dir: Path | None = None

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release`."""
        return self._kernel is not None

    @property
    def identity(self) -> Identity | None:
        """What :meth:`publish` recorded, if it ran."""
        return self._identity

    def _held_error(self, identity: Identity | None) -> LockHeldError:
        if identity is None:
            detail = "pid unknown, port unknown"
        else:
            detail = f"pid {identity.pid}, port {identity.port}"
        return LockHeldError(
            f"gateway already running for profile {self.paths.display_name} ({detail})"
        )

    def acquire(self) -> None:
        """Take the lock, or fail fast.

        Creates the state dir (0700) if needed. Stale state (holder dead, or its pid now
        belongs to another process) is reclaimed silently.

        Raises:
            LockHeldError: Another process holds the kernel lock, or the identity file
                names a live process other than this one (a holder that does not use the
                kernel lock, e.g. on another host sharing the directory).
            OSError: The state dir cannot be created or the lock file opened.
        """
        if self._kernel is not None:
            return
        self.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Lock the canonical dir so two names for one directory are one profile.
        canonical = Path(os.path.realpath(self.paths.state_dir))
        kernel = _KernelLock(canonical / self.paths.lock_path.name)
        identity_path = canonical / self.paths.identity_path.name
        if not kernel.try_acquire():
            found = read_identity(identity_path)
            # A holder between acquire and publish may leave an older, dead identity.
            raise self._held_error(found if found and identity_is_live(found) else None)
        found = read_identity(identity_path)
        if found is not None and found.pid != os.getpid() and identity_is_live(found):
            kernel.release()
            raise self._held_error(found)
        if found is not None:
            # Stale: remove it so nobody reads a dead gateway's port as current.
            with contextlib.suppress(OSError):
                identity_path.unlink()
        self._kernel = kernel
        self._canonical_dir = canonical

    def publish(
        self,
        port: int,
        host: str,
        config_path: Path | str | None = None,
        version: str | None = None,
        tls_fingerprint: str | None = None,
    ) -> Identity:
        """Record this process as the holder (call once the port is bound).

        Args:
            port: The port served.
            host: The address bound.
            config_path: The config loaded (defaults to the profile's config path).
            version: The running version (defaults to the installed package's).
            tls_fingerprint: The served certificate's SHA-256 (hex), when serving TLS.

        Returns:
            The identity written.

        Raises:
            RuntimeError: The lock is not held.
        """
        if self._kernel is None or self._canonical_dir is None:
            raise RuntimeError("ProfileLock.publish() before acquire()")
        pid = os.getpid()
        identity = Identity(
            pid=pid,
            start_time=process_start_time(pid) or 0,
            port=port,
            host=host,
            config_path=str(config_path if config_path is not None else self.paths.config_path),
            state_dir=str(self._canonical_dir),
            created_at=time.time(),
            version=version if version is not None else _package_version(),
            profile=self.paths.name,
            tls_fingerprint=tls_fingerprint,
        )
        write_identity(self._canonical_dir / self.paths.identity_path.name, identity)
        self._identity = identity
        return identity

    def release(self) -> None:
        """Remove the identity file if it is ours, then drop the lock. Idempotent."""
        if self._kernel is None or self._canonical_dir is None:
            return
        identity_path = self._canonical_dir / self.paths.identity_path.name
        found = read_identity(identity_path)
        mine = self._identity
        if found is not None and mine is not None and found == mine:
            with contextlib.suppress(OSError):
                identity_path.unlink()
        self._kernel.release()
        self._kernel = None
        self._identity = None

    def __enter__(self) -> ProfileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# --- port holders ----------------------------------------------------------------------


def _short_command(pid: int) -> str:
    argv = _cmdline(pid)
    # One line whatever the argv holds (`python -c "...\n..."`): it goes into one-line errors.
    command = " ".join(" ".join(argv).split()) if argv else ""
    if not command:
        import psutil

        try:
            command = psutil.Process(pid).name()
        except (psutil.Error, OSError):
            command = "unknown command"
    if len(command) > _COMMAND_MAX:
        command = command[: _COMMAND_MAX - 3] + "..."
    return command


def find_port_holder(port: int) -> tuple[int, str] | None:
    """Find the process listening on a TCP port.

    Args:
        port: The port.

    Returns:
        ``(pid, command)`` with the command line joined and cut to ~120 chars, or None
        if nothing listens there or the system will not say (e.g. macOS without root).
    """
    import psutil  # needed only on the (rare) port-conflict path

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or conn.pid is None:
            continue
        if conn.laddr and conn.laddr.port == port:
            return conn.pid, _short_command(conn.pid)
    return None


def port_in_use_message(
    port: int,
    holder: tuple[int, str] | None,
    profiles_by_port: Mapping[int, str] | None = None,
) -> str:
    """The one-line message for a port that is taken.

    Args:
        port: The port we wanted.
        holder: From :func:`find_port_holder`, or None if unknown.
        profiles_by_port: Base ports of running gateways mapped to their profiles' display
            names, to say when the holder is another profile's gateway.

    Returns:
        ``port <p> is already in use by pid <pid> (<command>)``, plus
        ``; that is the gateway of profile <name>`` when it is one.
    """
    if holder is None:
        message = f"port {port} is already in use (pid unknown)"
    else:
        pid, command = holder
        message = f"port {port} is already in use by pid {pid} ({command})"
    owner = (profiles_by_port or {}).get(port)
    if owner is not None:
        message += f"; that is the gateway of profile {owner}"
    return message
