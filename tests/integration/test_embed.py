"""The embed source against the fake's embed page, the default order with the browser teaching behind
it, and the service where the browser cannot run (no Playwright, no Chromium)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.core.chain import NO_ACCOUNT_SOURCE
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.chromium import NO_PLAYWRIGHT
from tests.conftest import Running, Serve, running_server, status_of, wait_for_status
from tests.fake_spotify import FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER, EmbedPage

pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
DEFAULT = Settings().sources
MARGIN_S = Settings().expiry_buffer


async def token(running: Running, *, force: bool = False, **headers: str) -> dict[str, Any]:
    answer = await running.client.get("/api/token" + ("?force=1" if force else ""), headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def life_s(body: dict[str, Any]) -> float:
    return float(body["accessTokenExpirationTimestampMs"] - body["timestamp"]) / 1000


async def health(running: Running) -> dict[str, Any]:
    body: dict[str, Any] = (await running.client.get("/health")).json()
    return body


def direct_is_back(state: dict[str, Any]) -> bool:
    return all(source["usable"] for source in state["sources"])


async def test_alone_it_serves_the_pages_token_with_the_pages_own_expiry(
    make_settings: SettingsMaker, fake: FakeSpotify, descendants: Callable[[], set[int]]
) -> None:
    fake.embed_pool(2400.0)
    async with running_server(make_settings(sources="embed")) as running:
        body = await token(running)
        state, shown = await status_of(running), await health(running)
        alive = descendants()
    assert body["accessToken"] == fake.issued_tokens()[-1]
    assert 2390 < life_s(body) <= 2400  # the page's own, not an hour
    assert state["tokenSource"] == "embed"
    assert (fake.count("embed"), fake.token_requests, fake.count("page")) == (1, 0, 0)
    assert (shown["browser"]["launches"], alive) == (0, set())


async def test_pooled_tokens_too_short_to_serve_are_refused_and_the_page_loaded_again(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    fake.embed_pool(5.0, MARGIN_S - 10, 2400.0)  # seconds left: the first two are under the margin
    async with running_server(make_settings(sources="embed")) as running:
        body = await token(running)
    assert fake.count("embed") == 3
    assert life_s(body) > 2390


async def test_when_every_try_is_too_short_the_next_source_answers(
    make_settings: SettingsMaker, fake: FakeSpotify, caplog: pytest.LogCaptureFixture
) -> None:
    fake.embed_pool(then=60.0)
    async with running_server(make_settings(sources="embed,direct")) as running:
        body = await token(running)
        state = await status_of(running)
    assert state["tokenSource"] == "direct"
    assert fake.count("embed") == 3  # bounded: three loads, then the next source
    assert life_s(body) > 3500
    assert "too little life left to serve, 3 times" in caplog.text


@pytest.mark.parametrize(
    "case",
    [
        ("no_session", 200, "the embed page holds no session"),
        ("garbled", 200, "the embed page's __NEXT_DATA__ is garbled (not JSON)"),
        ("huge", 200, "Spotify's answer is longer than 2097152 bytes"),
        ("status", 404, "Spotify answered the embed page with HTTP 404"),
        ("status", 503, "Spotify answered the embed page with HTTP 503"),
    ],
)
async def test_a_page_without_a_usable_token_is_named_and_the_next_source_answers(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    caplog: pytest.LogCaptureFixture,
    case: tuple[EmbedPage, int, str],
) -> None:
    page, status, cause = case
    caplog.set_level(logging.INFO)
    fake.embed_answers(page, status)
    async with running_server(make_settings(sources="embed", retries=0)) as running:
        alone = await running.client.get("/api/token")
    async with running_server(make_settings(sources="embed,direct")) as running:
        behind = await token(running)
        state = await status_of(running)
    assert (alone.status_code, alone.json()["error"]) == (502, cause)
    assert UPSTREAM_SECRET_MARKER not in alone.text
    assert "token attempt 1/1 failed: anonymous, " in caplog.text
    assert f"token source embed cools down for 30 s, the next one answers: {cause}" in caplog.text
    assert (behind["success"], state["tokenSource"]) == (True, "direct")


async def test_an_account_never_gets_an_embed_token(make_settings: SettingsMaker, fake: FakeSpotify) -> None:
    fake.add_account("AQ-embed-account", "alice")
    cookie = {"Cookie": "sp_dc=AQ-embed-account"}
    async with running_server(make_settings(sources="embed")) as running:
        await token(running)
        alone = await running.client.get("/api/token", headers=cookie)
    fake.write_secret_as("key_only")  # the direct source cannot make tokens: the embed page could
    async with running_server(make_settings(sources="direct,embed", retries=0)) as running:
        await token(running)
        loads = fake.count("embed")
        behind = await running.client.get("/api/token", headers=cookie)
    assert (alone.status_code, alone.json()["error"]) == (403, NO_ACCOUNT_SOURCE)
    assert behind.status_code == 503
    assert "no secret learned" in behind.json()["error"]
    assert fake.count("embed") == loads  # not one embed load for the account
    assert all(issued.account is None for issued in fake.state.issued)


async def test_with_a_secret_only_a_browser_could_learn_the_embed_page_answers_in_seconds(
    make_settings: SettingsMaker, fake: FakeSpotify, descendants: Callable[[], set[int]]
) -> None:
    fake.write_secret_as("assembled")
    started = time.monotonic()
    async with running_server(make_settings(sources="direct,embed")) as running:
        body = await token(running)
        took_s = time.monotonic() - started
        state, shown = await status_of(running), await health(running)
        alive = descendants()
    assert body["success"] is True
    assert took_s < 5
    assert state["tokenSource"] == "embed"
    assert "no secret learned" in state["direct"]["trouble"]
    assert (shown["browser"]["launches"], alive) == (0, set())
    assert fake.token_requests == 0  # no guessed secret sent to Spotify


async def test_the_default_order_answers_at_once_and_the_browser_teaches_the_direct_source_behind(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.write_secret_as("assembled")
    async with serve(make_settings(sources=DEFAULT)) as running:
        first = await token(running)
        answered_by = (await status_of(running))["tokenSource"]
        await wait_for_status(running, lambda state: state["direct"]["totpVersion"] is not None, within_s=15)
        await wait_for_status(running, direct_is_back, within_s=5)
        after = await token(running, force=True)
        state = await status_of(running)
    assert (first["success"], answered_by) == (True, "embed")  # no client waited for the browser
    assert (after["success"], state["tokenSource"]) == (True, "direct")
    assert fake.page_token_calls() == 1  # one teaching
    assert all(call.answer.kind == "ok" for call in fake.state.calls)


async def test_where_nothing_can_be_learned_the_embed_page_serves_and_the_browser_taught_once(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.write_secret_as("key_only")
    settings = make_settings(sources=DEFAULT, source_cooldown=0.01)  # the direct source tries every time
    async with serve(settings) as running:
        await token(running)
        await wait_for_status(running, lambda state: "memory" in (state["direct"]["trouble"] or ""), 15)
        answers = [await token(running, force=True) for _ in range(3)]
        state = await status_of(running)
    assert [answer["success"] for answer in answers] == [True] * 3
    assert state["tokenSource"] == "embed"
    assert fake.page_token_calls() == 1  # the one teaching, not one per refresh
    assert fake.token_requests == 1  # and nothing guessed


@pytest.mark.parametrize("hidden", ["playwright", "chromium"])
async def test_where_the_browser_cannot_run_the_others_serve_and_it_is_said_once(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hidden: str,
) -> None:
    overrides: dict[str, Any] = {"sources": DEFAULT}
    if hidden == "playwright":
        monkeypatch.setitem(sys.modules, "playwright", None)  # as if not installed
    else:
        overrides["browser_path"] = "/nonexistent/chromium"
    async with running_server(make_settings(**overrides)) as running:
        body = await token(running)
        forced = await token(running, force=True)
        state, shown = await status_of(running), await health(running)
    why = shown["browser"]["unavailable"]
    assert why == NO_PLAYWRIGHT if hidden == "playwright" else "does not exist" in why
    assert [source["source"] for source in state["sources"]] == ["direct", "embed"]
    assert state["browser"]["unavailable"] == why  # the status says it too
    assert (body["success"], forced["success"]) == (True, True)
    assert caplog.text.count("the browser source is unavailable") == 1
    async with running_server(make_settings(**{**overrides, "sources": "browser"})) as running:
        alone = await running.client.get("/api/token")
    assert alone.status_code == 503
    assert alone.json()["error"] == f"the browser source is unavailable: {why}"
