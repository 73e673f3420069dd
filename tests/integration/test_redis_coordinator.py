"""The Redis coordinator against a real redis-server: adoption, waiting, take-over, failure, outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from spotify_tokener.clock import wall_clock_ms
from spotify_tokener.errors import BrowserError, RateLimited
from spotify_tokener.redis_coordinator import RedisCoordinator, redacted
from spotify_tokener.settings import Settings
from spotify_tokener.token import Token
from tests.conftest import free_port
from tests.redis_server import RedisServer

KEY = "anonymous"


class Harvests:
    """A stand-in harvest that counts its calls and hands out distinct tokens."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error

    async def __call__(self) -> Token:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return Token(f"BQ-{self.calls}-{time.monotonic_ns()}", wall_clock_ms() + 3_600_000, "client", True)


@pytest.fixture
async def coordinators(
    shared_redis: RedisServer, redis_prefix: str
) -> AsyncIterator[Callable[..., RedisCoordinator]]:
    made: list[RedisCoordinator] = []

    def make(**overrides: Any) -> RedisCoordinator:
        values = {
            "redis_url": shared_redis.url,
            "redis_prefix": redis_prefix,
            "redis_lock_ttl": 1,
            **overrides,
        }
        coordinator = RedisCoordinator(Settings(**values))
        made.append(coordinator)
        return coordinator

    yield make
    for coordinator in made:
        await coordinator.close()


@pytest.fixture
async def raw(shared_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(shared_redis.url)
    yield client
    await client.aclose()


async def test_a_stored_token_is_adopted_without_harvesting(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    first, second = coordinators(), coordinators()
    harvest = Harvests()
    token = await first.fetch(KEY, harvest, None)
    adopted = await second.fetch(KEY, harvest, None)
    assert adopted == token
    assert harvest.calls == 1
    assert first.available is True


async def test_a_token_no_newer_than_the_known_one_is_fetched_again(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    coordinator, harvest = coordinators(), Harvests()
    token = await coordinator.fetch(KEY, harvest, None)
    renewed = await coordinator.fetch(KEY, harvest, token)
    assert renewed != token
    assert harvest.calls == 2


async def test_concurrent_fetches_on_many_replicas_make_one_harvest(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    replicas = [coordinators() for _ in range(5)]
    harvest = Harvests(delay=0.3)
    tokens = await asyncio.gather(*(replica.fetch(KEY, harvest, None) for replica in replicas))
    assert len(set(tokens)) == 1
    assert harvest.calls == 1


async def test_waiters_get_the_holders_failure_instead_of_trying_again(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    holder, waiter = coordinators(), coordinators()
    failing = Harvests(
        delay=0.3, error=RateLimited("Spotify rate-limited the token request (429)", retry_after=7)
    )
    spare = Harvests()
    holding = asyncio.create_task(holder.fetch(KEY, failing, None))
    await asyncio.sleep(0.1)
    with pytest.raises(RateLimited) as raised:
        await waiter.fetch(KEY, spare, None)
    with pytest.raises(RateLimited):
        await holding
    assert str(raised.value) == "Spotify rate-limited the token request (429)"
    assert raised.value.retry_after == 7
    assert (failing.calls, spare.calls) == (1, 0)


async def test_a_holders_own_browser_trouble_is_not_passed_on(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    holder, waiter = coordinators(), coordinators()
    broken, healthy = Harvests(delay=0.3, error=BrowserError("the browser failed to start")), Harvests()
    holding = asyncio.create_task(holder.fetch(KEY, broken, None))
    await asyncio.sleep(0.1)
    token = await waiter.fetch(KEY, healthy, None)
    with pytest.raises(BrowserError):
        await holding
    assert token.access_token.startswith("BQ-1-")
    assert (broken.calls, healthy.calls) == (1, 1)


async def test_a_dead_holders_lock_is_taken_over_when_it_expires(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}lock:{KEY}", "a replica that died", px=800)
    harvest = Harvests()
    started = time.monotonic()
    await coordinators().fetch(KEY, harvest, None)
    assert harvest.calls == 1
    assert time.monotonic() - started >= 0.7


async def test_a_live_holder_keeps_its_lock_past_the_ttl(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    holder, waiter = coordinators(redis_lock_ttl=0.5), coordinators(redis_lock_ttl=0.5)
    slow, spare = Harvests(delay=1.5), Harvests()
    holding = asyncio.create_task(holder.fetch(KEY, slow, None))
    await asyncio.sleep(0.1)
    adopted = await waiter.fetch(KEY, spare, None)
    assert adopted == await holding
    assert spare.calls == 0


async def test_the_token_expires_from_redis_with_itself(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    token = await coordinators().fetch(KEY, Harvests(), None)
    ttl_ms = await raw.pttl(f"{redis_prefix}token:{KEY}")
    assert abs(token.expires_at_ms - wall_clock_ms() - ttl_ms) < 2_000


async def test_garbage_in_redis_is_ignored(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}token:{KEY}", b"\xff not a token")
    await raw.set(f"{redis_prefix}failure:{KEY}", b"not json either")
    harvest = Harvests()
    await coordinators().fetch(KEY, harvest, None)
    assert harvest.calls == 1


async def test_without_redis_every_fetch_is_harvested_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    coordinator = RedisCoordinator(Settings(redis_url=url, redis_timeout=0.5))
    harvest = Harvests()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            await coordinator.fetch(KEY, harvest, None)
    await coordinator.close()
    assert harvest.calls == 3
    assert coordinator.available is False
    warnings = [record.getMessage() for record in caplog.records if "unavailable" in record.getMessage()]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text


def test_the_address_in_logs_has_no_password() -> None:
    assert redacted("redis://user:pw@cache.internal:6380/2") == "redis://cache.internal:6380/2"
    assert redacted("redis://localhost") == "redis://localhost:6379"
