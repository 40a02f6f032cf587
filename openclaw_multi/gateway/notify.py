"""sd_notify: tell whoever started us (systemd or our supervisor) that we are ready.

The datagram protocol of sd_notify(3): newline-separated ``KEY=VALUE`` lines sent to the
unix socket named by ``NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace). Absent
variable: nothing to do. Failures are ignored: readiness is a courtesy, serving is the job.
"""

from __future__ import annotations

import os
import socket


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET``; return True if it was sent."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True
