"""Account tokens from sp_dc: fetched apart, cached apart, never leaked either way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Serve
from tests.fake_spotify import FakeSpotify
from tests.lavasrc import LavaSrcError, fetch_token

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]

ALICE = "AQAlice-session-cookie_0123456789abcdef"
BOB = "AQBob-session-cookie_0123456789abcdef"
DEAD = "AQDead-session-cookie_0123456789abcdef"
LAVASRC_HEADERS = {"App-Platform": "WebPlayer"}


@pytest.fixture
def accounts(fake: FakeSpotify) -> FakeSpotify:
    fake.add_account(ALICE, "alice")
    fake.add_account(BOB, "bob")
    return fake


def account_tokens(fake: FakeSpotify, name: str) -> set[str]:
    return {issued.access_token for issued in fake.state.issued if issued.account == name}


def anonymous_tokens(fake: FakeSpotify) -> set[str]:
    return {issued.access_token for issued in fake.state.issued if issued.anonymous}


def as_cookie(value: str, *others: str) -> dict[str, str]:
    return {"Cookie": "; ".join([*others, f"sp_dc={value}"]), **LAVASRC_HEADERS}


async def test_a_cookie_gets_its_account_token(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        first = await running.client.get("/api/token", headers=as_cookie(ALICE, "theme=dark", "sp_t=mine"))
        again = await running.client.get("/api/token", headers=as_cookie(ALICE))
        anonymous = await running.client.get("/api/token")
        status = (await running.client.get("/api/token/status")).json()
    assert first.status_code == 200
    body = first.json()
    assert body["isAnonymous"] is False
    assert body["accessToken"] in account_tokens(accounts, "alice")
    assert again.json() | {"timestamp": 0} == body | {"cached": True, "timestamp": 0}
    assert anonymous.json()["isAnonymous"] is True
    assert anonymous.json()["accessToken"] in anonymous_tokens(accounts)
    account_calls = [call for call in accounts.state.calls if "sp_dc" in call.cookies]
    assert len(account_calls) == 1
    assert account_calls[0].cookies["sp_dc"] == ALICE
    assert "theme" not in account_calls[0].cookies
    assert account_calls[0].cookies.get("sp_t") != "mine"
    assert status["status"]["accountsCached"] == 1
    assert ALICE not in str(status)


async def test_cookies_split_over_several_headers_are_read(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        headers = [("Cookie", "theme=dark"), ("Cookie", f"sp_dc={BOB}"), ("App-Platform", "WebPlayer")]
        response = await running.client.get("/api/token", headers=headers)
    assert response.json()["accessToken"] in account_tokens(accounts, "bob")


async def test_force_and_refresh_renew_the_account_token(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        first = (await running.client.get("/api/token", headers=as_cookie(ALICE))).json()
        forced = (await running.client.get("/api/token?force=1", headers=as_cookie(ALICE))).json()
        refreshed = (await running.client.post("/api/token/refresh", headers=as_cookie(ALICE))).json()
    tokens = {first["accessToken"], forced["accessToken"], refreshed["accessToken"]}
    assert len(tokens) == 3
    assert tokens <= account_tokens(accounts, "alice")
    assert not forced["isAnonymous"]
    assert not refreshed["isAnonymous"]


async def test_a_concurrent_mix_never_crosses_over(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        callers = {"anon": {}, "alice": as_cookie(ALICE), "bob": as_cookie(BOB)}
        order = [name for _ in range(15) for name in callers]
        responses = await asyncio.gather(
            *(running.client.get("/api/token", headers=callers[name]) for name in order)
        )
        forced = await asyncio.gather(
            *(running.client.get("/api/token?force=1", headers=callers[name]) for name in callers)
        )
    for name, response in [*zip(order, responses, strict=True), *zip(callers, forced, strict=True)]:
        token = response.json()["accessToken"]
        expected = anonymous_tokens(accounts) if name == "anon" else account_tokens(accounts, name)
        assert token in expected, name
    for call in accounts.state.calls:
        assert call.cookies.get("sp_dc") in {None, ALICE, BOB}
    assert sum(1 for call in accounts.state.calls if "sp_dc" not in call.cookies) == 2
    assert sum(1 for call in accounts.state.calls if call.cookies.get("sp_dc") == ALICE) == 2


async def test_a_dead_cookie_is_refused_not_swapped(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        response = await running.client.get("/api/token", headers=as_cookie(DEAD))
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "sp_dc cookie was not accepted"
    assert set(body) == {"success", "error", "timestamp"}
    assert DEAD not in response.text
    assert sum(1 for call in accounts.state.calls if call.cookies.get("sp_dc") == DEAD) == 1


@pytest.mark.parametrize("cookie", ["sp_dc=", "sp_dc", "sp_dc=bad value", "sp_dc=a; sp_dc=b"])
async def test_a_malformed_cookie_is_a_400_that_reaches_no_browser(
    make_settings: SettingsMaker, accounts: FakeSpotify, cookie: str, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        await running.client.get("/api/token")
        response = await running.client.get("/api/token", headers={"Cookie": cookie})
    assert response.status_code == 400
    assert response.json()["error"] == "Validation error"
    assert "sp_dc" in response.json()["details"]
    assert accounts.token_requests == 1


async def test_the_cookie_limit_is_the_browsers(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    """Chromium refuses a cookie whose name and value pass 4,096 characters: a 400, not a crashed fetch."""
    longest = "L" * (4096 - len("sp_dc"))
    accounts.add_account(longest, "longest")
    async with serve(make_settings()) as running:
        taken = await running.client.get("/api/token", headers=as_cookie(longest))
        refused = await running.client.get("/api/token", headers=as_cookie(longest + "L"))
    assert taken.status_code == 200
    assert taken.json()["accessToken"] in account_tokens(accounts, "longest")
    assert refused.status_code == 400
    assert "at most 4096" in refused.json()["details"]
    assert sum(1 for call in accounts.state.calls if "sp_dc" in call.cookies) == 1


async def test_accounts_can_be_refused(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(allow_accounts=False)) as running:
        refused = await running.client.get("/api/token", headers=as_cookie(ALICE))
        anonymous = await running.client.get("/api/token")
    assert refused.status_code == 403
    assert "disabled" in refused.json()["error"]
    assert anonymous.status_code == 200
    assert all("sp_dc" not in call.cookies for call in accounts.state.calls)


async def test_the_cookie_never_reaches_a_log_line(
    make_settings: SettingsMaker, accounts: FakeSpotify, caplog: pytest.LogCaptureFixture, serve: Serve
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(make_settings(retries=0)) as running:
        await running.client.get("/api/token", headers=as_cookie(ALICE))
        await running.client.get("/api/token", headers=as_cookie(DEAD))
        await running.client.get("/api/token", headers={"Cookie": f"sp_dc={BOB} x"})
    assert "account" in caplog.text
    for secret in (ALICE, BOB, DEAD, *accounts.issued_tokens()):
        assert secret not in caplog.text


async def test_lavasrc_gets_both_tokens(
    make_settings: SettingsMaker, accounts: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings()) as running:
        endpoint = f"{running.client.base_url}/api/token"
        anonymous = await fetch_token(endpoint)
        account = await fetch_token(endpoint, sp_dc=ALICE)
        with pytest.raises(LavaSrcError, match="401"):
            await fetch_token(endpoint, sp_dc=DEAD)
    assert anonymous is not None
    assert account is not None
    assert anonymous.access_token in anonymous_tokens(accounts)
    assert account.access_token in account_tokens(accounts, "alice")
    minutes_left = (min(anonymous.expires_at_ms, account.expires_at_ms) - time.time() * 1000) / 60_000
    assert minutes_left > 5  # LavaSrc caches to the exact expiry: it must get minutes, not seconds


async def test_lavasrc_sees_a_failure_as_a_failure(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.state.page_status = 503
    async with serve(make_settings(retries=0)) as running:
        endpoint = f"{running.client.base_url}/api/token"
        with pytest.raises(LavaSrcError, match="502"):
            await fetch_token(endpoint)
        with pytest.raises(httpx.HTTPError):
            await fetch_token("http://127.0.0.1:9/api/token")
