"""A token bucket on the caller's clock, for admitting new accounts: a bot adding its accounts at
start passes at once, a stranger cycling through cookies is slowed to the steady rate."""

from __future__ import annotations


class RateLimit:
    """Up to ``burst`` at once, then ``per_minute`` spread over each minute."""

    def __init__(self, per_minute: float, burst: int, now_ms: int) -> None:
        self._per_ms = per_minute / 60_000
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at_ms = now_ms

    def take(self, now_ms: int) -> float | None:
        """Take one place if there is one (None); else the seconds until there will be."""
        elapsed_ms = max(now_ms - self._at_ms, 0)  # a wall clock stepped back refills nothing
        self._tokens = min(self._burst, self._tokens + elapsed_ms * self._per_ms)
        self._at_ms = now_ms
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self._per_ms / 1000
