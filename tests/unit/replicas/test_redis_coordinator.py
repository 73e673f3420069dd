"""The coordinator's own lifecycle, with a stand-in for redis-py: Redis itself is tested for real in
tests/integration/test_redis_coordinator.py."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from spotify_tokener.domain.token import Token
from spotify_tokener.replicas.redis_coordinator import RedisCoordinator, redacted
from spotify_tokener.settings import Settings


class SwallowingRedis:
    """Commands that never return, and that turn their cancellation into a connection error, as
    redis-py can when a task is cancelled mid-command."""

    def __init__(self) -> None:
        self.pinged = asyncio.Event()

    async def ping(self) -> bool:
        self.pinged.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None
        return True

    def lock(self, *args: object, **kwargs: object) -> object:
        return object()

    async def mget(self, *keys: str) -> list[bytes | None]:
        await self.ping()
        return [None for _ in keys]

    async def aclose(self) -> None:
        return None


async def test_a_stop_during_a_ping_is_not_held_up_by_the_watchers_next_sleep() -> None:
    coordinator = RedisCoordinator(Settings.build(redis_url="redis://127.0.0.1:1/0", redis_lock_ttl=60))
    stand_in = SwallowingRedis()
    coordinator._redis = stand_in  # type: ignore[assignment]
    await coordinator.start()
    await stand_in.pinged.wait()
    async with asyncio.timeout(1):  # not the 60 s the watcher would otherwise sleep
        await coordinator.close()


async def test_a_stop_during_a_claim_does_not_fetch_here_instead() -> None:
    coordinator = RedisCoordinator(Settings.build(redis_url="redis://127.0.0.1:1/0"))
    stand_in = SwallowingRedis()
    coordinator._redis = stand_in  # type: ignore[assignment]
    fetched_here: list[str] = []

    async def fetch_here() -> Token:
        fetched_here.append("anonymous")
        raise AssertionError("fetched during a stop")

    fetching = asyncio.create_task(coordinator.fetch("anonymous", fetch_here, lambda *_: True))
    await stand_in.pinged.wait()
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetching
    assert fetched_here == []


def test_the_address_in_logs_has_no_password() -> None:
    assert redacted("redis://user:pw@cache.internal:6380/2?password=x") == "redis://cache.internal:6380/2"
    assert redacted("redis://localhost") == "redis://localhost:6379"


class FallenRedis:
    """Down for new commands; a write sent before the fall is still answered after it."""

    def __init__(self) -> None:
        self.up = False

    async def get(self, key: str) -> bytes | None:
        raise RedisConnectionError("Connection refused.")

    async def set(self, *args: object, **kwargs: object) -> bool:
        return True

    async def ping(self) -> bool:
        if not self.up:
            raise RedisConnectionError("Connection refused.")
        return True

    async def aclose(self) -> None:
        return None


async def test_only_the_watchers_ping_says_redis_is_back() -> None:
    """A late answer to a fetch's share must not make the replica flap back and forth."""
    coordinator = RedisCoordinator(Settings.build(redis_url="redis://127.0.0.1:1/0", redis_lock_ttl=60))
    stand_in = FallenRedis()
    coordinator._redis = stand_in  # type: ignore[assignment]
    assert await coordinator.read_note("anything") is None  # Redis is known down from here
    await coordinator._share("token", "anonymous", {"accessToken": "late"}, 1000)
    assert coordinator.available is False
    stand_in.up = True
    await coordinator.start()
    async with asyncio.timeout(1):
        while not coordinator.available:  # noqa: ASYNC110 - the watcher pings at once
            await asyncio.sleep(0)
    await coordinator.close()
