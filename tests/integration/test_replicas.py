"""Several replicas behind one Redis, each with a real Chromium: one upstream fetch between them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
import pytest
from redis.asyncio import Redis

from spotify_tokener.settings import Settings
from tests.conftest import FAST, Running, running_server
from tests.fake_spotify import Answer, FakeSpotify
from tests.prometheus import Scrape
from tests.redis_server import RedisServer

SettingsMaker = Callable[..., Settings]


@contextlib.asynccontextmanager
async def replicas(settings: Sequence[Settings]) -> AsyncIterator[list[Running]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_server(each)) for each in settings]


def shared(make_settings: SettingsMaker, redis: RedisServer, prefix: str, **overrides: object) -> Settings:
    return make_settings(redis_url=redis.url, redis_prefix=prefix, **overrides)


def launches(group: list[Running]) -> int:
    return sum(each.app.shown.browser.launches for each in group if each.app.shown.browser is not None)


@pytest.mark.parametrize("count", [2, 3])
async def test_a_burst_over_all_replicas_makes_one_upstream_fetch(
    make_settings: SettingsMaker, fake: FakeSpotify, shared_redis: RedisServer, redis_prefix: str, count: int
) -> None:
    group_settings = [shared(make_settings, shared_redis, redis_prefix) for _ in range(count)]
    async with replicas(group_settings) as group:
        requests = [group[i % count].client.get("/api/token") for i in range(90)]
        responses = await asyncio.gather(*requests)
        browsers = launches(group)
    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["accessToken"] for response in responses}) == 1
    assert fake.token_requests == 1
    assert browsers == 1  # the others waited for the result instead of starting a browser


async def test_a_forced_refresh_on_two_replicas_at_once_is_one_fetch(
    make_settings: SettingsMaker, fake: FakeSpotify, shared_redis: RedisServer, redis_prefix: str
) -> None:
    async with replicas([shared(make_settings, shared_redis, redis_prefix) for _ in range(2)]) as (a, b):
        first = (await a.client.get("/api/token")).json()["accessToken"]
        assert (await b.client.get("/api/token")).json()["accessToken"] == first
        forced = await asyncio.gather(a.client.get("/api/token?force=1"), b.client.get("/api/token?force=1"))
    tokens = {response.json()["accessToken"] for response in forced}
    assert len(tokens) == 1
    assert first not in tokens
    assert fake.token_requests == 2


async def test_account_tokens_are_shared_under_a_hash_and_expire_with_the_token(
    make_settings: SettingsMaker, fake: FakeSpotify, shared_redis: RedisServer, redis_prefix: str
) -> None:
    cookie = "AQB-a-logged-in-session-cookie-value"
    fake.add_account(cookie, "alice")
    headers = {"Cookie": f"sp_dc={cookie}"}
    async with replicas([shared(make_settings, shared_redis, redis_prefix) for _ in range(2)]) as (a, b):
        from_a = (await a.client.get("/api/token", headers=headers)).json()
        from_b = (await b.client.get("/api/token", headers=headers)).json()
        anonymous = (await b.client.get("/api/token")).json()
    client = Redis.from_url(shared_redis.url)
    keys = [key.decode() async for key in client.scan_iter(f"{redis_prefix}*")]
    values = [await client.get(key) for key in keys if ":token:" in key]
    account_key = f"{redis_prefix}token:account:{hashlib.sha256(cookie.encode()).hexdigest()}"
    ttl_ms = await client.pttl(account_key)
    await client.aclose()
    assert from_a["accessToken"] == from_b["accessToken"]
    assert from_a["isAnonymous"] is False
    assert anonymous["isAnonymous"] is True
    assert anonymous["accessToken"] != from_a["accessToken"]
    assert fake.token_requests == 2  # one anonymous, one for the account
    assert account_key in keys
    assert not any(cookie in key for key in keys)
    assert not any(value is not None and cookie.encode() in value for value in values)
    assert 0 < ttl_ms <= from_a["accessTokenExpirationTimestampMs"] - time.time() * 1000 + 1000


async def test_redis_going_away_loses_no_request(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    shared_redis: RedisServer,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Refused connections fail at once; the timeout only has to spare a live Redis on a loaded machine.
    # A PING every 0.5 s (the lock's TTL): the only way back once Redis is known down.
    settings = [
        shared(make_settings, shared_redis, redis_prefix, redis_timeout=2, redis_lock_ttl=0.5)
        for _ in range(2)
    ]
    failures: list[int] = []

    async def read_constantly(group: list[Running]) -> None:
        while True:
            for each in group:
                response = await each.client.get("/api/token")
                if response.status_code != 200:
                    failures.append(response.status_code)
            await asyncio.sleep(0.01)

    caplog.set_level(logging.INFO, logger="spotify_tokener.replicas.redis_coordinator")
    async with replicas(settings) as group:
        assert (await group[0].client.get("/api/token")).status_code == 200
        reading = asyncio.create_task(read_constantly(group))
        shared_redis.stop()
        while_down = [await each.client.get("/api/token?force=1") for each in group for _ in range(2)]
        health = (await group[0].client.get("/health")).json()
        down = Scrape((await group[0].client.get("/metrics")).text)
        shared_redis.start()
        async with asyncio.timeout(10):
            while not (await group[0].client.get("/health")).json()["redis"]["available"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        back = (await group[0].client.get("/api/token?force=1")).json()
        up = Scrape((await group[0].client.get("/metrics")).text)
        health_back = (await group[0].client.get("/health")).json()
        reading.cancel()
    client = Redis.from_url(shared_redis.url)
    stored = await client.get(f"{redis_prefix}token:anonymous")
    await client.aclose()
    assert [response.status_code for response in while_down] == [200] * 4
    assert failures == []
    assert health["redis"] == {"available": False}
    assert health_back["redis"] == {"available": True}
    assert (down.value("tokener_redis_available"), up.value("tokener_redis_available")) == (0, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("fetches on its own" in message for message in messages) == 2  # once per replica
    # Each replica's PING notices, at most once each, however many requests came.
    assert 1 <= sum("sharing tokens again" in message for message in messages) <= 2
    assert stored is not None and back["accessToken"].encode() in stored


StartService = Callable[..., tuple[subprocess.Popen[str], str]]


async def test_killing_the_replica_that_holds_the_lock_lets_another_finish(
    fake: FakeSpotify, service_process: StartService, shared_redis: RedisServer, redis_prefix: str
) -> None:
    shared = {
        "TOKENER_REDIS_URL": shared_redis.url,
        "TOKENER_REDIS_PREFIX": redis_prefix,
        "TOKENER_REDIS_LOCK_TTL": "1.5",
        "TOKENER_FETCH_TIMEOUT": str(FAST["fetch_timeout"]),
    }
    fake.answer_with(Answer("hang"))  # the first replica's fetch does not end: it holds the lock
    holder, _ = service_process(**shared)
    async with asyncio.timeout(15):
        while fake.token_requests == 0:  # noqa: ASYNC110 - the fake runs in another thread
            await asyncio.sleep(0.05)
    _, other_url = service_process(**shared)
    async with httpx.AsyncClient(base_url=other_url, timeout=30) as client:
        await asyncio.sleep(0.5)
        while_held = fake.token_requests  # the second replica waits on the lock instead of fetching
        os.killpg(holder.pid, signal.SIGKILL)  # the replica and its driver, as an OOM kill would
        started = time.monotonic()
        response = await client.get("/api/token")
        elapsed = time.monotonic() - started
    assert while_held == 1
    assert response.status_code == 200
    assert fake.token_requests == 2
    # The lock expires 1.5 s after its holder died, then one attempt: far below the worst case a waiter
    # would otherwise sit out (minutes, Backoff.worst_fetch_s), whatever the machine's load.
    assert elapsed < 1.5 + FAST["fetch_timeout"]
