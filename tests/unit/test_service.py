from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from spotify_tokener.accounts import account_key
from spotify_tokener.clock import wall_clock_ms
from spotify_tokener.coordination import ANONYMOUS_KEY, Harvest
from spotify_tokener.errors import BrowserMissing, RateLimited, ShuttingDown, TokenError, UpstreamError
from spotify_tokener.service import TokenService
from spotify_tokener.settings import Settings
from spotify_tokener.token import Token
from tests.scripted import ScriptedHarvester

SettingsMaker = Callable[..., Settings]


@pytest.fixture
async def stopper() -> AsyncIterator[list[TokenService]]:
    services: list[TokenService] = []
    yield services
    for service in services:
        await service.stop()


def service_with(
    harvester: ScriptedHarvester, settings: Settings, stopper: list[TokenService]
) -> TokenService:
    service = TokenService(harvester, settings)
    stopper.append(service)
    return service


async def test_first_fetch_then_cache(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    harvester = ScriptedHarvester()
    service = service_with(harvester, unit_settings(), stopper)
    first = await service.get_token()
    second = await service.get_token()
    assert (first.cached, second.cached) == (False, True)
    assert first.token == second.token
    assert len(harvester.calls) == 1


async def test_a_burst_shares_one_fetch(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    harvester = ScriptedHarvester(delay=0.05)
    service = service_with(harvester, unit_settings(), stopper)
    served = await asyncio.gather(*(service.get_token() for _ in range(200)))
    assert len(harvester.calls) == 1
    assert {s.token.access_token for s in served} == {"BQ-anon-1"}
    assert not any(s.cached for s in served)


async def test_force_during_a_fetch_joins_it(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(delay=0.05)
    service = service_with(harvester, unit_settings(), stopper)
    plain, forced = await asyncio.gather(service.get_token(), service.get_token(force=True))
    assert plain.token == forced.token
    assert len(harvester.calls) == 1


async def test_force_fetches_even_when_fresh(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester()
    service = service_with(harvester, unit_settings(), stopper)
    first = await service.get_token()
    forced = await service.get_token(force=True)
    assert forced.token != first.token
    assert forced.cached is False


async def test_a_waiter_that_leaves_does_not_cancel_the_fetch(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(delay=0.1)
    service = service_with(harvester, unit_settings(), stopper)
    impatient = asyncio.create_task(service.get_token())
    await asyncio.sleep(0.02)
    impatient.cancel()
    patient = await service.get_token()
    assert patient.token.access_token == "BQ-anon-1"
    assert len(harvester.calls) == 1


async def test_retryable_failures_are_retried_three_times(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(UpstreamError("a"), UpstreamError("b"), UpstreamError("c"))
    service = service_with(harvester, unit_settings(), stopper)
    served = await service.get_token()
    assert len(harvester.calls) == 4
    assert served.token.access_token == "BQ-anon-1"


async def test_after_the_last_retry_the_error_reaches_the_caller(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(default=UpstreamError("Spotify answered HTTP 500"))
    service = service_with(harvester, unit_settings(retries=2), stopper)
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await service.get_token()
    assert len(harvester.calls) == 3
    assert service.status().consecutive_failures == 1
    assert service.status().last_error == "Spotify answered HTTP 500"


async def test_non_retryable_failures_are_not_retried(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(default=BrowserMissing("no Chromium found"))
    service = service_with(harvester, unit_settings(), stopper)
    with pytest.raises(BrowserMissing):
        await service.get_token()
    assert len(harvester.calls) == 1


async def test_retry_after_is_honoured(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    harvester = ScriptedHarvester(RateLimited("429", retry_after=0.3))
    service = service_with(harvester, unit_settings(retry_base_delay=0.01), stopper)
    started = asyncio.get_running_loop().time()
    await service.get_token()
    assert asyncio.get_running_loop().time() - started >= 0.3


async def test_unexpected_errors_become_safe_token_errors(
    unit_settings: SettingsMaker, stopper: list[TokenService], caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(ScriptedHarvester):
        async def fetch(self, sp_dc: str | None = None) -> object:  # type: ignore[override]
            self.calls.append(sp_dc)
            raise KeyError("BQ-secret-in-a-message")

    harvester = Exploding()
    service = service_with(harvester, unit_settings(), stopper)
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenError) as caught:
        await service.get_token()
    assert caught.value.status == 500
    assert len(harvester.calls) == 1  # a bug is not retried
    assert "secret" not in str(caught.value)
    assert "KeyError" in caplog.text
    assert "secret" not in caplog.text


async def test_stale_token_is_served_while_renewal_fails(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    # Life 2 s with a 1.5 s buffer: fresh for half a second, then only usable as stale.
    settings = unit_settings(expiry_buffer=1.5, refresh_window=1.5, stale_margin=0.2, retries=0)
    harvester = ScriptedHarvester(2.0, default=UpstreamError("down"))
    service = service_with(harvester, settings, stopper)
    good = await service.get_token()
    await asyncio.sleep(0.6)
    stale = await service.get_token()
    assert stale.token == good.token
    assert stale.cached is True
    with pytest.raises(UpstreamError):
        await service.get_token(force=True)


async def test_failing_renewal_does_not_hammer_spotify(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    settings = unit_settings(
        expiry_buffer=1.5, refresh_window=1.5, stale_margin=0.2, retries=0, retry_base_delay=0.6
    )
    harvester = ScriptedHarvester(2.0, default=UpstreamError("down"))
    service = service_with(harvester, settings, stopper)
    good = await service.get_token()
    await asyncio.sleep(0.6)
    await service.get_token()  # renewal fails: the first cool-down (0.6 s) starts
    calls = len(harvester.calls)
    for _ in range(50):
        served = await service.get_token()
        assert served.token == good.token
        await asyncio.sleep(0.004)
    assert len(harvester.calls) == calls  # nothing sent upstream while cooling down
    await asyncio.sleep(0.5)
    assert (await service.get_token()).token == good.token
    await asyncio.sleep(0.02)
    assert len(harvester.calls) == calls + 1  # after it, one background try


async def test_without_a_token_the_last_error_comes_back_at_once(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(
        default=RateLimited("Spotify rate-limited the token request", retry_after=30)
    )
    service = service_with(harvester, unit_settings(retries=0), stopper)
    with pytest.raises(RateLimited):
        await service.get_token()
    for _ in range(20):
        with pytest.raises(RateLimited):
            await service.get_token()
    assert len(harvester.calls) == 1  # Retry-After: 30 is honoured
    with pytest.raises(RateLimited):
        await service.get_token(force=True)
    assert len(harvester.calls) == 2  # forcing always tries


async def test_stale_token_is_dropped_at_the_margin(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    settings = unit_settings(expiry_buffer=1.5, refresh_window=1.5, stale_margin=1.2, retries=0)
    harvester = ScriptedHarvester(2.0, default=UpstreamError("down"))
    service = service_with(harvester, settings, stopper)
    await service.get_token()
    await asyncio.sleep(0.9)
    with pytest.raises(UpstreamError):
        await service.get_token()


async def test_the_refresher_fetches_at_start_and_renews_in_the_window(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    settings = unit_settings(expiry_buffer=0.5, refresh_window=1.0, stale_margin=0.1, refresh_interval=5)
    harvester = ScriptedHarvester(1.3, default=3600.0)
    service = service_with(harvester, settings, stopper)
    await service.start()
    await asyncio.sleep(0.1)
    assert len(harvester.calls) == 1
    assert service.status().has_token
    await asyncio.sleep(0.5)
    assert len(harvester.calls) == 2
    assert (await service.get_token()).token.access_token == "BQ-anon-2"


async def test_short_lived_tokens_do_not_make_the_refresher_spin(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    # Every token has 1 s of life against a 2 s window: due at once by the window alone.
    settings = unit_settings(expiry_buffer=0.5, refresh_window=2.0, stale_margin=0.1, refresh_interval=5)
    harvester = ScriptedHarvester(default=1.0)
    service = service_with(harvester, settings, stopper)
    await service.start()
    await asyncio.sleep(1.0)
    assert 2 <= len(harvester.calls) <= 6  # renewed every ~0.25 s, not thousands of times
    assert (await service.get_token()).cached is True


async def test_the_refresher_backs_off_after_failures(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    # Attempts at t = 0, then after cool-downs of 0.2 s and 0.4 s: at about 0.2 s and 0.6 s.
    settings = unit_settings(retries=0, retry_base_delay=0.2, refresh_interval=5)
    harvester = ScriptedHarvester(default=UpstreamError("down"))
    service = service_with(harvester, settings, stopper)
    await service.start()
    await asyncio.sleep(0.1)
    assert len(harvester.calls) == 1
    await asyncio.sleep(0.3)  # t = 0.4: the second attempt is behind us, the third 0.2 s ahead
    assert len(harvester.calls) == 2
    await asyncio.sleep(0.4)  # t = 0.8
    assert len(harvester.calls) == 3


async def test_stopping_answers_waiters_with_shutting_down(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester(delay=5)
    service = service_with(harvester, unit_settings(), stopper)
    waiter = asyncio.create_task(service.get_token())
    await asyncio.sleep(0.02)
    await service.stop()
    with pytest.raises(ShuttingDown):
        await waiter


async def test_status_reports_the_seed_fields(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    service = service_with(ScriptedHarvester(), unit_settings(), stopper)
    empty = service.status()
    assert (empty.has_token, empty.is_valid, empty.should_refresh, empty.expires_at_ms) == (
        False,
        False,
        True,
        None,
    )
    await service.get_token()
    state = service.status()
    assert state.has_token and state.is_valid and not state.should_refresh
    assert state.ms_until_expiry is not None and 3_590_000 < state.ms_until_expiry <= 3_600_000
    assert state.ms_until_refresh is not None
    assert state.ms_until_refresh == pytest.approx(state.ms_until_expiry - 600_000, abs=5)


async def test_forced_fetches_are_rate_limited(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    harvester = ScriptedHarvester()
    service = service_with(harvester, unit_settings(force_min_interval=0.3), stopper)
    first = await service.get_token(force=True)
    again = await service.get_token(force=True)
    assert again.token == first.token
    assert again.cached is True
    assert len(harvester.calls) == 1
    await asyncio.sleep(0.35)
    assert (await service.get_token(force=True)).token != first.token
    assert len(harvester.calls) == 2


async def test_cool_down_is_capped(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    harvester = ScriptedHarvester(default=RateLimited("429", retry_after=50))
    service = service_with(harvester, unit_settings(retries=0, cooldown_max=0.2, retry_after_max=60), stopper)
    with pytest.raises(RateLimited):
        await service.get_token()
    state = service.status()
    assert state.cooling_down
    assert state.retry_at_ms is not None
    await asyncio.sleep(0.25)
    assert not service.status().cooling_down


class SharingCoordinator:
    """Another replica's token is in the shared store: hand it out instead of harvesting."""

    available: bool | None = True

    def __init__(self, shared: Token) -> None:
        self.shared = shared
        self.asked: list[tuple[str, Token | None]] = []

    async def fetch(self, key: str, harvest: Harvest, known: Token | None, *, force: bool = False) -> Token:
        self.asked.append((key, known))
        return self.shared if key == ANONYMOUS_KEY else await harvest()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_fetches_go_through_the_coordinator_by_identity_never_by_cookie(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    shared = Token("BQ-from-another-replica", wall_clock_ms() + 3_600_000, "client", True)
    coordinator, harvester = SharingCoordinator(shared), ScriptedHarvester()
    service = TokenService(harvester, unit_settings(), coordinator=coordinator)
    stopper.append(service)
    anonymous = await service.get_token()
    again = await service.get_token(force=True)
    account = await service.get_token(sp_dc="cookie-value")
    assert anonymous.token == again.token == shared
    assert harvester.calls == ["cookie-value"]
    keys = [key for key, _ in coordinator.asked]
    assert keys == [ANONYMOUS_KEY, ANONYMOUS_KEY, f"account:{account_key('cookie-value')}"]
    assert [known for _, known in coordinator.asked] == [None, shared, None]
    assert account.token.is_anonymous is False
