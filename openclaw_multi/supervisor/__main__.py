"""``python -m openclaw_multi.supervisor [--foreground] [--stop-gateways]``.

Without ``--foreground`` the program detaches: it forks, the child starts a new session and
runs the supervisor, and the parent exits 0 only once the child's control socket listens
(or the child found another supervisor), so whoever started it can talk to it at once.

Exit status: 0 when serving ended normally or another supervisor already holds this home's
lock (nothing to do); 1 when the supervisor could not start; 78 for bad options.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Final

from openclaw_multi import runtime
from openclaw_multi.errors import ConfigError, OpenClawError
from openclaw_multi.profiles.logfile import setup_log_file

from .daemon import Supervisor
from .home import SupervisorPaths, home_from_env, supervisor_paths
from .options import SupervisorOptions, parse_options

EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 78
_DETACH_TIMEOUT_S: Final = 30.0
_READY: Final = b"R"
_ALREADY: Final = b"A"


def take_lock(paths: SupervisorPaths) -> int | None:
    """Take ``supervisor.lock`` without blocking.

    Returns:
        The fd holding the lock (keep it open for the process's life), or None if another
        supervisor of this home holds it.
    """
    fd = os.open(paths.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def setup_logging(paths: SupervisorPaths, *, to_stderr: bool) -> None:
    """Log to ``supervisor.log`` (rotated, 0600), and to stderr when it is not that same file."""
    setup_log_file(paths.log_path, to_stderr=to_stderr and not _stderr_is(paths))


def _stderr_is(paths: SupervisorPaths) -> bool:
    try:
        err, log = os.fstat(2), os.stat(paths.log_path)
    except OSError:
        return False
    return (err.st_dev, err.st_ino) == (log.st_dev, log.st_ino)


def serve(
    paths: SupervisorPaths, options: SupervisorOptions, notify: Callable[[bytes], None]
) -> int:
    """Take the lock and run the supervisor; ``notify`` hears READY or ALREADY."""
    lock_fd = take_lock(paths)
    if lock_fd is None:
        notify(_ALREADY)
        return 0
    try:
        setup_logging(paths, to_stderr=options.foreground)
        supervisor = Supervisor(paths, options, os.environ)
        return runtime.run(supervisor.run(on_ready=lambda: notify(_READY)))
    finally:
        os.close(lock_fd)


def _detach(paths: SupervisorPaths, options: SupervisorOptions) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:  # the parent: wait for the child's word, then leave it running
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], _DETACH_TIMEOUT_S)
        word = os.read(read_end, 1) if ready else b""
        os.close(read_end)
        if word in (_READY, _ALREADY):
            return 0
        print(
            f"error: the supervisor did not start; see {paths.log_path}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    # The child: its own session (no terminal signals), stdio away from the caller's pipes.
    os.close(read_end)
    os.setsid()
    os.chdir(paths.directory)
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(paths.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)

    def notify(word: bytes) -> None:
        nonlocal write_end
        if write_end >= 0:
            os.write(write_end, word)
            os.close(write_end)
            write_end = -1

    code = EXIT_FAILURE
    try:
        code = serve(paths, options, notify)
    except BaseException:
        logging.getLogger("openclaw.supervisor").exception("supervisor crashed")
        raise
    finally:
        os._exit(code)  # never return into the parent's code path


def _notify_service_manager(word: bytes) -> None:
    """In the foreground under systemd (``Type=notify``): ``READY=1`` once the socket listens."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if word != _READY or not address:
        return
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(f"READY=1\nMAINPID={os.getpid()}".encode())
    except OSError:
        pass  # readiness is a courtesy to the service manager; serving is the job


def main(argv: Sequence[str] | None = None) -> int:
    """Run the supervisor program; return its exit status."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv, os.environ)
        paths = supervisor_paths(home_from_env(os.environ))
        paths.ensure_directory()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except OpenClawError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if not options.foreground:
        return _detach(paths, options)
    try:
        return serve(paths, options, _notify_service_manager)
    except OpenClawError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
