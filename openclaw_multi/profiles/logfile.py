"""A process's own log file: size-rotated, every file mode 0600.

The gateway (``logs/gateway.log``) and the node host (``logs/node.log``) write their own logs
(no pipe to a supervisor that might die). Logs may name devices, commands and paths, so each
file is private to its owner: :class:`PrivateRotatingFileHandler` creates the first file and
every file after a rollover with mode 0600, whatever the umask (the stock handler reopens with
the umask's mode, typically 0644).

Secrets never reach these logs: callers log no request params, auth blocks or tokens.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import stat
import sys
from pathlib import Path
from typing import Final

__all__ = [
    "FILE_ONLY",
    "LOG_BACKUPS",
    "LOG_MAX_BYTES",
    "PrivateRotatingFileHandler",
    "setup_log_file",
]

LOG_MAX_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5
FILE_ONLY: Final = {"console": False}
"""``extra=`` for records the caller also prints itself (fatal errors): keep them off stderr."""
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A :class:`~logging.handlers.RotatingFileHandler` whose files are always 0600."""

    def _open(self) -> io.TextIOWrapper:
        # Called for the first file and again after each rollover.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            # A file left by an older version (or another tool) may be wider: narrow it.
            if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
                os.fchmod(fd, 0o600)
            return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise


def setup_log_file(path: Path, *, to_stderr: bool) -> logging.Logger:
    """Send the ``openclaw`` logger's records to ``path`` (rotated 10 MiB x 5, 0600).

    Replaces (and closes) any handlers already on that logger, so calling it again is safe.

    Args:
        path: The log file; its directory is created 0700 if missing.
        to_stderr: Also print each message (without timestamp) to stderr, except records
            logged with ``extra=FILE_ONLY``.

    Returns:
        The ``openclaw`` logger.

    Raises:
        OSError: The directory or the file cannot be created or opened.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = logging.getLogger("openclaw")
    root.setLevel(logging.INFO)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    file_handler = PrivateRotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        stream.addFilter(lambda record: getattr(record, "console", True))
        root.addHandler(stream)
    return root
