"""Several replicas, one token: the cache and the single flight kept in Redis.

Every replica still serves from its own memory; Redis is consulted only when a replica needs a
fetch. It then adopts a newer token another replica stored, waits while another replica holds the
fetch lock, or takes the lock and fetches itself. The holder extends the lock while it lives, so a
replica that dies mid-fetch loses it within ``TOKENER_REDIS_LOCK_TTL`` and another takes over.

Redis going away must never fail a request: the replica then fetches on its own, says so once, and
shares again as soon as Redis answers. Keys hold identities as the service names them (an account's
is a hash of its cookie), never a cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from spotify_tokener.backoff import worst_fetch_s
from spotify_tokener.clock import Clock, wall_clock_ms
from spotify_tokener.coordination import ANONYMOUS_KEY, Harvest
from spotify_tokener.errors import FetchTimeout, TokenError
from spotify_tokener.settings import Settings
from spotify_tokener.shared_records import (
    SharedToken,
    dump_failure,
    dump_shared_token,
    load_failure,
    load_shared_token,
    redacted,
)
from spotify_tokener.token import Token

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, OSError)
WAIT_POLL_S = 0.1  # how often a waiting replica looks for the result: unnoticeable next to a fetch
Raw = bytes | str | None
Snapshot = tuple[Raw, Raw]  # what Redis holds for one identity: (token record, failure record)


class RedisCoordinator:
    def __init__(self, settings: Settings, clock: Clock = wall_clock_ms) -> None:
        url = settings.redis_url.get_secret_value()
        self._redis = Redis.from_url(
            url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry=Retry(NoBackoff(), 1),  # one reconnect: a pooled connection may predate a restart
        )
        self.address = redacted(url)
        self._prefix = settings.redis_prefix
        self._lock_ttl = settings.redis_lock_ttl
        self._min_life_ms = round(settings.expiry_buffer * 1000)
        self._force_gap_ms = round(settings.force_min_interval * 1000)
        # A holder's fetch can take no longer than this, however long it had run before we came.
        self._wait_s = worst_fetch_s(
            settings.retries, settings.fetch_timeout, settings.retry_base_delay, settings.retry_after_max
        )
        self._clock = clock
        self._watching: asyncio.Task[None] | None = None
        self.available = False  # until Redis first answers
        self._said_down = False

    async def start(self) -> None:
        self._watching = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
            self._watching = None
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.aclose()

    async def fetch(self, key: str, harvest: Harvest, known: Token | None, *, force: bool = False) -> Token:
        try:
            claim = await self._claim(key, known, force)
        except REDIS_ERRORS as error:
            self._went_down(error)
            return await harvest()
        self._came_back()
        if isinstance(claim, Token):
            return claim
        return await self._harvest_and_share(key, harvest, claim)

    async def _watch(self) -> None:
        """Keep ``available`` true to the minute for /health and the metrics, fetches or not."""
        while True:
            try:
                await self._redis.ping()
            except REDIS_ERRORS as error:
                self._went_down(error)
            else:
                self._came_back()
            await asyncio.sleep(self._lock_ttl)

    async def _claim(self, key: str, known: Token | None, force: bool) -> Token | Lock:
        """A token to adopt, or the fetch lock.

        A failure the lock holder records while we wait is raised here, so N replicas waiting on one
        failed fetch do not each try again at once. Waiting ends when the holder's fetch must have.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        lock = self._redis.lock(
            self._key("lock", key), timeout=self._lock_ttl, blocking=False, thread_local=False
        )
        before = await self._snapshot(key)
        while True:
            acquired = await lock.acquire()
            try:
                found = self._outcome(key, known, force, before, await self._snapshot(key))
            except BaseException:
                if acquired:
                    await asyncio.shield(self._quietly(lock.release()))
                raise
            if found is not None:
                if acquired:
                    await self._quietly(lock.release())
                if isinstance(found, TokenError):
                    raise found
                return found
            if acquired:
                return lock
            if loop.time() >= deadline:
                raise FetchTimeout(f"no token from the replica fetching it within {self._wait_s:g} s")
            await asyncio.sleep(WAIT_POLL_S)

    async def _snapshot(self, key: str) -> Snapshot:
        raw_token, raw_failure = await self._redis.mget(self._key("token", key), self._key("failure", key))
        return raw_token, raw_failure

    def _outcome(
        self, key: str, known: Token | None, force: bool, before: Snapshot, now: Snapshot
    ) -> Token | TokenError | None:
        """What a replica that wants a token newer than ``known`` should take from Redis, if anything.

        A forced fetch wants a token no older than its request: one stored while it waited (it
        joined that fetch), or one just fetched (forced fetches closer than TOKENER_FORCE_MIN_INTERVAL
        share one, as they do within a replica).
        """
        shared = load_shared_token(now[0])
        joined = now[0] != before[0]  # stored while this replica waited: it joined that fetch
        if (
            shared is not None
            and self._adoptable(key, shared.token, known)
            and (not force or joined or self._just_fetched(shared))
        ):
            return shared.token
        if now[1] is not None and now[1] != before[1]:
            return load_failure(now[1])
        return None

    def _adoptable(self, key: str, token: Token, known: Token | None) -> bool:
        right_kind = token.is_anonymous == (key == ANONYMOUS_KEY)
        servable = token.remaining_ms(self._clock()) > self._min_life_ms
        newer = known is None or token.expires_at_ms > known.expires_at_ms
        return right_kind and servable and newer

    def _just_fetched(self, shared: SharedToken) -> bool:
        return self._clock() - shared.fetched_at_ms < self._force_gap_ms

    async def _harvest_and_share(self, key: str, harvest: Harvest, lock: Lock) -> Token:
        """Fetch, then publish the outcome before letting go of the lock, so waiters find it."""
        keeping = asyncio.create_task(self._keep(lock))
        try:
            token = await harvest()
        except TokenError as error:
            if error.about_spotify:  # a replica's own trouble (its browser) is not the others' fate
                record = dump_failure(error)
                await self._quietly(self._redis.set(self._key("failure", key), record, px=self._ttl_ms()))
            raise
        else:
            now = self._clock()
            record = dump_shared_token(token, now)
            life_ms = max(1, token.expires_at_ms - now)  # PX, not PXAT: Redis before 6.2 has no PXAT
            await self._quietly(self._redis.set(self._key("token", key), record, px=life_ms))
            return token
        finally:
            keeping.cancel()
            await asyncio.shield(self._quietly(lock.release()))

    async def _keep(self, lock: Lock) -> None:
        """Extend the lock while the fetch runs; if it expired anyway, it may be someone else's now."""
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            try:
                await lock.reacquire()
            except LockError:
                return
            except REDIS_ERRORS as error:
                self._went_down(error)

    async def _quietly(self, work: Awaitable[object]) -> None:
        """Best effort: Redis failing here must not fail a fetch that has its outcome already."""
        try:
            await work
        except LockError:
            pass  # the lock expired: there is nothing of ours to release
        except REDIS_ERRORS as error:
            self._went_down(error)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    def _ttl_ms(self) -> int:
        return round(self._lock_ttl * 1000)

    def _went_down(self, error: BaseException) -> None:
        if not self._said_down:
            log.warning(
                "Redis at %s failed (%s: down, or refusing commands); "
                "this replica fetches on its own until it answers again",
                self.address,
                type(error).__name__,
            )
        self.available, self._said_down = False, True

    def _came_back(self) -> None:
        if self._said_down:
            log.info("Redis at %s is back; sharing tokens again", self.address)
        self.available, self._said_down = True, False
