"""The cached token and the single in-flight fetch for one identity.

Every caller that needs a fetch while one is running joins it (``asyncio.shield`` keeps a
caller's disconnect from cancelling the fetch the others wait on), so any burst costs Spotify
exactly one token request. After a failed fetch the slot cools down (backoff, ``Retry-After``):
until then callers get the old token or the last error at once, and nothing new is sent upstream.
The fetch is handed in by each caller rather than kept, so a slot for an account never holds that
account's cookie.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spotify_tokener.clock import Clock
from spotify_tokener.errors import ShuttingDown, TokenError
from spotify_tokener.freshness import Freshness
from spotify_tokener.token import Token

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[Token]]
Cooldown = Callable[[int, TokenError], float]


@dataclass(slots=True)  # built on every request; frozen would cost ~0.3 us each time
class Served:
    """A token and whether it came from the cache rather than a fetch made for this caller."""

    token: Token
    cached: bool


class TokenSlot:
    """One identity's token: what is cached, what is being fetched, and how the last fetch went."""

    def __init__(
        self,
        key: str,
        freshness: Freshness,
        clock: Clock,
        cooldown_s: Cooldown,
        force_min_interval_ms: int = 0,
    ) -> None:
        self.key = key  # the identity as other replicas know it: never a cookie
        self._force_min_interval_ms = force_min_interval_ms
        self._freshness = freshness
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._flight: asyncio.Task[Token] | None = None
        self.token: Token | None = None
        self.servable_until_ms = 0  # kept with the token: the HTTP fast path's one comparison
        self.last_error: TokenError | None = None
        self.failures = 0
        self.retry_at_ms = 0
        self.refreshed_at_ms: int | None = None

    @property
    def refreshing(self) -> bool:
        return self._flight is not None

    def cooling_down(self, now_ms: int) -> bool:
        return self.failures > 0 and self._flight is None and now_ms < self.retry_at_ms

    async def get(self, fetch: Fetch, *, force: bool = False) -> Served:
        """The token to hand out: cached if fresh, else from a (shared) fetch.

        While renewal keeps failing, a token still above the stale margin is served without making
        the caller wait for the browser; a forced call always tries, and gets the error if it fails.
        """
        token, now = self.token, self._clock()
        if force and self._just_refreshed(now) and token is not None:
            return Served(token, cached=True)  # one client must not make us hammer Spotify
        if not force:
            if token is not None and self._freshness.is_servable(token, now):
                return Served(token, cached=True)
            if self.failures:
                stale = self._usable_stale(now)
                if self.cooling_down(now):
                    if stale is not None:
                        return Served(stale, cached=True)
                    raise self._last_error()
                if stale is not None:
                    self.refresh_in_background(fetch)
                    return Served(stale, cached=True)
        try:
            return Served(await self._join(fetch), cached=False)
        except TokenError:
            stale = None if force else self._usable_stale(self._clock())
            if stale is None:
                raise
            return Served(stale, cached=True)

    def refresh_in_background(self, fetch: Fetch) -> asyncio.Task[Token]:
        """Start a fetch unless one is already running; either way return the running one."""
        if self._flight is None:
            self._flight = asyncio.get_running_loop().create_task(self._run(fetch))
            self._flight.add_done_callback(_retrieve)
        return self._flight

    def is_expired(self, now_ms: int) -> bool:
        """Nothing worth keeping: no live token, no fetch under way, no cool-down to remember."""
        if self._flight is not None or self.cooling_down(now_ms):
            return False
        return self.token is None or self.token.remaining_ms(now_ms) <= 0

    async def cancel(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)

    def _just_refreshed(self, now_ms: int) -> bool:
        refreshed = self.refreshed_at_ms
        return refreshed is not None and now_ms - refreshed < self._force_min_interval_ms

    def _usable_stale(self, now_ms: int) -> Token | None:
        token = self.token
        return token if self._freshness.is_usable_stale(token, now_ms) else None

    def _last_error(self) -> TokenError:
        """The failure that started the cool-down, telling the client when the next try is due."""
        error = self.last_error
        assert error is not None, "cooling down implies a recorded failure"
        remaining_s = max(self.retry_at_ms - self._clock(), 0) / 1000
        return type(error)(str(error), retry_after=remaining_s)

    async def _join(self, fetch: Fetch) -> Token:
        flight = self.refresh_in_background(fetch)
        try:
            return await asyncio.shield(flight)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if flight.cancelled() and current is not None and not current.cancelling():
                raise ShuttingDown("the service is shutting down") from None
            raise

    async def _run(self, fetch: Fetch) -> Token:
        try:
            token = await fetch()
        except TokenError as error:
            self.last_error = error
            self.failures += 1
            self.retry_at_ms = self._clock() + round(self._cooldown_s(self.failures, error) * 1000)
            raise
        finally:
            self._flight = None
        self.token = token
        self.servable_until_ms = token.expires_at_ms - self._freshness.buffer_ms
        self.last_error = None
        self.failures = 0
        self.retry_at_ms = 0
        self.refreshed_at_ms = self._clock()
        return token


def _retrieve(task: asyncio.Task[Token]) -> None:
    """Mark a background fetch's failure as seen: the slot recorded it, and waiters got it."""
    if not task.cancelled():
        task.exception()
