"""The node host's log: ``<state>/logs/node.log``, size-rotated, 0600, like the gateway's.

Nothing logs request params beyond what an operator needs to see (command names, invoke ids,
notifications), and never an auth block or token.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Final

LOG_FILE: Final = "node.log"
LOG_MAX_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_node_logging(log_dir: Path, *, to_stderr: bool) -> Path:
    """Send ``openclaw.node`` (and the client's) records to ``log_dir/node.log``; return it."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = log_dir / LOG_FILE
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    root = logging.getLogger("openclaw")
    root.setLevel(logging.INFO)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(stream)
    # picows logs every dropped link at INFO; the host says it once in its own words.
    logging.getLogger("openclaw.client.ws").setLevel(logging.WARNING)
    return path
