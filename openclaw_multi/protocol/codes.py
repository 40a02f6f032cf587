"""Error codes carried in ``res.error.code`` and the WebSocket close codes we use.

Values are the reference gateway's (see ../shared/design/protocol.md); clients switch on them.
"""

from __future__ import annotations

from typing import Final

INVALID_REQUEST: Final = "INVALID_REQUEST"
UNAVAILABLE: Final = "UNAVAILABLE"
NOT_PAIRED: Final = "NOT_PAIRED"
NOT_LINKED: Final = "NOT_LINKED"
AGENT_TIMEOUT: Final = "AGENT_TIMEOUT"
RATE_LIMITED: Final = "RATE_LIMITED"
FORBIDDEN: Final = "FORBIDDEN"

# Close codes (RFC 6455 section 7.4.1 plus the application range).
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_INVALID_PAYLOAD: Final = 1007
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TRY_AGAIN_LATER: Final = 1013
CLOSE_TICK_TIMEOUT: Final = 4000
