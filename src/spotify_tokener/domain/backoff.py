"""How long to wait: between attempts, after a failed fetch, and at worst for a whole fetch.

Doubling from a base, stretched (never shortened) by a server's ``Retry-After``, capped so one hostile
header cannot park the service for hours, then by up to ``jitter`` of itself so that fetches that
failed together do not retry together. The random draw is the caller's, so the rules stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DOUBLINGS = 64  # past any cap; more would overflow a float after a thousand failures in a row


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    retries: int  # attempts after the first, within one fetch
    retry_after_max_s: float
    cooldown_max_s: float
    jitter: float = 0.0  # the most a wait is stretched, as a fraction of itself

    def delay_s(self, failures: int, retry_after: float | None, draw: float = 0.0) -> float:
        """Seconds to wait after the ``failures``-th failed attempt in a row (1-based): base, 2x, 4x...;
        ``draw``, in [0, 1], picks how much of the jitter to add."""
        delay = self.base_s * 2.0 ** min(max(failures, 1) - 1, MAX_DOUBLINGS)
        if retry_after is not None:
            delay = max(delay, self.honoured_s(retry_after))
        return delay * (1 + self.jitter * draw)

    def honoured_s(self, retry_after: float) -> float:
        """How much of a ``Retry-After`` is honoured, upstream's or told to a client: a server's
        whim (a day, say) must not park the service, nor its clients, for longer than the cap."""
        return min(retry_after, self.retry_after_max_s)

    def cooldown_s(self, failed_fetches: int, retry_after: float | None) -> float:
        """The pause after a failed fetch (itself retried): the doubling goes on where the retries stopped."""
        return min(self.delay_s(self.retries + failed_fetches, retry_after), self.cooldown_max_s)

    def worst_fetch_s(self, attempt_timeout_s: float) -> float:
        """The longest a fetch can take: every attempt timing out, every wait at its longest."""
        waits = sum(self.delay_s(n, self.retry_after_max_s, draw=1.0) for n in range(1, self.retries + 1))
        return (self.retries + 1) * attempt_timeout_s + waits
