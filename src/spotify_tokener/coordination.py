"""How one replica's fetches relate to other replicas': the seam between the service and Redis.

The service asks its coordinator for every fetch. Alone, the coordinator just harvests (the slot's
single flight already covers this process); with Redis, it may hand back a token another replica
fetched, or wait for one being fetched, instead of asking Spotify again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from spotify_tokener.token import Token

Harvest = Callable[[], Awaitable[Token]]

ANONYMOUS_KEY = "anonymous"


def account_slot_key(account_hash: str) -> str:
    return f"account:{account_hash}"


class Coordinator(Protocol):
    @property
    def available(self) -> bool | None:
        """Whether the shared store answered last time (None: there is none)."""

    async def fetch(self, key: str, harvest: Harvest, known: Token | None, *, force: bool = False) -> Token:
        """A token for identity ``key`` newer than ``known``: shared by another replica, or harvested.

        ``force``: the caller wants a token no older than its request, not merely newer than ``known``.
        """

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalCoordinator:
    """A single replica: nothing to share, every fetch is harvested here."""

    available: bool | None = None

    async def fetch(self, key: str, harvest: Harvest, known: Token | None, *, force: bool = False) -> Token:
        return await harvest()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
