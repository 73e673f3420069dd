"""Per-account token slots: a small LRU keyed by a hash of the ``sp_dc`` cookie.

The cookie itself is never stored: callers bring it with each request, and the key is its SHA-256,
so neither a memory dump of the cache nor the status endpoint can give a session away.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from spotify_tokener.core.slot import TokenSlot
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.freshness import Freshness

ANONYMOUS = "anonymous"  # the anonymous token's identity, as replicas share it


def account_identity(sp_dc: str) -> str:
    """An account's identity, as replicas share it: a hash of its cookie, never the cookie."""
    return f"account:{hashlib.sha256(sp_dc.encode()).hexdigest()}"


class AccountSlots:
    """Bounded: a service shared by many bots must not grow without limit with their accounts."""

    def __init__(self, capacity: int, freshness: Freshness, backoff: Backoff, clock: Clock) -> None:
        self._capacity = capacity
        self._freshness = freshness
        self._backoff = backoff
        self._clock = clock
        self._slots: OrderedDict[str, TokenSlot] = OrderedDict()

    def slot_for(self, sp_dc: str) -> TokenSlot:
        """This account's slot, made most recently used; the least recently used one goes if full."""
        self.drop_expired()
        identity = account_identity(sp_dc)
        slot = self._slots.get(identity)
        if slot is None:
            slot = TokenSlot(identity, "account", self._freshness, self._backoff, self._clock)
            self._slots[identity] = slot
        self._slots.move_to_end(identity)
        while len(self._slots) > self._capacity:
            self._slots.popitem(last=False)
        return slot

    def drop_expired(self) -> None:
        now = self._clock()
        for identity in [identity for identity, slot in self._slots.items() if slot.is_expired(now)]:
            del self._slots[identity]

    def count(self) -> int:
        """Accounts holding a live token (a slot may exist only to remember a failed fetch)."""
        self.drop_expired()
        now = self._clock()
        return sum(1 for slot in self._slots.values() if slot.token and slot.token.remaining_ms(now) > 0)

    async def cancel(self) -> None:
        for slot in list(self._slots.values()):
            await slot.cancel()
