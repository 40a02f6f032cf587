"""The gateway's own log: ``<state>/logs/gateway.log``, size-rotated, every file 0600.

The rotation and the file modes are :mod:`openclaw_multi.profiles.logfile`'s (shared with the
node host). Secrets never reach this log: nothing logs request params or auth blocks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..profiles.logfile import FILE_ONLY, setup_log_file

__all__ = ["FILE_ONLY", "setup_logging"]


def setup_logging(log_path: Path, *, to_stderr: bool) -> logging.Logger:
    """Log to ``log_path`` (rotated 10 MiB x 5, mode 0600) and optionally to stderr."""
    return setup_log_file(log_path, to_stderr=to_stderr)
