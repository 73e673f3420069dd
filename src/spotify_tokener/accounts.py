"""Per-account token slots: a small LRU keyed by a hash of the ``sp_dc`` cookie.

The cookie itself is never stored: callers bring it with each request, and the key is its SHA-256,
so neither a memory dump of the cache nor the status endpoint can give a session away.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from spotify_tokener.clock import Clock
from spotify_tokener.coordination import account_slot_key
from spotify_tokener.freshness import Freshness
from spotify_tokener.slot import Cooldown, TokenSlot


def account_key(sp_dc: str) -> str:
    return hashlib.sha256(sp_dc.encode()).hexdigest()


class AccountSlots:
    """Bounded: a service shared by many bots must not grow without limit with their accounts."""

    def __init__(
        self,
        capacity: int,
        freshness: Freshness,
        clock: Clock,
        cooldown_s: Cooldown,
        force_min_interval_ms: int = 0,
    ) -> None:
        self._force_min_interval_ms = force_min_interval_ms
        self._capacity = capacity
        self._freshness = freshness
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._slots: OrderedDict[str, TokenSlot] = OrderedDict()

    def slot_for(self, sp_dc: str) -> TokenSlot:
        """This account's slot, made most recently used; the least recently used one goes if full."""
        self.drop_expired()
        key = account_key(sp_dc)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = TokenSlot(
                account_slot_key(key),
                self._freshness,
                self._clock,
                self._cooldown_s,
                self._force_min_interval_ms,
            )
        self._slots.move_to_end(key)
        while len(self._slots) > self._capacity:
            self._slots.popitem(last=False)
        return slot

    def drop_expired(self) -> None:
        now = self._clock()
        for key in [key for key, slot in self._slots.items() if slot.is_expired(now)]:
            del self._slots[key]

    def count(self) -> int:
        """Accounts holding a live token (a slot may exist only to remember a failed fetch)."""
        self.drop_expired()
        now = self._clock()
        return sum(1 for slot in self._slots.values() if slot.token and slot.token.remaining_ms(now) > 0)

    async def cancel(self) -> None:
        for slot in list(self._slots.values()):
            await slot.cancel()
