"""The attacks of issue 12, reproduced at a bounded size: a burst of accounts, a flood of dead cookies,
more fetches in flight than the account cache holds, clients that hang up. Each test fails without the
bound it checks (RELIABILITY.md)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve
from tests.fake_spotify import Answer, FakeSpotify

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
DEFAULTS = Settings()  # the declared defaults, whatever this shell's TOKENER_ variables say
PLACES_FOR_ACCOUNTS = DEFAULTS.max_contexts - 1  # one is the anonymous token's


def with_cookie(sp_dc: str) -> dict[str, str]:
    return {"Cookie": f"sp_dc={sp_dc}"}


def live_accounts(fake: FakeSpotify, name: str, count: int) -> list[str]:
    """``count`` cookies the fake accepts, each its own account."""
    cookies = [f"AQ{name}-{n:02d}-0123456789abcdef" for n in range(count)]
    for cookie in cookies:
        fake.add_account(cookie, cookie)
    return cookies


def account_calls(fake: FakeSpotify) -> Counter[str]:
    return Counter(call.cookies["sp_dc"] for call in fake.state.calls if "sp_dc" in call.cookies)


async def read_anonymous_until(running: Running, done: asyncio.Future[Any]) -> list[httpx.Response]:
    """Anonymous reads through the service (a query keeps them off the hot answer) until ``done``."""
    reads = []
    while not done.done():
        reads.append(await running.client.get("/api/token?force=0"))
        await asyncio.sleep(0.1)
    return reads


async def test_sixty_accounts_at_once_are_all_answered_within_seconds(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    cookies = live_accounts(fake, "burst", 60)
    queue_timeout = 3
    async with serve(make_settings(queue_timeout=queue_timeout)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        started = time.monotonic()
        burst = asyncio.gather(*(running.client.get("/api/token", headers=with_cookie(c)) for c in cookies))
        reads = await read_anonymous_until(running, burst)
        answers = await burst
        took = time.monotonic() - started
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) == {200, 503}, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 503)
    assert [read.status_code for read in reads] == [200] * len(reads)
    assert took < queue_timeout + 7  # the queue's budget, then the last attempts (about 0.5 s unloaded)
    assert sum(account_calls(fake).values()) <= PLACES_FOR_ACCOUNTS + DEFAULTS.queue_size


async def test_a_flood_of_dead_cookies_leaves_the_anonymous_token_renewing_on_time(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    """Five new dead cookies a second for 12 s, while the anonymous token, living 10 s, is renewed every
    3 s: the real timings (an hour's token, renewed 10 minutes early) compressed, so that the flood spans
    four renewals, as a minute's flood would span the last minutes of a real token's life."""
    fake.answer_with(then=Answer(life_s=10))
    settings = make_settings(expiry_buffer=2, refresh_window=7, stale_margin=1, refresh_interval=1)
    flood_s, per_s = 12, 5
    async with serve(settings) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        started = time.monotonic()

        async def flood() -> list[httpx.Response]:
            sent = []
            for n in range(flood_s * per_s):
                cookie = f"AQdead-{n:03d}-0123456789abcdef"
                sent.append(
                    asyncio.create_task(running.client.get("/api/token", headers=with_cookie(cookie)))
                )
                await asyncio.sleep(1 / per_s)
            return list(await asyncio.gather(*sent))

        flooding = asyncio.ensure_future(flood())
        reads = await read_anonymous_until(running, flooding)
        refused = await flooding
        flooded_s = time.monotonic() - started
    assert Counter(answer.status_code for answer in refused).keys() <= {401, 503}
    for read in reads:
        assert read.status_code == 200
        body = read.json()
        assert body["accessTokenExpirationTimestampMs"] - body["timestamp"] > 2000  # never past the buffer
    assert len({read.json()["accessToken"] for read in reads}) >= math.ceil(flood_s / 8)  # 8 s each at most
    per_minute = DEFAULTS.new_accounts_per_minute  # as many at once, then as many a minute
    assert sum(account_calls(fake).values()) <= per_minute + flooded_s * per_minute / 60 + 1


async def test_a_slot_whose_fetch_is_running_is_not_evicted(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    """Six accounts, three requests each, with room for two accounts: one fetch per account."""
    cookies = live_accounts(fake, "six", 6)
    async with serve(make_settings(max_accounts=2)) as running:
        requests = [
            running.client.get("/api/token", headers=with_cookie(c)) for _ in range(3) for c in cookies
        ]
        answers = await asyncio.gather(*requests)
    assert [answer.status_code for answer in answers] == [200] * 18
    assert account_calls(fake) == Counter(cookies)


async def test_a_client_that_hangs_up_leaves_no_retries_behind(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(then=Answer("status", status=500))
    async with serve(make_settings(retry_base_delay=0.5, retry_jitter=0)) as running:
        with pytest.raises(httpx.ReadTimeout):
            await running.client.get("/api/token", headers=with_cookie("AQleaves-0123"), timeout=0.3)
        async with asyncio.timeout(20):  # the attempt it left behind still reaches Spotify
            while not account_calls(fake):  # noqa: ASYNC110 - the fake runs in another thread
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5 + 1 + 0.5)  # the first two retries' waits, had there been any
    assert account_calls(fake) == Counter({"AQleaves-0123": 1})
