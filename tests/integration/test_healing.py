"""Renewal failing while a token is cached: callers keep the old token, nothing hammers Spotify, and
the service heals by itself once the fault is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve
from tests.fake_spotify import Answer, FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER
from tests.integration.fault_cases import HANG_TIMEOUT_S, HEALING_FAULTS

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.long_running]

SettingsMaker = Callable[..., Settings]


async def test_the_old_token_is_served_while_renewal_fails(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    # Tokens live 6 s: fresh above the 4 s buffer, then served as stale until the 1 s margin.
    fake.answer_with(Answer(life_s=6), then=Answer("status", status=500))
    settings = make_settings(
        expiry_buffer=4, refresh_window=4, stale_margin=1, refresh_interval=60, retries=0, cooldown_max=60
    )
    async with serve(settings) as running:
        good = (await running.client.get("/api/token")).json()
        await wait_for_status(running, lambda state: not state["isValid"], within_s=10)
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
    # 6 s tokens, served above a 1 s buffer, renewed once past half their servable life (2.5 s): a
    # renewal has 2.5 s to finish before a client would have to wait for one.
    fake.answer_with(Answer(life_s=6), then=Answer(life_s=3600))
    settings = make_settings(expiry_buffer=1, refresh_window=5, stale_margin=0.5, refresh_interval=60)
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


async def status_of(running: Running) -> dict[str, Any]:
    state: dict[str, Any] = (await running.client.get("/api/token/status")).json()["status"]
    return state


async def wait_for_status(running: Running, check: Callable[[dict[str, Any]], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not check(await status_of(running)):  # noqa: ASYNC110 - polls the service over HTTP
            await asyncio.sleep(0.05)


# Tokens of 90.5 s against a 90 s buffer: fresh for half a second, then due for renewal and still
# usable for a minute. A buffer above 60 s also makes the fake's "short" (60 s) token too short.
STALE_SETTINGS: dict[str, Any] = {
    "expiry_buffer": 90,
    "refresh_window": 90,
    "stale_margin": 30,
    "retries": 0,
    "fetch_timeout": HANG_TIMEOUT_S,
    "cooldown_max": 1,
}


@pytest.mark.parametrize(("answer", "status", "cause"), HEALING_FAULTS)
async def test_each_fault_keeps_the_old_token_for_callers_and_heals_by_itself(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, *, answer: Answer, status: int, cause: str
) -> None:
    fake.answer_with(Answer(life_s=90.5), then=answer)
    async with serve(make_settings(**STALE_SETTINGS)) as running:
        good = (await running.client.get("/api/token")).json()
        await wait_for_status(running, lambda state: not state["isValid"], within_s=5)
        served = await running.client.get("/api/token")
        forced = await running.client.get("/api/token?force=1")
        failing = await status_of(running)
        fake.reset()  # the fault is gone; nobody forces from here on
        await wait_for_status(running, lambda state: state["isValid"], within_s=20)
        healed = await running.client.get("/api/token")
    assert served.status_code == 200
    assert served.json()["accessToken"] == good["accessToken"]
    assert served.json()["cached"] is True
    assert forced.status_code == status
    assert set(forced.json()) == {"success", "error", "timestamp"}
    assert cause in forced.json()["error"]
    assert UPSTREAM_SECRET_MARKER not in forced.text
    assert cause in failing["lastError"]
    assert healed.status_code == 200
    assert healed.json()["accessToken"] != good["accessToken"]
    assert healed.json()["accessToken"] in fake.issued_tokens()


async def test_repeated_failures_open_the_circuit_then_it_closes_by_itself(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(then=Answer("status", status=500))
    settings = make_settings(retries=1, retry_base_delay=0.5, cooldown_max=5, fetch_timeout=10)
    async with serve(settings) as running:
        # The start-up fetch fails (two attempts), the refresher tries again after 1 s and fails too:
        # the next cool-down is 2 s, and nothing may reach Spotify during it.
        await wait_for_status(running, lambda state: state["consecutiveFailures"] == 2, within_s=20)
        cooling = await status_of(running)
        sent = fake.token_requests
        answers = []
        while time.time() * 1000 < cooling["retryAt"] - 500:
            started = time.monotonic()
            response = await running.client.get("/api/token")
            answers.append((response, time.monotonic() - started))
            await asyncio.sleep(0.05)
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
