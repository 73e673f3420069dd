"""The Redis coordinator against a real redis-server: adoption, waiting, take-over, failure, outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from spotify_tokener.core.ports import Wanted
from spotify_tokener.core.slot import TokenSlot
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import BrowserError, FetchTimeout, RateLimited
from spotify_tokener.domain.token import Token, token_record
from spotify_tokener.replicas.redis_coordinator import Records, RedisCoordinator
from spotify_tokener.settings import Settings
from tests.conftest import free_port
from tests.redis_server import RedisServer

KEY = "anonymous"


async def wanted(*, known: Token | None = None, force: bool = False, force_gap_s: float = 0.0) -> Wanted:
    """What the core's anonymous slot, holding ``known``, accepts from another replica."""
    settings = Settings.build(force_min_interval=force_gap_s)
    slot = TokenSlot(KEY, "anonymous", settings.freshness, settings.backoff, wall_clock_ms)
    if known is not None:

        async def fetch() -> Token:
            return known

        await slot.get(fetch)
    return partial(slot.accepts, requested_at_ms=wall_clock_ms(), force=force)


class Fetches:
    """A stand-in fetch that counts its calls and hands out distinct tokens."""

    def __init__(
        self, delay: float = 0.0, error: Exception | None = None, gate: asyncio.Event | None = None
    ) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error
        self.gate = gate  # when given, each call ends only once the test opens it

    async def __call__(self) -> Token:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.gate is not None:
            await self.gate.wait()
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
        coordinator = RedisCoordinator(Settings.build(**values))
        made.append(coordinator)
        return coordinator

    yield make
    for coordinator in made:
        await coordinator.close()


async def holding_the_lock(raw: Redis, prefix: str) -> None:
    """Until a replica holds the fetch lock: the next one to ask is then a waiter, however loaded the
    machine (a fixed head start is not enough when the first replica's claim is slow)."""
    async with asyncio.timeout(10):
        while not await raw.exists(f"{prefix}lock:{KEY}"):  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.01)


