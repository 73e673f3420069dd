"""Renewal: the refresher renews before clients notice, the old token is served while renewal fails,
and repeated failures open a circuit that closes by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Serve, status_of, wait_for_status
from tests.fake_spotify import Answer, FakeSpotify

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]


async def test_the_old_token_is_served_while_renewal_fails(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    # Tokens live 10 s: fresh above the 8 s buffer, then served as stale until the 1 s margin. Renewal
    # starts at 2 s and fails; its page load may take seconds on a machine running two test suites.
    fake.answer_with(Answer(life_s=10), then=Answer("status", status=500))
    settings = make_settings(
        expiry_buffer=8, refresh_window=8, stale_margin=1, refresh_interval=60, retries=0, cooldown_max=60
    )
    async with serve(settings) as running:
        good = (await running.client.get("/api/token")).json()
        await wait_for_status(running, lambda state: state["consecutiveFailures"] == 1, within_s=10)
        stale = await running.client.get("/api/token")
        forced = await running.client.get("/api/token?force=true")
        await wait_for_status(running, lambda state: state["timeUntilExpiry"] <= 1000, within_s=10)
        expired = await running.client.get("/api/token")
    assert stale.status_code == 200
    assert stale.json()["accessToken"] == good["accessToken"]
    assert stale.json()["cached"] is True
    assert forced.status_code == 502
    assert expired.status_code == 502


async def test_the_refresher_renews_before_clients_notice(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    # 14 s tokens, served above a 1 s buffer, renewed once past half their servable life (6.5 s): a
    # renewal has 6.5 s to finish before a client would have to wait for one, page loads on a machine
    # running two test suites at once included.
    fake.answer_with(Answer(life_s=14), then=Answer(life_s=3600))
    settings = make_settings(expiry_buffer=1, refresh_window=13, stale_margin=0.5, refresh_interval=60)
    async with serve(settings) as running:
        first = (await running.client.get("/api/token")).json()
        serve_until_s = first["accessTokenExpirationTimestampMs"] / 1000 - settings.expiry_buffer
        renewed = [first]
        while renewed[-1]["accessToken"] == first["accessToken"]:
            assert time.time() < serve_until_s, "not renewed before clients would have noticed"
            renewed.append((await running.client.get("/api/token")).json())
            await asyncio.sleep(0.1)
    assert fake.token_requests == 2
    assert all(answer["cached"] for answer in renewed[1:])  # no client ever waited for the renewal


async def test_repeated_failures_open_the_circuit_then_it_closes_by_itself(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(then=Answer("status", status=500))
    settings = make_settings(
        retries=1, retry_base_delay=0.5, retry_jitter=0, cooldown_max=10, fetch_timeout=10
    )
    async with serve(settings) as running:
        # The start-up fetch fails (two attempts), the refresher tries again after 1 s and fails too:
        # the next cool-down is 2 s, and nothing may reach Spotify during it.
        await wait_for_status(running, lambda state: state["consecutiveFailures"] == 2, within_s=20)
        cooling = await status_of(running)
        sent = fake.token_requests
        answers = []
        while time.time() * 1000 < cooling["retryAt"] - 500:
            started = time.monotonic()
            response = await running.client.get("/api/token")  # back to back: a loaded machine
            answers.append((response, time.monotonic() - started))  # shortens the window enough
        sent_during_cool_down = fake.token_requests - sent
        fake.reset()
        await wait_for_status(running, lambda state: state["isValid"], within_s=15)
        recovered = await running.client.get("/api/token")
        closed = await status_of(running)
    assert cooling["coolingDown"] is True
    assert cooling["lastError"] == "Spotify answered the token request with HTTP 500"
    assert sent == 4
    assert len(answers) >= 10
    assert sent_during_cool_down == 0
    for response, waited in answers:
        assert response.status_code == 502
        assert response.json()["error"] == cooling["lastError"]
        assert 1 <= int(response.headers["retry-after"]) <= 2  # what is left of the 2 s cool-down
        assert waited < settings.fetch_timeout / 4  # answered from the breaker, not by a fetch
    assert recovered.status_code == 200
    assert closed["coolingDown"] is False
    assert closed["retryAt"] is None
    assert closed["consecutiveFailures"] == 0
