"""The cached token and the single in-flight fetch for one identity.

Every caller that needs a fetch while one is running joins it (``asyncio.shield`` keeps a
caller's disconnect from cancelling the fetch the others wait on), so any burst costs Spotify
exactly one token request. The fetch is handed in by each caller rather than kept, so a slot for an
account never holds that account's cookie.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spotify_tokener.errors import ShuttingDown, TokenError
from spotify_tokener.freshness import Freshness
from spotify_tokener.token import Token

log = logging.getLogger(__name__)

Clock = Callable[[], int]
Fetch = Callable[[], Awaitable[Token]]


@dataclass(frozen=True, slots=True)
class Served:
    token: Token
    cached: bool


class TokenSlot:
    def __init__(self, freshness: Freshness, clock: Clock) -> None:
        self._freshness = freshness
        self._clock = clock
        self._flight: asyncio.Task[Token] | None = None
        self.token: Token | None = None
        self.last_error: TokenError | None = None
        self.failures = 0
        self.refreshed_at_ms: int | None = None

    @property
    def refreshing(self) -> bool:
        return self._flight is not None

    async def get(self, fetch: Fetch, *, force: bool = False) -> Served:
        """The token to hand out: cached if fresh, else from a (shared) fetch.

        While renewal keeps failing, a token that has not yet reached the stale margin is still
        served to callers that did not force, without making them wait for the browser.
        """
        token, now = self.token, self._clock()
        if not force and token is not None:
            if self._freshness.is_servable(token, now):
                return Served(token, cached=True)
            if self.failures and self._freshness.is_usable_stale(token, now):
                self.refresh_in_background(fetch)
                return Served(token, cached=True)
        try:
            return Served(await self._join(fetch), cached=False)
        except TokenError:
            stale = self.token
            if not force and stale is not None and self._freshness.is_usable_stale(stale, self._clock()):
                return Served(stale, cached=True)
            raise

    async def _join(self, fetch: Fetch) -> Token:
        flight = self.refresh_in_background(fetch)
        try:
            return await asyncio.shield(flight)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if flight.cancelled() and current is not None and not current.cancelling():
                raise ShuttingDown("the service is shutting down") from None
            raise

    def refresh_in_background(self, fetch: Fetch) -> asyncio.Task[Token]:
        """Start a fetch unless one is already running; either way return the running one."""
        if self._flight is None:
            self._flight = asyncio.get_running_loop().create_task(self._run(fetch))
            self._flight.add_done_callback(_retrieve)
        return self._flight

    async def cancel(self) -> None:
        flight = self._flight
        if flight is not None:
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)

    def is_expired(self, now_ms: int) -> bool:
        """Nothing worth keeping: no token, or a dead one, and no fetch under way."""
        return self._flight is None and (self.token is None or self.token.remaining_ms(now_ms) <= 0)

    async def _run(self, fetch: Fetch) -> Token:
        try:
            token = await fetch()
        except TokenError as error:
            self.last_error = error
            self.failures += 1
            raise
        finally:
            self._flight = None
        self.token = token
        self.last_error = None
        self.failures = 0
        self.refreshed_at_ms = self._clock()
        return token


def _retrieve(task: asyncio.Task[Token]) -> None:
    """Mark a background fetch's failure as seen: the slot recorded it, and waiters got it."""
    if not task.cancelled():
        task.exception()