async def asking_for_the_lock(raw: Redis, times: int) -> None:
    """Until ``times`` claims of a lock were made (SET NX, taken or refused), as Redis counts them."""
    async with asyncio.timeout(10):
        while (await raw.info("commandstats")).get("cmdstat_set", {}).get("calls", 0) < times:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def raw(shared_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(shared_redis.url)
    yield client
    await client.aclose()


async def test_a_stored_token_is_adopted_without_fetching(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    first, second = coordinators(), coordinators()
    fetch_here = Fetches()
    token = await first.fetch(KEY, fetch_here, await wanted())
    adopted = await second.fetch(KEY, fetch_here, await wanted())
    assert adopted == token
    assert fetch_here.calls == 1
    assert first.available is True


async def test_a_token_no_newer_than_the_known_one_is_fetched_again(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    coordinator, fetch_here = coordinators(), Fetches()
    token = await coordinator.fetch(KEY, fetch_here, await wanted())
    renewed = await coordinator.fetch(KEY, fetch_here, await wanted(known=token))
    assert renewed != token
    assert fetch_here.calls == 2


async def test_concurrent_fetches_on_many_replicas_make_one_fetch(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    replicas = [coordinators() for _ in range(5)]
    fetch_here = Fetches(delay=0.3)
    fetches = [replica.fetch(KEY, fetch_here, await wanted()) for replica in replicas]
    tokens = await asyncio.gather(*fetches)
    assert len(set(tokens)) == 1
    assert fetch_here.calls == 1


async def test_waiters_get_the_holders_failure_instead_of_trying_again(
    coordinators: Callable[..., RedisCoordinator],
    raw: Redis,
    redis_prefix: str,
) -> None:
    holder, waiter = coordinators(), coordinators()
    fail_now = asyncio.Event()
    failing = Fetches(
        error=RateLimited("Spotify rate-limited the token request (429)", retry_after=7), gate=fail_now
    )
    spare = Fetches()
    holding = asyncio.create_task(holder.fetch(KEY, failing, await wanted()))
    await holding_the_lock(raw, redis_prefix)
    waiting = asyncio.create_task(waiter.fetch(KEY, spare, await wanted()))
    await asking_for_the_lock(raw, times=2)  # the holder's claim, then the waiter's: it waits now
    fail_now.set()
    with pytest.raises(RateLimited) as raised:
        await waiting
    with pytest.raises(RateLimited):
        await holding
    assert str(raised.value) == "Spotify rate-limited the token request (429)"
    assert raised.value.retry_after == 7
    assert (failing.calls, spare.calls) == (1, 0)


@pytest.mark.parametrize(
    "own_trouble",
    [BrowserError("the browser failed to start"), FetchTimeout("no token from Spotify within 20 s")],
    ids=["browser", "timeout"],
)
async def test_a_holders_own_trouble_is_not_passed_on(
    coordinators: Callable[..., RedisCoordinator], own_trouble: Exception, raw: Redis, redis_prefix: str
) -> None:
    holder, waiter = coordinators(), coordinators()
    broken, healthy = Fetches(delay=0.3, error=own_trouble), Fetches()
    holding = asyncio.create_task(holder.fetch(KEY, broken, await wanted()))
    await holding_the_lock(raw, redis_prefix)
    token = await waiter.fetch(KEY, healthy, await wanted())
    with pytest.raises(type(own_trouble)):
        await holding
    assert token.access_token.startswith("BQ-1-")
    assert (broken.calls, healthy.calls) == (1, 1)


async def test_a_dead_holders_lock_is_taken_over_when_it_expires(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}lock:{KEY}", "a replica that died", px=800)
    fetch_here = Fetches()
    started = time.monotonic()
    await coordinators().fetch(KEY, fetch_here, await wanted())
    assert fetch_here.calls == 1
    assert time.monotonic() - started >= 0.7


async def test_a_live_holder_keeps_its_lock_past_the_ttl(
    coordinators: Callable[..., RedisCoordinator],
    raw: Redis,
    redis_prefix: str,
) -> None:
    # Extended every 0.5 s: the holder's extension may come a second late (a loaded machine) and still
    # keep the lock, through a fetch that lasts more than twice its time to live.
    holder, waiter = coordinators(redis_lock_ttl=1.5), coordinators(redis_lock_ttl=1.5)
    slow, spare = Fetches(delay=3.5), Fetches()
    holding = asyncio.create_task(holder.fetch(KEY, slow, await wanted()))
    await holding_the_lock(raw, redis_prefix)
    adopted = await waiter.fetch(KEY, spare, await wanted())
    assert adopted == await holding
    assert spare.calls == 0


async def test_the_token_expires_from_redis_with_itself(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    token = await coordinators().fetch(KEY, Fetches(), await wanted())
    ttl_ms = await raw.pttl(f"{redis_prefix}token:{KEY}")
    assert abs(token.expires_at_ms - wall_clock_ms() - ttl_ms) < 2_000


async def test_garbage_in_redis_is_ignored(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}token:{KEY}", b"\xff not a token")
    await raw.set(f"{redis_prefix}failure:{KEY}", b"not json either")
    fetch_here = Fetches()
    await coordinators().fetch(KEY, fetch_here, await wanted())
    assert fetch_here.calls == 1


async def test_without_redis_every_fetch_is_made_here_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    coordinator = RedisCoordinator(Settings.build(redis_url=url, redis_timeout=0.5))
    fetch_here = Fetches()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            await coordinator.fetch(KEY, fetch_here, await wanted())
    await coordinator.close()
    assert fetch_here.calls == 3
    assert coordinator.available is False
    warnings = [
        record.getMessage() for record in caplog.records if "fetches on its own" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text


async def test_a_redis_known_down_is_not_asked_again_until_its_ping_answers() -> None:
    """A Redis that takes connections and never answers would cost every fetch its timeouts."""
    heard: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            heard.append(data)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    coordinator = RedisCoordinator(Settings.build(redis_url=url, redis_timeout=0.2))
    fetch_here = Fetches()
    try:
        await coordinator.fetch(KEY, fetch_here, await wanted())  # times out: Redis is known down
        asked = len(heard)
        for _ in range(5):
            await coordinator.fetch(KEY, fetch_here, await wanted())
            await coordinator.write_note("learned", b"x")
            assert await coordinator.read_note("learned") is None
    finally:
        await coordinator.close()
        server.close()
    assert asked > 0
    assert len(heard) == asked  # not one more byte: only the background PING asks it again
    assert fetch_here.calls == 6


async def test_a_forced_fetch_does_not_take_a_token_older_than_itself(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    first, second = coordinators(), coordinators()
    fetch_here = Fetches()
    stored = await first.fetch(KEY, fetch_here, await wanted())
    forced = await second.fetch(KEY, fetch_here, await wanted(force=True))
    assert forced != stored
    assert fetch_here.calls == 2


async def test_forced_fetches_close_together_share_one_across_replicas(
    coordinators: Callable[..., RedisCoordinator],
) -> None:
    first, second = coordinators(), coordinators()
    fetch_here = Fetches()
    stored = await first.fetch(KEY, fetch_here, await wanted(force=True, force_gap_s=10))
    assert await second.fetch(KEY, fetch_here, await wanted(force=True, force_gap_s=10)) == stored
    assert fetch_here.calls == 1


async def test_a_forced_fetch_joins_one_under_way_on_another_replica(
    coordinators: Callable[..., RedisCoordinator],
    raw: Redis,
    redis_prefix: str,
) -> None:
    holder, joiner = coordinators(), coordinators()
    fetch_here = Fetches(delay=0.3)
    holding = asyncio.create_task(holder.fetch(KEY, fetch_here, await wanted(force=True)))
    await holding_the_lock(raw, redis_prefix)
    assert await joiner.fetch(KEY, fetch_here, await wanted(force=True)) == await holding
    assert fetch_here.calls == 1


async def test_an_account_token_under_the_anonymous_identity_is_never_adopted(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    account = Token("BQ-someones-account", wall_clock_ms() + 3_600_000, "client", False)
    await raw.set(f"{redis_prefix}token:{KEY}", orjson.dumps(token_record(account, wall_clock_ms())))
    fetch_here = Fetches()
    assert (await coordinators().fetch(KEY, fetch_here, await wanted())).is_anonymous
    assert fetch_here.calls == 1


async def test_waiting_on_a_holder_is_bounded_by_the_longest_fetch(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    await raw.set(f"{redis_prefix}lock:{KEY}", "a replica that is stuck", px=60_000)
    # The longest fetch: one attempt, its wait for a place included, then each source's own time.
    settings = {"retries": 0, "queue_timeout": 0.2, "direct_timeout": 0.1, "fetch_timeout": 0.3}
    coordinator, fetch_here = coordinators(sources="direct,browser", **settings), Fetches()
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match=r"replica fetching it within 0\.6 s"):
        await coordinator.fetch(KEY, fetch_here, await wanted())
    assert time.monotonic() - started < 2
    assert fetch_here.calls == 0


async def test_redis_failing_right_after_the_lock_was_taken_leaves_no_lock_behind(
    coordinators: Callable[..., RedisCoordinator], raw: Redis, redis_prefix: str
) -> None:
    coordinator, fetch_here = coordinators(), Fetches()
    reads = 0
    records = coordinator._records

    async def failing_second_read(identity: str) -> Records:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise RedisConnectionError("connection lost")
        return await records(identity)

    coordinator._records = failing_second_read  # type: ignore[method-assign]
    await coordinator.fetch(KEY, fetch_here, await wanted())
    assert fetch_here.calls == 1  # carried on alone
    assert await raw.exists(f"{redis_prefix}lock:{KEY}") == 0


async def test_availability_follows_redis_without_any_fetch(redis_prefix: str) -> None:
    server = RedisServer(free_port()).start()
    coordinator = RedisCoordinator(
        Settings.build(redis_url=server.url, redis_lock_ttl=0.2, redis_timeout=0.5)
    )

    async def until(available: bool) -> None:
        async with asyncio.timeout(10):
            while coordinator.available is not available:  # noqa: ASYNC110 - the watcher's own pace
                await asyncio.sleep(0.05)

    try:
        await coordinator.start()
        await until(True)
        server.stop()
        await until(False)
        server.start()
        await until(True)
    finally:
        await coordinator.close()
        server.stop()
