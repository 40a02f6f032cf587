"""The profile lock, identity file and port holders, with real processes.

Synchronisation is by pipes (a child prints a line when ready and blocks on stdin), never
by sleeping. Every process killed here is one this file started, by its pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_multi.errors import LockHeldError
from openclaw_multi.profiles.lock import (
    Identity,
    ProfileLock,
    _parse_proc_stat,
    find_port_holder,
    identity_is_live,
    identity_matches_process,
    port_in_use_message,
    process_start_time,
    read_identity,
    write_identity,
)
from openclaw_multi.profiles.paths import ProfilePaths

REPO = Path(__file__).resolve().parents[2]

# argv: state_dir, profile name ("" = default), port. Prints READY once it holds the lock
# and has published, then blocks until stdin closes; on a conflict prints the message.
HOLDER = """
import sys
from pathlib import Path
from openclaw_multi.errors import LockHeldError
from openclaw_multi.profiles.lock import ProfileLock
from openclaw_multi.profiles.paths import ProfilePaths
state = Path(sys.argv[1])
paths = ProfilePaths(sys.argv[2] or None, state.parent, state, state / "openclaw.json")
lock = ProfileLock(paths)
try:
    lock.acquire()
except LockHeldError as err:
    print(err, flush=True)
    sys.exit(78)
