"""The node host's log: ``<state>/logs/node.log``, size-rotated, every file 0600.

The rotation and the file modes are :mod:`openclaw_multi.profiles.logfile`'s (shared with the
gateway). Nothing logs request params beyond what an operator needs to see (command names,
invoke ids, notifications), and never an auth block or token.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from ...profiles.logfile import setup_log_file

LOG_FILE: Final = "node.log"


def setup_node_logging(log_dir: Path, *, to_stderr: bool) -> Path:
    """Send ``openclaw.node`` (and the client's) records to ``log_dir/node.log``; return it."""
    path = log_dir / LOG_FILE
    setup_log_file(path, to_stderr=to_stderr)
    # picows logs every dropped link at INFO; the host says it once in its own words.
    logging.getLogger("openclaw.client.ws").setLevel(logging.WARNING)
    return path
