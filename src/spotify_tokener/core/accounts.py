"""Per-account token slots: a small LRU keyed by the SHA-256 of the ``sp_dc`` cookie, never the cookie
itself, so neither a memory dump nor the status endpoint can give a session away.

So that a stranger with a list of cookies cannot take the service from its bots, accounts are admitted,
not just cached: new ones at a bounded rate, and a cookie Spotify refused is refused from memory a while.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from spotify_tokener.core.slot import TokenSlot
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import COOKIE_REJECTED, CookieRejected, Overloaded
from spotify_tokener.domain.rate import RateLimit
from spotify_tokener.domain.token import identity_of

if TYPE_CHECKING:
    from spotify_tokener.core.service import CoreConfig


class AccountSlots:
    def __init__(self, config: CoreConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._slots: OrderedDict[str, TokenSlot] = OrderedDict()
        # A minute's worth at once: a bot bringing its accounts at start is not kept waiting.
        per_minute = config.new_accounts_per_minute
        self._admitted = RateLimit(per_minute, burst=per_minute, now_ms=clock())
        self._rejected_for_ms = round(config.rejected_cookie_memory * 1000)
        # identity -> until when; in the order remembered, so the oldest expire first. Bounded by the
        # rate: every entry took a fetch, and every fetch of a new account an admission.
        self._rejected: dict[str, int] = {}

    def slot_for(self, sp_dc: str) -> TokenSlot:
        """This account's slot, made most recently used; the least recently used idle one goes if full."""
        self.drop_expired()
        identity = identity_of(sp_dc)
        if identity in self._rejected:
            raise CookieRejected(COOKIE_REJECTED)
        slot = self._slots.get(identity) or self._admit(identity)
        self._slots.move_to_end(identity)
        self._evict(keep=identity)
        return slot

    def reject(self, slot: TokenSlot) -> None:
        """Remember that Spotify refused this slot's cookie, unless the slot still holds a token it
        may serve (a forced renewal refused is no reason to take that token away)."""
        now = self._clock()
        if not self._rejected_for_ms or self._config.freshness.is_usable_stale(slot.token, now):
            return
        self._rejected.pop(slot.identity, None)
        self._rejected[slot.identity] = now + self._rejected_for_ms
        if not slot.refreshing:
            self._slots.pop(slot.identity, None)

    def drop_expired(self) -> None:
        now = self._clock()
        for identity in [identity for identity, slot in self._slots.items() if slot.is_expired(now)]:
            del self._slots[identity]
        while self._rejected and next(iter(self._rejected.values())) <= now:
            del self._rejected[next(iter(self._rejected))]

    def count(self) -> int:
        """Accounts holding a live token (a slot may exist only to remember a failed fetch)."""
        self.drop_expired()
        now = self._clock()
        return sum(1 for slot in self._slots.values() if slot.token and slot.token.is_alive(now))

    async def cancel(self) -> None:
        for slot in list(self._slots.values()):
            await slot.cancel()

    def _admit(self, identity: str) -> TokenSlot:
        wait_s = self._admitted.take(self._clock())
        if wait_s is not None:
            raise Overloaded("too many new accounts at once; try again shortly", retry_after=wait_s)
        slot = TokenSlot(identity, "account", self._config.freshness, self._config.backoff, self._clock)
        self._slots[identity] = slot
        return slot

    def _evict(self, keep: str) -> None:
        """Least recently used first; never a slot whose fetch runs (its next request would start a second
        one): over capacity until one ends."""
        excess = len(self._slots) - self._config.max_accounts
        idle = [id_ for id_, slot in self._slots.items() if id_ != keep and not slot.refreshing]
        for identity in idle[: max(excess, 0)]:
            del self._slots[identity]
