"""The cached token and the single in-flight fetch for one identity.

Every caller that needs a fetch while one is running joins it (``asyncio.shield`` keeps a caller's
disconnect from cancelling the fetch the others wait on), so any burst costs Spotify exactly one token
request. After a failed fetch the slot cools down (backoff, ``Retry-After``): until then callers get the
old token or the last error at once. The fetch is handed in by each caller rather than kept, so a slot
for an account never holds that account's cookie.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from spotify_tokener.core.ports import Fetch, Left
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import CallerLeft, ShuttingDown, TokenError
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.token import Kind, Token


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as the cache holds it, replaced whole when a new one arrives (watchers are told then)."""

    token: Token
    serve_until_ms: int  # Freshness.serve_until_ms of the token, the one serving cutoff
    fetched_at_ms: int


@dataclass(slots=True)  # not frozen: built on every request, and a frozen one cost ~0.5 µs to build
class Served:
    """A token and whether it came from the cache rather than a fetch made for this caller."""

    token: Token
    cached: bool


Watcher = Callable[[CachedToken], None]


class TokenSlot:
    """One identity's token: what is cached, what is being fetched, and how the last fetch went."""

    def __init__(
        self, identity: str, kind: Kind, freshness: Freshness, backoff: Backoff, clock: Clock
    ) -> None:
        self.identity = identity  # as other replicas know it: never a cookie
        self.kind = kind
        self._freshness = freshness
        self._backoff = backoff
        self._clock = clock
        self.cached: CachedToken | None = None
        self._flight: asyncio.Task[Token] | None = None
        self._waiters = 0
        self._wanted_alone = False  # a background renewal: wanted whoever waits
        self.last_error: TokenError | None = None  # why the last fetch failed; None once one succeeds
        self.failures = 0  # failed fetches in a row
        self._retry_at_ms = 0
        self._watchers: list[Watcher] = []

    @property
    def token(self) -> Token | None:
        return self.cached.token if self.cached is not None else None

    @property
    def refreshing(self) -> bool:
        return self._flight is not None

    def awaited(self) -> bool:
        """Whether the fetch under way is still wanted: a caller waits for it, or it renews in the
        background (a fetch started for callers who have all left stops retrying)."""
        return self._wanted_alone or self._waiters > 0

    def cooling_down(self, now_ms: int) -> bool:
        return self.failures > 0 and self._flight is None and now_ms < self._retry_at_ms

    def retry_at_ms(self, now_ms: int) -> int | None:
        return self._retry_at_ms if self.cooling_down(now_ms) else None

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def accepts(self, token: Token, fetched_at_ms: int, *, requested_at_ms: int, force: bool) -> bool:
        """Whether a token another replica fetched will do for a request made at ``requested_at_ms``."""
        known = self.token
        return (
            token.kind == self.kind
            and self._freshness.is_servable(token, self._clock())
            and (known is None or token.expires_at_ms > known.expires_at_ms)
            and (not force or self._freshness.satisfies_force(fetched_at_ms, requested_at_ms))
        )

    async def get(self, fetch: Fetch, *, force: bool = False, left: Left | None = None) -> Served:
        """The token to hand out: cached if fresh, else from a (shared) fetch, waited for until the
        caller has ``left``. While renewal fails, a token above the stale margin is served at once; a
        forced call gets the error (during a cool-down, the one that started it)."""
        cached, now = self.cached, self._clock()
        if cached is not None:
            if force and self._freshness.satisfies_force(cached.fetched_at_ms, now):
                return Served(cached.token, cached=True)  # one client must not make us hammer Spotify
            if not force and now < cached.serve_until_ms:
                return Served(cached.token, cached=True)
        stale = self._usable_stale(now, force)
        if stale is not None and self.failures:
            if not self.cooling_down(now):
                self.refresh_in_background(fetch)
            return Served(stale, cached=True)
        if self.cooling_down(now):  # forcing too: clients must not turn an outage into a storm
            error = self.last_error
            assert error is not None, "cooling down implies a recorded failure"
            retry_after = max(self._retry_at_ms - now, 0) / 1000  # when the next try is due
            raise type(error)(str(error), retry_after=retry_after)
        try:
            return Served(await self._join(fetch, left), cached=False)
        except TokenError as error:
            stale = self._usable_stale(self._clock(), force)
            if stale is None or isinstance(error, CallerLeft):  # nobody is left to serve it to
                raise
            return Served(stale, cached=True)

    def refresh_in_background(self, fetch: Fetch) -> asyncio.Task[Token]:
        """The fetch under way, or a new one: either way wanted now, whether or not anyone waits for it."""
        self._wanted_alone = True
        return self._start(fetch)

    def _start(self, fetch: Fetch) -> asyncio.Task[Token]:
        if self._flight is None:
            self._flight = asyncio.get_running_loop().create_task(self._run(fetch))
            self._flight.add_done_callback(_retrieve)
        return self._flight

    def is_expired(self, now_ms: int) -> bool:
        """Nothing worth keeping: no live token, no fetch under way, no cool-down to remember."""
        if self._flight is not None or self.cooling_down(now_ms):
            return False
        token = self.token
        return token is None or not token.is_alive(now_ms)

    async def cancel(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)

    def _usable_stale(self, now_ms: int, force: bool) -> Token | None:
        """A token to serve while renewal fails; never to a caller who forced a new one."""
        token = self.token
        return token if not force and self._freshness.is_usable_stale(token, now_ms) else None

    async def _join(self, fetch: Fetch, left: Left | None) -> Token:
        flight = self._start(fetch)
        self._waiters += 1
        try:
            if left is None:
                return await asyncio.shield(flight)
            return await _until_left(flight, left)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if flight.cancelled() and current is not None and not current.cancelling():
                raise ShuttingDown("the service is shutting down") from None
            raise
        finally:
            self._waiters -= 1

    async def _run(self, fetch: Fetch) -> Token:
        try:
            token = await fetch()
        except TokenError as error:
            if error.failure.cools_down:  # not when the service was merely busy: no record either
                self.last_error = error.kept()
                self.failures += 1
                cooldown_s = self._backoff.cooldown_s(self.failures, error.retry_after)
                self._retry_at_ms = self._clock() + round(cooldown_s * 1000)
            raise
        finally:
            self._flight, self._wanted_alone = None, False
        self.hold(token, self._clock())
        return token

    def hold(self, token: Token, fetched_at_ms: int) -> None:
        """Also how a token kept from before a restart is resumed (the core judged it servable)."""
        self.cached = CachedToken(token, self._freshness.serve_until_ms(token), fetched_at_ms)
        self.last_error, self.failures, self._retry_at_ms = None, 0, 0
        for watcher in self._watchers:
            watcher(self.cached)


async def _until_left(flight: asyncio.Task[Token], left: Left) -> Token:
    """The flight's token, unless the caller leaves first; the flight itself runs on either way."""
    leaving = asyncio.ensure_future(left())
    try:
        await asyncio.wait((flight, leaving), return_when=asyncio.FIRST_COMPLETED)
        if not flight.done() and leaving.exception() is not None:
            await asyncio.wait((flight,))  # whether the caller left cannot be told: wait as usual
    finally:
        leaving.cancel()
    if not flight.done():
        raise CallerLeft("the client hung up before the token came")
    return flight.result()


def _retrieve(task: asyncio.Task[Token]) -> None:
    """Mark a background fetch's failure as seen: the slot recorded it, and waiters got it."""
    if not task.cancelled():
        task.exception()
