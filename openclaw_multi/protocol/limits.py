"""Connection limits decided with plain values: failed-auth backoff per peer, size caps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

PRE_CONNECT_MAX_FRAME: Final = 64 * 1024
"""Bytes a frame may have before ``hello-ok`` (protocol.md: close 1009 past it)."""

DEFAULT_MAX_PAYLOAD: Final = 25 * 1024 * 1024
DEFAULT_MAX_BUFFERED_BYTES: Final = 50 * 1024 * 1024
DEFAULT_TICK_INTERVAL_MS: Final = 30_000
DEFAULT_HANDSHAKE_TIMEOUT_S: Final = 15.0
MAX_UNAUTHENTICATED_PER_PEER: Final = 32


@dataclass
class FailedAuthThrottle:
    """Slows repeated failed auth from one peer: 0.5 s doubling to 5 s, forgotten on success.

    ``now`` is monotonic seconds supplied by the caller. Entries idle for ``forget_after``
    seconds are dropped so the table cannot grow without bound.
    """

    initial: float = 0.5
    maximum: float = 5.0
    forget_after: float = 300.0
    max_peers: int = 4096
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def delay_for(self, peer: str, now: float) -> float:
        """Seconds to hold back the reply to this peer's next failed attempt (not recording)."""
        count, last = self._failures.get(peer, (0, now))
        if count == 0 or now - last > self.forget_after:
            return 0.0
        return float(min(self.maximum, self.initial * (2 ** (count - 1))))

    def record_failure(self, peer: str, now: float) -> float:
        """Count a failure and return how long its reply should be delayed."""
        count, last = self._failures.get(peer, (0, now))
        if now - last > self.forget_after:
            count = 0
        count += 1
        if len(self._failures) >= self.max_peers and peer not in self._failures:
            self._evict(now)
        self._failures[peer] = (count, now)
        return float(min(self.maximum, self.initial * (2 ** (count - 1))))

    def record_success(self, peer: str) -> None:
        """Forget a peer's failures once it authenticates."""
        self._failures.pop(peer, None)

    def _evict(self, now: float) -> None:
        stale = [p for p, (_, last) in self._failures.items() if now - last > self.forget_after]
        for peer in stale or list(self._failures)[: self.max_peers // 4]:
            del self._failures[peer]
