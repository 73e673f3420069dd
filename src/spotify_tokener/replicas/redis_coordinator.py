"""Several replicas, one token: the cache and the single flight kept in Redis, consulted only when a
replica needs a fetch. The lock's holder extends it while it lives, so a replica that dies mid-fetch
loses it within ``TOKENER_REDIS_LOCK_TTL``.

Redis going away must never fail a request: the replica fetches on its own and asks Redis nothing until
its background PING answers (a Redis silent rather than down would cost every fetch its timeouts).
Keys hold identities (an account's is a hash of its cookie), never a cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from spotify_tokener.core.ports import Fetch, Wanted
from spotify_tokener.domain.clock import Clock, wall_clock_ms
from spotify_tokener.domain.errors import FetchTimeout, TokenError, failure_record, read_failure_record
from spotify_tokener.domain.token import Token, read_token_record, token_record
from spotify_tokener.settings import Settings

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, OSError)
WAIT_POLL_S = 0.1  # how often a waiting replica looks for the result: unnoticeable next to a fetch
Raw = bytes | str | None
T = TypeVar("T")
Records = tuple[Raw, Raw]  # what Redis holds for one identity: (token record, failure record)


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
        # A holder's fetch can take no longer than this, however long it had run before we came.
        self._wait_s = settings.backoff.worst_fetch_s(settings.attempt_budget)
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
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.aclose()

    async def fetch(self, identity: str, fetch_here: Fetch, wanted: Wanted) -> Token:
        claim = await self._ask(partial(self._claim, identity, wanted))
        if claim is None:
            return await fetch_here()
        if isinstance(claim, Token):
            return claim
        return await self._fetch_and_share(identity, fetch_here, claim)

    async def read_note(self, name: str) -> bytes | None:
        value = await self._ask(partial(self._redis.get, self._key("note", name)))
        return value if isinstance(value, bytes) else None

    async def write_note(self, name: str, value: bytes) -> None:
        await self._ask(partial(self._redis.set, self._key("note", name), value))

    async def _ask(self, work: Callable[[], Awaitable[T]], *, even_if_down: bool = False) -> T | None:
        """Redis's answer, or None if it fails or is known down (then only the watcher's PING asks,
        and a fetch under way: its lock, and its outcome to share)."""
        if self._said_down and not even_if_down:
            return None
        try:
            answer = await work()
        except LockError:
            raise  # not Redis's trouble: the lock expired, and may be someone else's now
        except REDIS_ERRORS as error:
            _raise_if_cancelled()
            if not self._said_down:
                log.warning(
                    "Redis at %s failed (%s: down, or refusing commands); "
                    "this replica fetches on its own until it answers again",
                    self.address,
                    type(error).__name__,
                )
            self.available, self._said_down = False, True
            return None
        self.available = not self._said_down
        return answer

    async def _watch(self) -> None:
        """Keep ``available`` true within a lock's lifetime for /health and the metrics, fetches or not."""
        while True:
            # The only way back: a command sent before Redis went down may still be answered after.
            if await self._ask(self._redis.ping, even_if_down=True) and self._said_down:
                log.info("Redis at %s is back; sharing tokens again", self.address)
                self.available, self._said_down = True, False
            await asyncio.sleep(self._lock_ttl)

    async def _claim(self, identity: str, wanted: Wanted) -> Token | Lock:
        """A token to adopt, or the fetch lock; a failure the holder records while we wait is raised, so N
        replicas waiting on one failed fetch do not each try again. Waiting ends when its fetch must have."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        lock = self._redis.lock(
            self._key("lock", identity), timeout=self._lock_ttl, blocking=False, thread_local=False
        )
        before = await self._records(identity)
        while True:
            acquired = await lock.acquire()
            held = False
            try:
                found = _outcome(wanted, before, await self._records(identity), self._clock())
                held = acquired and found is None
            finally:
                if acquired and not held:  # what Redis holds is taken, or could not be read
                    await asyncio.shield(self._quietly(lock.release))
            if held:
                return lock
            if isinstance(found, TokenError):
                raise found
            if found is not None:
                return found
            if loop.time() >= deadline:
                raise FetchTimeout(f"no token from the replica fetching it within {self._wait_s:g} s")
            await asyncio.sleep(WAIT_POLL_S)

    async def _records(self, identity: str) -> Records:
        token, failure = await self._redis.mget(self._key("token", identity), self._key("failure", identity))
        return token, failure

    async def _fetch_and_share(self, identity: str, fetch_here: Fetch, lock: Lock) -> Token:
        """Fetch, then publish the outcome before letting go of the lock, so waiters find it."""
        keeping = asyncio.create_task(self._keep(lock))
        try:
            token = await fetch_here()
        except TokenError as error:
            if error.failure.shared:  # a replica's own trouble (its browser) is not the others' fate
                await self._share("failure", identity, failure_record(error), round(self._lock_ttl * 1000))
            raise
        else:
            now = self._clock()
            await self._share("token", identity, token_record(token, now), token.expires_at_ms - now)
            return token
        finally:
            keeping.cancel()
            await asyncio.shield(self._quietly(lock.release))

    async def _share(self, record: str, identity: str, value: dict[str, Any], life_ms: int) -> None:
        """For waiters to find, best effort; PX, not PXAT: Redis before 6.2 has no PXAT."""
        raw = orjson.dumps(value)
        await self._quietly(partial(self._redis.set, self._key(record, identity), raw, px=max(1, life_ms)))

    async def _keep(self, lock: Lock) -> None:
        """Extend the lock while the fetch runs; if it expired anyway, it may be someone else's now."""
        with contextlib.suppress(LockError):
            while True:
                await asyncio.sleep(self._lock_ttl / 3)
                await self._ask(lock.reacquire, even_if_down=True)

    async def _quietly(self, work: Callable[[], Awaitable[object]]) -> None:
        """Best effort: Redis failing here must not fail a fetch that has its outcome already."""
        with contextlib.suppress(LockError):  # the lock expired: there is nothing of ours to release
            await self._ask(work, even_if_down=True)

    def _key(self, record: str, identity: str) -> str:
        return f"{self._prefix}{record}:{identity}"


def _outcome(wanted: Wanted, before: Records, now: Records, now_ms: int) -> Token | TokenError | None:
    """What to take from Redis, if anything: a token the core wants, or a failure recorded since we
    began waiting (so waiters share the holder's failure instead of each trying again)."""
    shared = read_token_record(now[0], now_ms)
    if shared is not None and wanted(*shared):
        return shared[0]
    if now[1] is not None and now[1] != before[1]:
        return read_failure_record(now[1])
    return None


def redacted(url: str) -> str:
    """Where Redis is, for logs: host, port and database, never the password or the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def _raise_if_cancelled() -> None:
    """redis-py can turn a cancellation that arrives mid-command into a connection error; the task
    must still end, or a stop would wait out the watcher's next sleep, or fetch here instead."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
