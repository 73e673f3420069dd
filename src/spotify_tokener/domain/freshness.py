"""When a cached token may be served, renewed, or limp on; one home for the cutoffs, so the cache, the
hot answer, a fetched token and a replica's shared one are all judged alike.

Renewal is due when ``window`` opens, but never before half of the token's servable life has passed:
a token that arrives with less life than the window would otherwise be due at once, again and again.
"""

from __future__ import annotations

from dataclasses import dataclass

from spotify_tokener.domain.token import Token


@dataclass(frozen=True, slots=True)
class Freshness:
    buffer_ms: int  # above this much life left, a token is served from the cache
    window_ms: int  # below it the refresher renews (>= buffer, so before clients notice)
    stale_margin_ms: int  # while renewal fails, a token is served until only this much is left
    force_gap_ms: int = 0  # a token fetched this close to a forced request satisfies it: no hammering

    @classmethod
    def from_seconds(
        cls, buffer: float, window: float, stale_margin: float, force_gap: float = 0.0
    ) -> Freshness:
        return cls(*(round(seconds * 1000) for seconds in (buffer, window, stale_margin, force_gap)))

    def serve_until_ms(self, token: Token) -> int:
        """The first epoch millisecond at which ``token`` is no longer served from the cache."""
        return token.expires_at_ms - self.buffer_ms

    def is_servable(self, token: Token | None, now_ms: int) -> bool:
        return token is not None and now_ms < self.serve_until_ms(token)

    def is_usable_stale(self, token: Token | None, now_ms: int) -> bool:
        return token is not None and token.remaining_ms(now_ms) > self.stale_margin_ms

    def refresh_due_ms(self, token: Token | None, fetched_at_ms: int | None) -> int:
        """Epoch ms at which to renew ``token`` (fetched at ``fetched_at_ms``); 0 means now."""
        if token is None:
            return 0
        window_opens = token.expires_at_ms - self.window_ms
        if fetched_at_ms is None:
            return window_opens
        serve_until = self.serve_until_ms(token)
        return max(window_opens, fetched_at_ms + (serve_until - fetched_at_ms) // 2)

    def satisfies_force(self, fetched_at_ms: int, requested_at_ms: int) -> bool:
        """Whether a token fetched at ``fetched_at_ms`` answers a request forced at ``requested_at_ms``."""
        return fetched_at_ms > requested_at_ms - self.force_gap_ms
