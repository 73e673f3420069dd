"""Each way Spotify can fail, through the real browser: a short cause out, recovery after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve, free_port, running_server
from tests.fake_spotify import Answer, FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER
from tests.prometheus import Scrape

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]

FAULTS = [
    pytest.param(Answer("status", status=500), 502, "HTTP 500", id="500"),
    pytest.param(Answer("status", status=403), 502, "HTTP 403", id="403"),
    # Retry-After 1 s: still longer than the test's retry delay, so it governs the wait before a retry.
    pytest.param(Answer("rate_limited", retry_after="1"), 503, "rate-limited", id="429"),
    pytest.param(Answer("rate_limited"), 503, "rate-limited", id="429-no-retry-after"),
    pytest.param(Answer("malformed"), 502, "malformed", id="malformed-json"),
    pytest.param(Answer("truncated"), 502, "malformed", id="truncated-json"),
    pytest.param(Answer("error_body"), 502, "with HTTP 400", id="error-body"),
    pytest.param(Answer("expired"), 502, "expired or about to expire", id="expired-token"),
    pytest.param(Answer("short"), 502, "expired or about to expire", id="short-token"),
    pytest.param(Answer("hang"), 504, "no token from Spotify within 2 s", id="hang"),
]


@pytest.mark.parametrize(("answer", "status", "cause"), FAULTS)
async def test_each_fault_is_a_short_json_error_then_recovery(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, *, answer: Answer, status: int, cause: str
) -> None:
    fake.answer_with(answer)
    async with serve(make_settings(retries=0, fetch_timeout=2)) as running:
        started = time.monotonic()
        failed = await running.client.get("/api/token")
        elapsed = time.monotonic() - started
        fake.reset()
        recovered = await running.client.get("/api/token?force=1")
    assert failed.status_code == status
    body = failed.json()
    assert body["success"] is False
    assert cause in body["error"]
    assert set(body) == {"success", "error", "timestamp"}
    assert UPSTREAM_SECRET_MARKER not in failed.text
    assert elapsed < 5
    assert recovered.status_code == 200


async def test_rate_limit_passes_retry_after_on(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer("rate_limited", retry_after="42"))
    async with serve(make_settings(retries=0)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "42"


async def test_a_page_that_never_asks_for_a_token_times_out(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.state.skip_token_call = True
    async with serve(make_settings(retries=0, fetch_timeout=1.5)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 504
    assert fake.count("page") >= 1
    assert fake.token_requests == 0


async def test_a_broken_page_is_reported(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.state.page_status = 503
    async with serve(make_settings(retries=0)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 502
    assert response.json()["error"] == "the Spotify web player answered HTTP 503"


async def test_failures_are_retried_with_doubling_delays(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer("status", status=500), Answer("status", status=502), Answer("malformed"))
    async with serve(make_settings(retries=3, retry_base_delay=0.3)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 200
    assert fake.token_requests == 4
    assert fake.count("page") == 4  # one page load per attempt
    # From each failed answer to the next attempt's page load: the wait alone, without the page loads,
    # whose durations vary with the machine's load by more than the 0.3 s the waits differ by.
    answered = [call.at for call in fake.state.calls[:-1]]
    waits = [page - failure for failure, page in zip(answered, fake.state.page_loads_at[1:], strict=True)]
    assert waits[0] >= 0.3 and waits[1] >= 0.6 and waits[2] >= 1.2
    assert waits[0] < waits[1] < waits[2]


async def test_retries_end_after_three(make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve) -> None:
    fake.answer_with(then=Answer("status", status=500))
    async with serve(make_settings(retries=3, retry_base_delay=0.05)) as running:
        response = await running.client.get("/api/token")
        status = (await running.client.get("/api/token/status")).json()["status"]
    assert response.status_code == 502
    assert fake.token_requests == 4
    assert status["lastError"] == "Spotify answered the token request with HTTP 500"
    assert status["consecutiveFailures"] == 1


async def test_retry_after_is_honoured(make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve) -> None:
    fake.answer_with(Answer("rate_limited", retry_after="1"))
    async with serve(make_settings(retries=1, retry_base_delay=0.05)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 200
    first, second = (call.at for call in fake.state.calls)
    assert second - first >= 1.0


async def test_the_old_token_is_served_while_renewal_fails(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    # Tokens live 3 s; above a 2 s buffer they are fresh, so after 1.1 s renewal is due; after 2.6 s
    # less than the 0.5 s stale margin is left.
    fake.answer_with(then=Answer(life_s=3))
    settings = make_settings(
        expiry_buffer=2, refresh_window=2, stale_margin=0.5, refresh_interval=60, retries=0
    )
    async with serve(settings) as running:
        good = (await running.client.get("/api/token")).json()
        fake.answer_with(then=Answer("status", status=500))
        await asyncio.sleep(1.1)
        stale = await running.client.get("/api/token")
        forced = await running.client.get("/api/token?force=true")
        await asyncio.sleep(1.5)
        expired = await running.client.get("/api/token")
    assert stale.status_code == 200
    assert stale.json()["accessToken"] == good["accessToken"]
    assert stale.json()["cached"] is True
    assert forced.status_code == 502
    assert expired.status_code == 502


async def test_alternating_failures_and_successes(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(retries=0)) as running:
        outcomes = []
        for i in range(4):
            if i % 2:
                fake.answer_with(Answer("status", status=500))
            outcomes.append((await running.client.get("/api/token?force=1")).status_code)
        final = await running.client.get("/api/token")
    assert outcomes == [200, 502, 200, 502]
    assert final.status_code == 200
    assert final.json()["cached"] is True


async def test_the_refresher_renews_before_clients_notice(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer(life_s=4), then=Answer(life_s=3600))
    settings = make_settings(expiry_buffer=1, refresh_window=3, stale_margin=0.5, refresh_interval=60)
    async with serve(settings) as running:
        first = (await running.client.get("/api/token")).json()
        await asyncio.sleep(2.5)
        later = (await running.client.get("/api/token")).json()
    assert fake.token_requests == 2
    assert later["accessToken"] != first["accessToken"]
    assert later["cached"] is True


async def test_a_slow_answer_within_the_timeout_is_a_token(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer("slow", delay_s=2.5))
    async with serve(make_settings(retries=0, fetch_timeout=8)) as running:
        started = time.monotonic()
        response = await running.client.get("/api/token")
        waited = time.monotonic() - started
        status = (await running.client.get("/api/token/status")).json()["status"]
    assert response.status_code == 200
    assert response.json()["accessToken"] in fake.issued_tokens()
    assert waited >= 2.5  # the token really came from the slow answer...
    assert fake.token_requests == 1  # ...in one attempt, not a retry after a timeout
    assert status["lastError"] is None


async def status_of(running: Running) -> dict[str, Any]:
    state: dict[str, Any] = (await running.client.get("/api/token/status")).json()["status"]
    return state


async def wait_for_status(running: Running, check: Callable[[dict[str, Any]], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not check(await status_of(running)):  # noqa: ASYNC110 - polls the service over HTTP
            await asyncio.sleep(0.05)


# Tokens of 91 s against a 90 s buffer: fresh for about a second, then due for renewal and still
# usable for a minute. A buffer above 60 s also makes the fake's "short" (60 s) token too short.
STALE_SETTINGS: dict[str, Any] = {
    "expiry_buffer": 90,
    "refresh_window": 90,
    "stale_margin": 30,
    "retries": 1,  # a cold start slower than the 2 s timeout on a loaded machine still gets its token
    "fetch_timeout": 2,
    "cooldown_max": 1.5,
}


@pytest.mark.parametrize(("answer", "status", "cause"), FAULTS)
async def test_each_fault_keeps_the_old_token_for_callers_and_heals_by_itself(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, *, answer: Answer, status: int, cause: str
) -> None:
    fake.answer_with(Answer(life_s=91), then=answer)
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


async def test_an_unreachable_web_player_names_the_network_error(make_settings: SettingsMaker) -> None:
    closed = free_port()  # nothing listens there: as if open.spotify.com could not be reached
    rules = f"MAP open.spotify.com 127.0.0.1:{closed}, MAP open.spotifycdn.com 127.0.0.1:{closed}"
    settings = make_settings(retries=0, browser_args=f'"--host-resolver-rules={rules}"')
    async with running_server(settings) as running:
        response = await running.client.get("/api/token")
        metrics = Scrape((await running.client.get("/metrics")).text)
    assert response.status_code == 502
    assert (
        response.json()["error"] == "the Spotify web player could not be loaded (net::ERR_CONNECTION_REFUSED)"
    )
    assert metrics.value("tokener_fetch_attempts_total", kind="anonymous", outcome="unreachable") == 1
