"""``system.run``: one allowlisted program, no shell, bounded in time and output.

The argv is executed as given (no shell, so no expansion or chaining), with ``argv[0]``
replaced by the path the allowlist resolved (:func:`~.rules.resolve_program`). The child gets
its own session and process group, stdin from ``/dev/null``, and the node host's environment
minus its secrets. On timeout (or when the gateway cancels the invoke) the whole group is
killed; a timeout answers exit code 124 with ``timedOut: true``, as the reference does.
A run ends when its output closes: a background child still holding it keeps the run going
until the timeout, which then kills it with the rest of the group. Each
of stdout and stderr keeps its first ``outputCapBytes`` bytes; when more was dropped,
``... (truncated)`` is appended on its own line (to stderr if it has text, else to stdout),
as the reference node host does. The pipes are drained to the end so a chatty child never
blocks on them. The payload has exactly the reference's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any, Final

from .commands import CommandError, Invocation
from .rules import CappedBuffer, ProgramRefused, child_environment, resolve_program

__all__ = ["TIMEOUT_EXIT_CODE", "TRUNCATED", "system_run"]

TIMEOUT_EXIT_CODE: Final = 124
_READ_CHUNK: Final = 65_536
_REAP_S: Final = 5.0


def _argv(params: dict[str, Any]) -> list[str]:
    command = params.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) for part in command)
        or not command[0]
    ):
        raise CommandError("INVALID_REQUEST", "command required")
    if any("\0" in part for part in command):
        raise CommandError("INVALID_REQUEST", "command contains a NUL byte")
    return command


def _cwd(params: dict[str, Any]) -> str | None:
    cwd = params.get("cwd")
    if cwd is None or cwd == "":
        return None
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise CommandError(
            "INVALID_REQUEST", "cwd must be an existing absolute directory on this node"
        )
    return cwd


def _timeout_ms(params: dict[str, Any], ceiling: int) -> int:
    requested = params.get("timeoutMs")
    if requested is None:
        return ceiling
    if not isinstance(requested, int) or isinstance(requested, bool) or requested <= 0:
        raise CommandError("INVALID_REQUEST", "timeoutMs must be a positive integer")
    return min(requested, ceiling)


async def _drain(stream: asyncio.StreamReader | None, buffer: CappedBuffer) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_CHUNK):
        buffer.feed(chunk)


def _signal_name(number: int) -> str:
    # Real-time signals (SIGRTMIN+n) have no Signals member: name them by number.
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


TRUNCATED: Final = "... (truncated)"


def _result(
    exit_code: int | None,
    *,
    timed_out: bool,
    out: CappedBuffer,
    err: CappedBuffer,
    error: str | None = None,
) -> dict[str, Any]:
    stdout, stderr = out.text(), err.text()
    if out.truncated or err.truncated:
        if stderr.strip():
            stderr = f"{stderr}\n{TRUNCATED}"
        else:
            stdout = f"{stdout}\n{TRUNCATED}"
    return {
        "exitCode": exit_code,
        "timedOut": timed_out,
        "success": exit_code == 0 and not timed_out and error is None,
        "stdout": stdout,
        "stderr": stderr,
        "error": error,
    }


async def system_run(params: dict[str, Any], inv: Invocation) -> Any:
    """``system.run`` {command:[argv], cwd?, timeoutMs?}.

    Returns ``{exitCode, timedOut, success, stdout, stderr, error}`` (``exitCode`` null and
    ``error`` ``killed by signal <NAME>`` when a signal ended it).

    Raises:
        CommandError: INVALID_REQUEST for a bad argv, cwd or timeout (or an ``env``, which
            this node does not take); SYSTEM_RUN_DENIED for a program not on the allowlist.
    """
    settings = inv.settings
    argv = _argv(params)
    if params.get("env"):
        raise CommandError("INVALID_REQUEST", "env is not supported by this node")
    cwd = _cwd(params)
    timeout_ms = _timeout_ms(params, settings.run_timeout_ms)
    try:
        program = resolve_program(argv[0], settings.run_allowlist, settings.path_env)
    except ProgramRefused as refused:
        raise CommandError(refused.code, refused.message) from None
    out = CappedBuffer(settings.output_cap_bytes)
    err = CappedBuffer(settings.output_cap_bytes)
    env = child_environment(os.environ)
    env["PATH"] = settings.path_env
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            *argv[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own group: a timeout kills what it started too
        )
    except OSError as spawn_error:
        reason = spawn_error.strerror or str(spawn_error)
        return _result(None, timed_out=False, out=out, err=err, error=f"cannot start: {reason}")
    readers = asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            await asyncio.shield(readers)  # on timeout the reading goes on (see _stop)
            code = await proc.wait()
    except TimeoutError:
        return await _stop(
            proc, readers, _result(TIMEOUT_EXIT_CODE, timed_out=True, out=out, err=err)
        )
    except asyncio.CancelledError:  # the gateway cancelled the invoke (or the link went)
        await _stop(proc, readers, None)
        raise
    if code < 0:
        killed = f"killed by signal {_signal_name(-code)}"
        return _result(None, timed_out=False, out=out, err=err, error=killed)
    return _result(code, timed_out=False, out=out, err=err)


async def _stop(proc: asyncio.subprocess.Process, readers: asyncio.Future[Any], result: Any) -> Any:
    """Kill the child's process group, then reap it and stop reading.

    Safe even when the leader has exited: the output is still open, so members of its group
    remain, and the kernel does not reuse a group id that still has members.
    """
    _kill_group(proc.pid)
    with contextlib.suppress(TimeoutError, ProcessLookupError):
        async with asyncio.timeout(_REAP_S):
            await proc.wait()
    # The kill closes the output of everything in the group: read to its end (bounded).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_S):
            await asyncio.shield(readers)
    if not readers.done():
        # A grandchild that left the group still holds a pipe: stop reading, close ours.
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    return result
