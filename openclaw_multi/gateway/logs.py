"""The gateway's own log: size-rotated files under the profile's state dir.

Gateways write their own logs (no pipe to a supervisor that might die). Secrets never reach
this log: nothing logs request params or auth blocks.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_ONLY = {"console": False}
"""``extra=`` for records the caller also prints itself (fatal errors): keep them off stderr."""


def setup_logging(log_path: Path, *, to_stderr: bool) -> logging.Logger:
    """Log to ``log_path`` (rotated 10 MiB x 5, mode 0600) and optionally to stderr."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = logging.getLogger("openclaw")
    root.setLevel(logging.INFO)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    file_handler = logging.handlers.RotatingFileHandler(
        log_path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, delay=False
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        stream.addFilter(lambda record: getattr(record, "console", True))
        root.addHandler(stream)
    return root
