"""When a cached token may be served, when it should be renewed, and how long it may limp on.

Three thresholds, all measured as life left before the token's own expiry:

* ``buffer``: above it a token is served straight from the cache;
* ``window``: below it the background refresher renews the token (window >= buffer, so renewal
  normally happens before clients would notice);
* ``stale_margin``: when renewal fails, a token keeps being served until only this much is left.

Renewal is due when the window opens, but never before half of the token's servable life has passed:
a token that arrives with less life than the window would otherwise be due at once, again and again.
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
        return token is not None and token.expires_at_ms - now_ms > self.buffer_ms

    def is_usable_stale(self, token: Token | None, now_ms: int) -> bool:
        return token is not None and token.remaining_ms(now_ms) > self.stale_margin_ms

    def refresh_due_ms(self, token: Token | None, fetched_at_ms: int | None) -> int:
        """Epoch ms at which to renew ``token`` (fetched at ``fetched_at_ms``); 0 means now."""
        if token is None:
            return 0
        window_opens = token.expires_at_ms - self.window_ms
        if fetched_at_ms is None:
            return window_opens
        servable_until = token.expires_at_ms - self.buffer_ms
        return max(window_opens, fetched_at_ms + (servable_until - fetched_at_ms) // 2)

    def wants_refresh(self, token: Token | None, fetched_at_ms: int | None, now_ms: int) -> bool:
        return now_ms >= self.refresh_due_ms(token, fetched_at_ms)

    def ms_until_refresh(self, token: Token | None, fetched_at_ms: int | None, now_ms: int) -> int:
        """Milliseconds until renewal is due (0 when it already is)."""
        return max(0, self.refresh_due_ms(token, fetched_at_ms) - now_ms)
