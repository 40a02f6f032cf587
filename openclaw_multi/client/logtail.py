"""Reading a gateway's log from the CLI: the last lines, and following it across rotation.

The gateway rotates its own log (``gateway.log`` -> ``gateway.log.1``, a new
``gateway.log``). A follower keeps the file open and notices rotation by the path's inode
changing (or the file shrinking, for truncation), then reads the rest of the old file and
continues at the start of the new one. Polling is bounded: one ``stat`` per interval.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["follow_lines", "last_lines"]

_BLOCK = 64 * 1024
POLL_INTERVAL_S = 0.25


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file, read from its end (cheap on a big file).

    Args:
        path: The file.
        count: How many lines (0 gives none).

    Returns:
        Lines without their newline; fewer if the file is shorter.

    Raises:
        OSError: The file cannot be read (FileNotFoundError if it does not exist).
    """
    if count <= 0:
        return []
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        data = b""
        pos = end
        # One more newline than lines wanted: the last line usually ends with one.
        while pos > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


def _open_at(path: Path, offset: int | None) -> tuple[BinaryIO, int] | None:
    try:
        f = path.open("rb")
    except OSError:
        return None
    if offset is None:
        f.seek(0, os.SEEK_END)
    else:
        f.seek(offset)
    return f, os.fstat(f.fileno()).st_ino


def follow_lines(
    path: Path,
    *,
    from_end: bool = True,
    interval: float = POLL_INTERVAL_S,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield lines appended to ``path`` as they come, surviving rotation and truncation.

    Args:
        path: The log file (it may not exist yet; it is waited for).
        from_end: Start at the current end (True) or the beginning of the file.
        interval: Seconds between polls when nothing new is there.
        should_stop: Checked once per poll; True ends the iteration.
        sleep: The wait between polls (tests pass a fake).

    Yields:
        Complete lines without their newline. A partial last line is held back until
        its newline arrives (or the file is rotated away).
    """
    opened = _open_at(path, None if from_end else 0)
    pending = b""
    try:
        while not should_stop():
            if opened is None:
                opened = _open_at(path, 0)
                if opened is None:
                    sleep(interval)
                    continue
            f, inode = opened
            chunk = f.read(_BLOCK)
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", "replace")
                continue
            # Nothing new here: was the file rotated or truncated under us?
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is not None and st.st_ino == inode and st.st_size >= f.tell():
                sleep(interval)
                continue
            if st is not None and st.st_ino == inode:  # truncated in place
                f.seek(0)
                pending = b""
                continue
            # Rotated (or removed): drain what the old file still has, then switch.
            rest = pending + f.read()
            pending = b""
            for raw in rest.split(b"\n"):
                if raw:
                    yield raw.decode("utf-8", "replace")
            f.close()
            opened = _open_at(path, 0)
            if opened is None:
                sleep(interval)
    finally:
        if opened is not None:
            opened[0].close()
