"""Each way Spotify can fail, through the real browser: a short cause out, recovery after."""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve, free_port, running_server, wait_for_status
from tests.fake_spotify import Answer, FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER
from tests.integration.fault_cases import FAULTS, HANG_TIMEOUT_S
from tests.prometheus import Scrape

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
ATTEMPT_MS = re.compile(r"attempt \d+/\d+ \w+: anonymous, (\d+) ms")


@pytest.mark.parametrize(("answer", "status", "cause"), FAULTS)
async def test_each_fault_is_a_short_json_error_then_recovery(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, *, answer: Answer, status: int, cause: str
) -> None:
    fake.answer_with(answer)
    async with serve(make_settings(retries=0, fetch_timeout=HANG_TIMEOUT_S)) as running:
        started = time.monotonic()
        failed = await running.client.get("/api/token")
        elapsed = time.monotonic() - started
        fake.reset()
        await after_the_cool_down(running)  # forcing during it gets the same error (test_service.py)
        recovered = await running.client.get("/api/token?force=1")
    assert failed.status_code == status
    body = failed.json()
    assert body["success"] is False
    assert cause in body["error"]
    assert set(body) == {"success", "error", "timestamp"}
    assert UPSTREAM_SECRET_MARKER not in failed.text
    assert elapsed < 2 * HANG_TIMEOUT_S  # one attempt: retries=0
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
    async with serve(make_settings(retries=0, fetch_timeout=HANG_TIMEOUT_S)) as running:  # the page loads
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
    assert response.json()["error"] == "Spotify answered the web player page with HTTP 503"


async def after_the_cool_down(running: Running) -> None:
    await wait_for_status(running, lambda state: not state["coolingDown"], within_s=5)


def attempt_waits(records: list[logging.LogRecord]) -> list[float]:
    """Seconds between one attempt's end and the next one's start, from the attempts' log lines."""
    attempts = [(record.created, ATTEMPT_MS.search(record.getMessage())) for record in records]
    spans = [(end - int(found[1]) / 1000, end) for end, found in attempts if found is not None]
    return [start - end for (_, end), (start, _) in itertools.pairwise(spans)]


async def test_failures_are_retried_with_doubling_delays(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    fake.answer_with(Answer("status", status=500), Answer("malformed"))
    with caplog.at_level(logging.INFO, logger="spotify_tokener.core.fetcher"):
        # The schedule itself, without the jitter (tests/unit/domain/test_backoff.py has its own tests).
        async with serve(make_settings(retries=2, retry_base_delay=0.5, retry_jitter=0)) as running:
            response = await running.client.get("/api/token")
    assert response.status_code == 200
    assert fake.token_requests == 3
    assert fake.count("page") == 3  # one page load per attempt
    # Each wait as the service saw it: from an attempt's end (its log line) to the next one's start (the
    # next line, less the duration it states). Page loads, whose times vary with the machine's load by
    # more than the waits differ by, are not in it. Durations are logged in whole milliseconds; a wait
    # may end late on a loaded machine, but never as late as the next delay.
    waits = attempt_waits(caplog.records)
    for wait, delay in zip(waits, (0.5, 1), strict=True):
        assert delay - 0.002 <= wait < 2 * delay, waits


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


async def test_alternating_failures_and_successes(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(retries=0)) as running:
        outcomes = []
        for i in range(4):
            if i % 2:
                fake.answer_with(Answer("status", status=500))
            await after_the_cool_down(running)
            outcomes.append((await running.client.get("/api/token?force=1")).status_code)
        final = await running.client.get("/api/token")
    assert outcomes == [200, 502, 200, 502]
    assert final.status_code == 200
    assert final.json()["cached"] is True


async def test_a_slow_answer_within_the_timeout_is_a_token(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer("slow", delay_s=2.5))
    async with serve(make_settings(retries=0, fetch_timeout=8)) as running:
        response = await running.client.get("/api/token")  # joins the start-up fetch, under way
        answered_at = time.time()
        status = (await running.client.get("/api/token/status")).json()["status"]
    assert response.status_code == 200
    assert response.json()["accessToken"] in fake.issued_tokens()
    # The token really came from the slow answer: counted from the fake's receipt of the call (the
    # client's wait can be shorter, as the start-up fetch began before its request)...
    assert answered_at - fake.state.calls[0].at >= 2.5
    assert fake.token_requests == 1  # ...in one attempt, not a retry after a timeout
    assert status["lastError"] is None


async def test_an_unreachable_web_player_names_the_network_error(make_settings: SettingsMaker) -> None:
    closed = free_port()  # nothing listens there: as if open.spotify.com could not be reached
    rules = f"open.spotify.com:443:127.0.0.1:{closed},open.spotifycdn.com:443:127.0.0.1:{closed}"
    settings = make_settings(retries=0, connect_to=rules)
    async with running_server(settings) as running:
        response = await running.client.get("/api/token")
        metrics = Scrape((await running.client.get("/metrics")).text)
    assert response.status_code == 502
    assert (
        response.json()["error"] == "the Spotify web player could not be loaded (net::ERR_CONNECTION_REFUSED)"
    )
    assert metrics.value("tokener_fetch_attempts_total", kind="anonymous", outcome="unreachable") == 1
