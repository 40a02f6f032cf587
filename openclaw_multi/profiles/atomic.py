"""The one atomic file writer: readers see the old file or the new one, never a torn mix."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_file_atomic"]


def _fsync_dir(directory: Path) -> None:
    # The rename lives in the directory entry; without this a crash can lose it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open a directory (Windows) have no dir fsync
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically.

    Writes a temp file in the same directory (so ``os.replace`` is a rename on one
    filesystem), fsyncs it, sets ``mode``, renames it over ``path`` and fsyncs the
    directory. If ``path`` is a symlink, its target is replaced and the link kept. The
    directory must exist. On failure the temp file is removed and ``path`` is untouched.

    Args:
        path: The file to write.
        data: Its new content.
        mode: Permission bits of the new file (0600 by default: configs hold tokens).

    Raises:
        OSError: The directory is missing or not writable, the disk is full, ...
    """
    target = Path(os.path.realpath(path))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            if hasattr(os, "fchmod"):  # not on Windows, where modes barely apply
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)
