"""/metrics scraped from the real service, with a real Chromium fetching from the fake Spotify."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Serve
from tests.fake_spotify import Answer, FakeSpotify
from tests.prometheus import Scrape

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
COOKIE = "AQMetrics-session-cookie_0123456789abcdef"


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(response.text)


def assert_no_secret(found: Scrape, fake: FakeSpotify) -> None:
    for token in fake.issued_tokens():
        assert token not in found.text
    assert COOKIE not in found.text


async def test_a_fetch_then_a_cache_hit(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        for _ in range(2):
            assert (await running.client.get("/api/token")).status_code == 200
        found = await scrape(running.client)
    assert fake.token_requests == 1
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="ok") == 1
    assert found.total("tokener_fetch_attempts_total") == 1
    assert found.value("tokener_fetch_duration_seconds_count", kind="anonymous", outcome="ok") == 1
    assert 0 < found.value("tokener_fetch_duration_seconds_sum", kind="anonymous", outcome="ok") < 10
    hits = found.value("tokener_token_requests_total", kind="anonymous", result="hit")
    misses = found.value("tokener_token_requests_total", kind="anonymous", result="miss")
    assert hits >= 1  # the first request may join the start-up fetch or find its token cached
    assert hits + misses == 2
    assert found.value("tokener_http_requests_total", route="/api/token", status="200") == 2
    assert found.value("tokener_http_requests_total", route="/health", status="200") >= 1
    assert 3500 < found.value("tokener_token_expires_in_seconds") <= 3600
    assert found.value("tokener_token_valid") == 1
    assert found.value("tokener_browser_running") == 1
    assert found.value("tokener_browser_launches_total") == 1
    assert found.value("process_resident_memory_bytes") > 0
    assert_no_secret(found, fake)


async def test_a_failed_attempt_then_its_retry(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(Answer("status", status=500))
    async with serve(make_settings(retries=1)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        found = await scrape(running.client)
    assert fake.token_requests == 2
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="upstream") == 1
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="ok") == 1
    assert found.value("tokener_fetch_retries_total", kind="anonymous") == 1


async def test_a_failure_the_client_sees(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.answer_with(then=Answer("status", status=500))
    # No retry, and a cool-down long enough that nothing else is fetched during the test.
    async with serve(make_settings(retries=0, retry_base_delay=5)) as running:
        answer = await running.client.get("/api/token")
        found = await scrape(running.client)
    assert answer.status_code == 502
    assert fake.token_requests == 1
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="upstream") == 1
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="ok") == 0
    assert found.value("tokener_token_requests_total", kind="anonymous", result="error") == 1
    assert found.value("tokener_http_requests_total", route="/api/token", status="502") == 1
    assert found.value("tokener_token_expires_in_seconds") == 0
    assert found.value("tokener_token_valid") == 0


async def test_unknown_paths_are_one_route(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        for path in ("/nope", "/admin/.git/config", "/api/token/../../etc/passwd"):
            assert (await running.client.get(path)).status_code == 404
        found = await scrape(running.client)
    assert found.value("tokener_http_requests_total", route="other", status="404") == 3
    assert found.label_values("tokener_http_requests_total", "route") <= {"other", "/health", "/api/token"}
    for fragment in ("nope", ".git", "passwd"):
        assert fragment not in found.text


async def test_an_account_is_counted_never_shown(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.add_account(COOKIE, "metrics")
    cookie = {"Cookie": f"theme=dark; sp_dc={COOKIE}", "App-Platform": "WebPlayer"}
    async with serve(make_settings()) as running:
        account = await running.client.get("/api/token", headers=cookie)
        found = await scrape(running.client)
    assert account.status_code == 200
    assert account.json()["isAnonymous"] is False
    assert found.value("tokener_fetch_attempts_total", kind="account", outcome="ok") == 1
    assert found.value("tokener_token_requests_total", kind="account", result="miss") == 1
    assert found.value("tokener_accounts_cached") == 1
    assert_no_secret(found, fake)


async def test_with_an_api_key_metrics_need_it(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(api_key="scrape-key")) as running:
        refused = await running.client.get("/metrics")
        found = await scrape(running.client, Authorization="Bearer scrape-key")
    assert refused.status_code == 401
    assert found.value("tokener_http_requests_total", route="/metrics", status="401") == 1
    assert "scrape-key" not in found.text
