"""When a cached token may be served, when it should be renewed, and how long it may limp on.

Three thresholds, all measured as life left before the token's own expiry:

* ``buffer``: above it a token is served straight from the cache;
* ``window``: below it the background refresher renews the token (window >= buffer, so renewal
  normally happens before clients would notice);
* ``stale_margin``: when renewal fails, a token keeps being served until only this much is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from spotify_tokener.token import Token


@dataclass(frozen=True, slots=True)
class Freshness:
    buffer_ms: int
    window_ms: int
    stale_margin_ms: int

    @classmethod
    def from_seconds(cls, buffer: float, window: float, stale_margin: float) -> Freshness:
        return cls(round(buffer * 1000), round(window * 1000), round(stale_margin * 1000))

    def is_servable(self, token: Token | None, now_ms: int) -> bool:
        return token is not None and token.remaining_ms(now_ms) > self.buffer_ms

    def is_usable_stale(self, token: Token | None, now_ms: int) -> bool:
        return token is not None and token.remaining_ms(now_ms) > self.stale_margin_ms

    def wants_refresh(self, token: Token | None, now_ms: int) -> bool:
        return token is None or token.remaining_ms(now_ms) < self.window_ms

    def ms_until_refresh(self, token: Token | None, now_ms: int) -> int:
        """Milliseconds until :meth:`wants_refresh` turns true (0 when it already is)."""
        if token is None:
            return 0
        return max(0, token.remaining_ms(now_ms) - self.window_ms)
