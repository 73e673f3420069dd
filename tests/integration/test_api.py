"""Every endpoint against a real Chromium and the local fake, through the default Spotify URL."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.manager import BrowserManager
from tests.conftest import Running, Serve
from tests.fake_spotify import FakeSpotify
from tests.lavasrc import fetch_token

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]


async def test_token_is_fetched_then_cached(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        first = await running.client.get("/api/token")
        second = await running.client.get("/api/token")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    token = first.json()
    assert token["success"] is True
    assert token["accessToken"] in fake.issued_tokens()
    assert token["isAnonymous"] is True
    assert token["clientId"]
    assert second.json()["cached"] is True
    assert second.json()["accessToken"] == token["accessToken"]
    assert fake.token_requests == 1


async def test_the_page_is_driven_like_a_real_visit(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        assert (await running.client.get("/api/token")).status_code == 200
    call = fake.state.calls[0]
    assert call.query["reason"] == ["init"]
    assert call.query["totpVer"] == ["61"]
    assert "HeadlessChrome" not in call.user_agent
    assert "Chrome/" in call.user_agent
    assert "sp_t" in call.cookies
    assert "sp_dc" not in call.cookies
    assert fake.count("server_time") == 1


async def test_heavy_and_analytics_requests_never_leave_the_browser(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        assert (await running.client.get("/api/token")).status_code == 200
    assert fake.count("bundle") == 1
    for blocked in ("image", "font", "css", "beacon"):
        assert fake.count(blocked) == 0, blocked


async def test_a_configured_user_agent_is_used(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) TestAgent/1.0"
    async with serve(make_settings(user_agent=agent)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
    assert fake.state.calls[0].user_agent == agent


@pytest.mark.parametrize(
    ("word", "forces"),
    [("1", True), ("TRUE", True), ("Yes", True), ("0", False), ("false", False), ("NO", False), ("", False)],
)
async def test_force_words(shared_service: Running, fake: FakeSpotify, word: str, forces: bool) -> None:
    first = (await shared_service.client.get("/api/token")).json()
    again = (await shared_service.client.get("/api/token", params={"force": word})).json()
    assert again["cached"] is (not forces)
    assert (again["accessToken"] != first["accessToken"]) is forces
    assert fake.token_requests == (1 if forces else 0)


async def test_a_bad_force_word_never_reaches_the_browser(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        await running.client.get("/api/token")
        response = await running.client.get("/api/token?force=please")
    assert response.status_code == 400
    assert response.json()["error"] == "Validation error"
    assert fake.token_requests == 1


async def test_refresh_endpoint(make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve) -> None:
    async with serve(make_settings()) as running:
        first = (await running.client.get("/api/token")).json()
        refreshed = await running.client.post("/api/token/refresh")
        wrong_method = await running.client.get("/api/token/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["cached"] is False
    assert refreshed.json()["accessToken"] != first["accessToken"]
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "Method not allowed"


async def test_status_follows_the_token(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        token = (await running.client.get("/api/token")).json()
        status = (await running.client.get("/api/token/status")).json()
    assert status["success"] is True
    state = status["status"]
    assert state["hasToken"] and state["isValid"] and not state["shouldProactivelyRefresh"]
    assert state["expiresAt"] == token["accessTokenExpirationTimestampMs"]
    assert state["isRefreshing"] is False
    assert 3_500_000 < state["timeUntilExpiry"] <= 3_600_000
    assert state["timeUntilProactiveRefresh"] == pytest.approx(state["timeUntilExpiry"] - 600_000, abs=50)
    assert state["lastError"] is None


async def test_health_reports_the_browser(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        await running.client.get("/api/token")
        health = (await running.client.get("/health")).json()
    assert health["status"] == "healthy"
    assert health["uptime"] > 0
    assert health["browser"]["running"] is True
    assert health["browser"]["launches"] == 1
    assert health["browser"]["executable"]
    assert health["memory"]["rss"] > 0
    assert health["memory"]["browserRss"] > 0
    assert health["redis"] is None  # not configured


async def test_unknown_paths_and_docs(make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve) -> None:
    async with serve(make_settings()) as running:
        missing = await running.client.get("/api/tokens")
        page = await running.client.get("/swagger")
        bundle = await running.client.get("/swagger/swagger-ui-bundle.js")
        spec = await running.client.get("/openapi.json")
        head = await running.client.head("/health")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Endpoint not found"
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert spec.json()["paths"]["/api/token"]["get"]["parameters"][0]["name"] == "force"
    assert head.status_code == 200 and head.content == b""


async def test_no_token_ever_reaches_the_log(
    make_settings: SettingsMaker, fake: FakeSpotify, caplog: pytest.LogCaptureFixture, serve: Serve
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(make_settings()) as running:
        await running.client.get("/api/token")
        await running.client.get("/api/token?force=1")
    assert "token attempt 1/4 ok: anonymous" in caplog.text
    for token in fake.issued_tokens():
        assert token not in caplog.text


async def test_forced_fetches_within_the_interval_share_one(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(force_min_interval=30)) as running:
        first = (await running.client.get("/api/token?force=1")).json()
        again = await running.client.get("/api/token?force=1")
        refreshed = await running.client.post("/api/token/refresh")
    assert again.json()["accessToken"] == first["accessToken"]
    assert again.json()["cached"] is True
    assert refreshed.json()["accessToken"] == first["accessToken"]
    assert fake.token_requests == 1  # the start-up fetch already was the first; forcing adds none


async def test_an_api_key_locks_the_token_but_not_health(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(api_key="k1,k2")) as running:
        locked = await running.client.get("/api/token")
        health = await running.client.get("/health")
        endpoint = f"{running.client.base_url}/api/token?key=k2"
        lavasrc = await fetch_token(endpoint)
        bearer = await running.client.get("/api/token", headers={"Authorization": "Bearer k1"})
    assert locked.status_code == 401
    assert health.status_code == 200
    assert lavasrc is not None
    assert lavasrc.access_token in fake.issued_tokens()
    assert bearer.status_code == 200


async def test_swagger_ui_renders_every_endpoint_offline(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, warm_browser: BrowserManager
) -> None:
    """In a real browser that may reach nothing but the service: the UI must read our OpenAPI 3.1.
    The module's warm browser, so a Chromium that dies while starting is relaunched (tests/conftest.py)."""
    settings = make_settings()
    base = f"http://{settings.host}:{settings.port}"
    outside: list[str] = []
    async with serve(settings), warm_browser.context() as context:
        page = await context.new_page()
        page.on(
            "request", lambda request: None if request.url.startswith(base) else outside.append(request.url)
        )
        await page.goto(f"{base}/swagger")
        await page.wait_for_selector(".opblock", timeout=15_000)
        shown = await page.locator(".opblock-summary-path").all_inner_texts()
        errors = await page.locator(".errors-wrapper").count()
    assert {"/api/token", "/api/token/refresh", "/api/token/status", "/health", "/metrics"} <= set(shown)
    assert errors == 0
    assert outside == []