lock.publish(int(sys.argv[3]), "127.0.0.1", version="test")
print("READY", flush=True)
sys.stdin.read()
lock.release()
"""

LISTENER = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def _paths(state_dir: Path, name: str | None = "work") -> ProfilePaths:
    return ProfilePaths(name, state_dir.parent, state_dir, state_dir / "openclaw.json")


def _contend(
    state_dir: Path, name: str = "work", port: int = 1
) -> subprocess.CompletedProcess[str]:
    """Run a second gateway's lock attempt in its own process."""
    return subprocess.run(
        [sys.executable, "-c", HOLDER, str(state_dir), name, str(port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; each is killed (by its own pid) and reaped afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _start(spawn: list[subprocess.Popen[str]], argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    spawn.append(proc)
    return proc


def _identity_for(pid: int, start_time: int, port: int = 30500) -> Identity:
    return Identity(
        pid=pid,
        start_time=start_time,
        port=port,
        host="127.0.0.1",
        config_path="/x/openclaw.json",
        state_dir="/x",
        created_at=0.0,
        version="test",
        profile="work",
    )


# --- pure bits -------------------------------------------------------------------------


def test_parse_proc_stat_survives_odd_comm() -> None:
    fields = " ".join(["S"] + [str(n) for n in range(4, 23)])  # fields 3..22
    assert _parse_proc_stat(f"42 (a) b (c)) {fields} 99 100") == ("S", 22)
    assert _parse_proc_stat("42 (sleep) S 1 2") is None
    assert _parse_proc_stat("") is None


def test_port_in_use_message() -> None:
    holder = (4242, "python -m openclaw_multi.gateway --profile work")
    assert port_in_use_message(30000, holder) == (
        "port 30000 is already in use by pid 4242 (python -m openclaw_multi.gateway --profile work)"
    )
    assert port_in_use_message(30000, holder, {30000: "work", 30100: "rescue"}) == (
        "port 30000 is already in use by pid 4242 "
        "(python -m openclaw_multi.gateway --profile work); that is the gateway of profile work"
    )
    assert port_in_use_message(30000, holder, {30100: "rescue"}).endswith("--profile work)")
    assert port_in_use_message(30000, None) == "port 30000 is already in use (pid unknown)"


# --- process identity ------------------------------------------------------------------


def test_process_start_time() -> None:
    mine = process_start_time(os.getpid())
    assert isinstance(mine, int) and mine > 0
    assert process_start_time(os.getpid()) == mine  # stable
    assert process_start_time(0) is None
    assert process_start_time(-1) is None
    assert process_start_time(2**22 + 1) is None  # above any Linux pid_max


def test_identity_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "gateway.identity.json"
    ident = _identity_for(os.getpid(), 5)
    write_identity(path, ident)
    assert read_identity(path) == ident
    assert (path.stat().st_mode & 0o777) == 0o600
    assert b'"startTime":5' in path.read_bytes()
    full = path.read_bytes()
    for bad in [full[: len(full) // 2], b"", b"{}", b"not json", b'{"pid": "x"}', b"\xff"]:
        path.write_bytes(bad)
        assert read_identity(path) is None
    assert read_identity(tmp_path / "missing.json") is None
    assert read_identity(tmp_path) is None  # a directory


@pytest.mark.e2e
def test_identity_liveness_and_command_check(spawn: list[subprocess.Popen[str]]) -> None:
    # The argv mentions openclaw, so this is what a gateway looks like to the check.
    proc = _start(
        spawn,
        [sys.executable, "-c", "import sys; print(1, flush=True); sys.stdin.read()", "openclaw"],
    )
    assert proc.stdout is not None and proc.stdout.readline() == "1\n"
    start = process_start_time(proc.pid)
    assert start is not None
    ident = _identity_for(proc.pid, start)
    assert identity_is_live(ident)
    assert identity_matches_process(ident)
    reused = _identity_for(proc.pid, start + 1)  # same pid, another process's start time
    assert not identity_is_live(reused)
    assert not identity_matches_process(reused)

    sleeper = _start(spawn, ["sleep", "30"])
    sleeper_start = process_start_time(sleeper.pid)
    assert sleeper_start is not None
    unrelated = _identity_for(sleeper.pid, sleeper_start)
    assert identity_is_live(unrelated)
    assert not identity_matches_process(unrelated)  # live, but not an openclaw process

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not identity_is_live(ident)


# --- the lock --------------------------------------------------------------------------


def test_acquire_publish_release(tmp_path: Path) -> None:
    paths = _paths(tmp_path / ".openclaw-work")
    with ProfileLock(paths) as lock:
        assert lock.held
        assert (paths.state_dir.stat().st_mode & 0o777) == 0o700
        ident = lock.publish(30500, "127.0.0.1", version="1.2.3")
        assert read_identity(paths.identity_path) == ident
        assert ident.pid == os.getpid()
        assert ident.start_time == process_start_time(os.getpid())
        assert ident.profile == "work" and ident.port == 30500
        assert ident.config_path == str(paths.config_path)
        assert identity_is_live(ident)
    assert not lock.held
    assert not paths.identity_path.exists()
    # Released: it can be taken again.
    with ProfileLock(paths):
        pass


def test_publish_needs_the_lock(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        ProfileLock(_paths(tmp_path / "s")).publish(1, "127.0.0.1")


def test_release_keeps_an_identity_that_is_not_ours(tmp_path: Path) -> None:
    paths = _paths(tmp_path / "s")
    lock = ProfileLock(paths)
    lock.acquire()
    lock.publish(30500, "127.0.0.1")
    other = _identity_for(os.getpid(), 1)
    write_identity(paths.identity_path, other)
    lock.release()
    lock.release()  # idempotent
    assert read_identity(paths.identity_path) == other


@pytest.mark.e2e
def test_second_gateway_in_another_process_is_refused(tmp_path: Path) -> None:
    state = tmp_path / ".openclaw-work"
    with ProfileLock(_paths(state)) as lock:
        lock.publish(30500, "127.0.0.1")
        result = _contend(state)
        assert result.returncode == 78, result.stderr
        assert result.stdout == (
            f"gateway already running for profile work (pid {os.getpid()}, port 30500)\n"
        )
        # Refused before publishing anything: our identity is intact.
        assert read_identity(state / "gateway.identity.json") == lock.identity
    # Once released, another process gets it.
    assert _contend(state).stdout == "READY\n"


@pytest.mark.e2e
def test_held_lock_without_identity_says_pid_unknown(tmp_path: Path) -> None:
    state = tmp_path / ".openclaw"
    with ProfileLock(_paths(state, None)):
        result = _contend(state, "")
    assert result.returncode == 78
    assert result.stdout == (
        "gateway already running for profile default (pid unknown, port unknown)\n"
    )


@pytest.mark.e2e
def test_same_dir_through_a_symlink_is_the_same_lock(tmp_path: Path) -> None:
    real = tmp_path / "real-state"
    link = tmp_path / ".openclaw-work"
    real.mkdir()
    link.symlink_to(real)
    with ProfileLock(_paths(real)) as lock:
        lock.publish(30500, "127.0.0.1")
        result = _contend(link)
        assert result.returncode == 78
        assert f"(pid {os.getpid()}, port 30500)" in result.stdout
        with pytest.raises(LockHeldError):  # a second lock object in this process too
            ProfileLock(_paths(link)).acquire()


@pytest.mark.e2e
def test_kill_9_of_the_holder_is_reclaimed(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    state = tmp_path / ".openclaw-work"
    holder = _start(spawn, [sys.executable, "-c", HOLDER, str(state), "work", "30600"])
    assert holder.stdout is not None and holder.stdout.readline() == "READY\n"
    recorded = read_identity(state / "gateway.identity.json")
    assert recorded is not None and recorded.pid == holder.pid
    with pytest.raises(LockHeldError, match=f"pid {holder.pid}, port 30600"):
        ProfileLock(_paths(state)).acquire()

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    with ProfileLock(_paths(state)) as lock:
        # The dead holder's identity is gone, so nobody reads its port as current.
        assert read_identity(state / "gateway.identity.json") is None
        assert lock.publish(30601, "127.0.0.1").pid == os.getpid()


@pytest.mark.e2e
def test_identity_of_a_live_unrelated_pid(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    paths = _paths(tmp_path / ".openclaw-work")
    paths.state_dir.mkdir()
    sleeper = _start(spawn, ["sleep", "30"])
    start = process_start_time(sleeper.pid)
    assert start is not None

    # Right start time: that process is the recorded holder, live -> refused.
    write_identity(paths.identity_path, _identity_for(sleeper.pid, start, port=30700))
    with pytest.raises(LockHeldError) as err:
        ProfileLock(paths).acquire()
    assert str(err.value) == (
        f"gateway already running for profile work (pid {sleeper.pid}, port 30700)"
    )
    # The refusal let go of the kernel lock: another process is refused for the same
    # reason (the identity), not by a lock this process still holds.
    assert f"pid {sleeper.pid}" in _contend(paths.state_dir).stdout

    # Wrong start time: the pid was reused by an unrelated process -> stale, reclaimed.
    write_identity(paths.identity_path, _identity_for(sleeper.pid, start + 1))
    with ProfileLock(paths):
        assert read_identity(paths.identity_path) is None
    assert sleeper.poll() is None  # never signalled by the lock


# --- port holders ----------------------------------------------------------------------


@pytest.mark.e2e
def test_find_port_holder_names_the_listening_child(
    spawn: list[subprocess.Popen[str]],
) -> None:
    child = _start(spawn, [sys.executable, "-c", LISTENER])
    assert child.stdout is not None
    port = int(child.stdout.readline())
    found = find_port_holder(port)
    if found is None:
        pytest.skip("this system does not tell which process listens on a port")
    pid, command = found
    assert pid == child.pid
    assert command.startswith(sys.executable) and "-c" in command
    assert "\n" not in command  # the -c script spans lines; the message must not
    assert len(command) <= 120
    assert port_in_use_message(port, found, {port: "rescue"}) == (
        f"port {port} is already in use by pid {child.pid} ({command}); "
        "that is the gateway of profile rescue"
    )


def test_bound_but_not_listening_is_no_holder() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert find_port_holder(s.getsockname()[1]) is None
