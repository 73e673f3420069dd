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
import secrets
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from spotify_tokener.backoff import worst_fetch_s
from spotify_tokener.clock import Clock, wall_clock_ms
from spotify_tokener.coordination import Harvest
from spotify_tokener.errors import TokenError, UpstreamError, error_named
from spotify_tokener.settings import Settings
from spotify_tokener.token import Token, dump_token, load_token

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, OSError)
WAIT_POLL_S = 0.1  # how often a waiting replica looks for the result: unnoticeable next to a fetch


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
        self._wait_s = settings.redis_lock_ttl + worst_fetch_s(
            settings.retries, settings.fetch_timeout, settings.retry_base_delay, settings.retry_after_max
        )
        self._clock = clock
        self.available = False  # until Redis first answers
        self._said_down = False

    async def fetch(self, key: str, harvest: Harvest, known: Token | None) -> Token:
        try:
            claim = await self._claim(key, known)
        except REDIS_ERRORS as error:
            self._went_down(error)
            return await harvest()
        self._came_back()
        if isinstance(claim, Token):
            return claim
        return await self._harvest_and_share(key, harvest, claim)

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.aclose()

    async def _claim(self, key: str, known: Token | None) -> Token | Lock | None:
        """A newer token to adopt, or the fetch lock, or None when waiting for it took too long.

        A failure the lock holder records while we wait is raised here, so N replicas waiting on one
        failed fetch do not each try again at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        lock = self._redis.lock(
            self._key("lock", key), timeout=self._lock_ttl, blocking=False, thread_local=False
        )
        failure_before = await self._redis.get(self._key("failure", key))
        while True:
            acquired = await lock.acquire()
            found = await self._result(key, known, failure_before)
            if found is not None:
                if acquired:
                    await self._quietly(lock.release())
                if isinstance(found, TokenError):
                    raise found
                return found
            if acquired:
                return lock
            if loop.time() >= deadline:
                log.warning("another replica's fetch is taking too long; fetching here instead")
                return None
            await asyncio.sleep(WAIT_POLL_S)

    async def _result(
        self, key: str, known: Token | None, failure_before: bytes | str | None
    ) -> Token | TokenError | None:
        raw_token, raw_failure = await self._redis.mget(self._key("token", key), self._key("failure", key))
        token = _loaded(raw_token)
        if token is not None and self._is_newer(token, known):
            return token
        if raw_failure is not None and raw_failure != failure_before:
            return load_failure(raw_failure)
        return None

    def _is_newer(self, token: Token, known: Token | None) -> bool:
        servable = token.remaining_ms(self._clock()) > self._min_life_ms
        return servable and (known is None or token.expires_at_ms > known.expires_at_ms)

    async def _harvest_and_share(self, key: str, harvest: Harvest, lock: Lock | None) -> Token:
        """Fetch, then publish the outcome before letting go of the lock, so waiters find it."""
        keeping = asyncio.create_task(self._keep(lock)) if lock is not None else None
        try:
            token = await harvest()
        except TokenError as error:
            if error.about_spotify:  # a replica's own trouble (its browser) is not the others' fate
                failure = self._redis.set(self._key("failure", key), dump_failure(error), px=self._ttl_ms())
                await self._quietly(failure)
            raise
        else:
            stored = self._redis.set(self._key("token", key), dump_token(token), pxat=token.expires_at_ms)
            await self._quietly(stored)
            return token
        finally:
            if keeping is not None:
                keeping.cancel()
            if lock is not None:
                await self._quietly(lock.release())

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
                "Redis at %s is unavailable (%s); this replica fetches on its own until it is back",
                self.address,
                type(error).__name__,
            )
        self.available, self._said_down = False, True

    def _came_back(self) -> None:
        if self._said_down:
            log.info("Redis at %s is back; sharing tokens again", self.address)
        self.available, self._said_down = True, False


def dump_failure(error: TokenError) -> bytes:
    """A failure as waiting replicas rebuild it; the nonce tells two identical failures apart."""
    record: dict[str, Any] = {
        "kind": type(error).__name__,
        "message": str(error),
        "retryAfter": error.retry_after,
        "nonce": secrets.token_hex(8),
    }
    return orjson.dumps(record)


def load_failure(raw: bytes | str) -> TokenError:
    try:
        record = orjson.loads(raw)
        retry_after = record.get("retryAfter")
        return error_named(
            str(record["kind"]),
            str(record["message"]),
            float(retry_after) if retry_after is not None else None,
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return UpstreamError("another replica's fetch failed")


def redacted(url: str) -> str:
    """Where Redis is, for logs: host, port and database, never the password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def _loaded(raw: bytes | str | None) -> Token | None:
    if raw is None:
        return None
    try:
        return load_token(raw)
    except UpstreamError:
        return None  # not ours (or from an incompatible version): fetch a proper one
