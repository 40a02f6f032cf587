"""``<state>/nodehost.status.json``: what a running node host says about its link.

Written atomically (0600) when the host starts and whenever its link changes, so
``openclaw node status`` and the supervisor can tell "running and connected" from "running,
gateway unreachable" without talking to the process::

    {"pid": 4242, "url": "ws://gw:18789/", "nodeId": "<hex>", "connected": true,
     "sinceMs": 1764500000000, "lastError": null}

It holds no secret. A stale file (its pid gone) means nothing: readers check the pid.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Final

import msgspec

from ...profiles.atomic import write_file_atomic

__all__ = ["STATUS_FILE", "NodeHostStatus", "read_status", "write_status"]

STATUS_FILE: Final = "nodehost.status.json"
_LOG = logging.getLogger("openclaw.node")


class NodeHostStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One snapshot of a node host's link."""

    pid: int
    url: str
    node_id: str
    connected: bool
    since_ms: int
    last_error: str | None = None


_decoder: Final = msgspec.json.Decoder(NodeHostStatus)


def write_status(path: Path, *, url: str, node_id: str, connected: bool, error: str | None) -> None:
    """Record the link's state (a failure to write is logged, never raised)."""
    status = NodeHostStatus(
        pid=os.getpid(),
        url=url,
        node_id=node_id,
        connected=connected,
        since_ms=int(time.time() * 1000),
        last_error=error,
    )
    try:
        write_file_atomic(path, msgspec.json.encode(status), mode=0o600)
    except OSError as err:
        _LOG.warning("cannot write %s: %s", path, err)


def read_status(path: Path) -> NodeHostStatus | None:
    """The last snapshot, or None when there is none (or it is unreadable)."""
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
