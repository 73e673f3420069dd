from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.core.ports import Fetch, Wanted
from spotify_tokener.core.service import TokenService
from spotify_tokener.core.slot import TokenSlot
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import BrowserMissing, RateLimited, ShuttingDown, TokenError, UpstreamError
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.token import ANONYMOUS, Token, identity_of, token_record
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import core_config
from tests.scripted import ScriptedSource, Unobserved
from tests.unit.core.conftest import scripted, service_with
from tests.virtual_time import VirtualTime

SettingsMaker = Callable[..., Settings]


async def test_first_fetch_then_cache(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    source = ScriptedSource()
    service = service_with(source, unit_settings(), stopper)
    first = await service.get_token()
    second = await service.get_token()
    assert (first.cached, second.cached) == (False, True)
    assert first.token == second.token
    assert len(source.calls) == 1


async def test_a_burst_shares_one_fetch(unit_settings: SettingsMaker, stopper: list[TokenService]) -> None:
    source = ScriptedSource(delay=0.05)
    service = service_with(source, unit_settings(), stopper)
    served = await asyncio.gather(*(service.get_token() for _ in range(200)))
    assert len(source.calls) == 1
    assert {s.token.access_token for s in served} == {"BQ-anon-1"}
    assert not any(s.cached for s in served)


async def test_force_during_a_fetch_joins_it(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(delay=0.05)
    service = service_with(source, unit_settings(), stopper)
    plain, forced = await asyncio.gather(service.get_token(), service.get_token(force=True))
    assert plain.token == forced.token
    assert len(source.calls) == 1


async def test_force_fetches_even_when_fresh(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource()
    service = service_with(source, unit_settings(), stopper)
    first = await service.get_token()
    forced = await service.get_token(force=True)
    assert forced.token != first.token
    assert forced.cached is False


async def test_a_waiter_that_leaves_does_not_cancel_the_fetch(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(delay=0.1)
    service = service_with(source, unit_settings(), stopper)
    impatient = asyncio.create_task(service.get_token())
    await asyncio.sleep(0.02)
    impatient.cancel()
    patient = await service.get_token()
    assert patient.token.access_token == "BQ-anon-1"
    assert len(source.calls) == 1


async def test_retryable_failures_are_retried_three_times(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(UpstreamError("a"), UpstreamError("b"), UpstreamError("c"))
    service = service_with(source, unit_settings(), stopper)
    served = await service.get_token()
    assert len(source.calls) == 4
    assert served.token.access_token == "BQ-anon-1"


async def test_after_the_last_retry_the_error_reaches_the_caller(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(default=UpstreamError("Spotify answered HTTP 500"))
    service = service_with(source, unit_settings(retries=2), stopper)
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await service.get_token()
    assert len(source.calls) == 3
    assert service.anonymous.failures == 1
    assert str(service.anonymous.last_error) == "Spotify answered HTTP 500"


async def test_non_retryable_failures_are_not_retried(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(default=BrowserMissing("no Chromium found"))
    service = service_with(source, unit_settings(), stopper)
    with pytest.raises(BrowserMissing):
        await service.get_token()
    assert len(source.calls) == 1


async def test_retry_after_is_honoured(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, RateLimited("429", retry_after=30))
    service = service_with(source, unit_settings(retry_base_delay=0.01), stopper, time)
    getting = asyncio.create_task(service.get_token())
    await time.advance(29.999)
    assert (len(source.calls), getting.done()) == (1, False)
    await time.advance(0.001)
    assert (await getting).token.access_token == "BQ-anon-1"


async def test_unexpected_errors_become_safe_token_errors(
    unit_settings: SettingsMaker, stopper: list[TokenService], caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(ScriptedSource):
        async def attempt(self, sp_dc: str | None = None) -> object:  # type: ignore[override]
            self.calls.append(sp_dc)
            raise KeyError("BQ-secret-in-a-message")

    source = Exploding()
    service = service_with(source, unit_settings(), stopper)
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenError) as caught:
        await service.get_token()
    assert caught.value.status == 500
    assert len(source.calls) == 1  # a bug is not retried
    assert "secret" not in str(caught.value)
    assert "KeyError" in caplog.text
    assert "secret" not in caplog.text


async def test_stale_token_is_served_while_renewal_fails(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    # An hour's token is served from the cache for 55 minutes, then only as a stale one.
    settings = unit_settings(retries=0)
    source = scripted(time, 3600.0, default=UpstreamError("down"))
    service = service_with(source, settings, stopper, time)
    good = await service.get_token()
    await time.advance(55 * 60)
    stale = await service.get_token()
    assert stale.token == good.token
    assert stale.cached is True
    with pytest.raises(UpstreamError):
        await service.get_token(force=True)


async def test_failing_renewal_does_not_hammer_spotify(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    settings = unit_settings(retries=0, retry_base_delay=60)
    source = scripted(time, 3600.0, default=UpstreamError("down"))
    service = service_with(source, settings, stopper, time)
    good = await service.get_token()
    await time.advance(55 * 60)
    await service.get_token()  # renewal fails in the background: the first cool-down (60 s) starts
    await time.advance(0)
    calls = len(source.calls)
    for _ in range(50):
        served = await service.get_token()
        assert served.token == good.token
        await time.advance(1)
    assert len(source.calls) == calls  # nothing sent upstream while cooling down
    await time.advance(10)
    assert (await service.get_token()).token == good.token
    await time.advance(0)
    assert len(source.calls) == calls + 1  # after it, one background try


async def test_without_a_token_the_last_error_comes_back_at_once(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(default=RateLimited("Spotify rate-limited the token request", retry_after=30))
    service = service_with(source, unit_settings(retries=0), stopper)
    with pytest.raises(RateLimited):
        await service.get_token()
    for _ in range(20):
        with pytest.raises(RateLimited):
            await service.get_token()
    assert len(source.calls) == 1  # Retry-After: 30 is honoured
    with pytest.raises(RateLimited):
        await service.get_token(force=True)
    assert len(source.calls) == 1  # forcing respects the cool-down too


async def test_forced_requests_during_an_outage_get_the_cool_downs_error_not_new_attempts(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, default=UpstreamError("Spotify answered HTTP 500"))
    service = service_with(source, unit_settings(retries=0, retry_base_delay=8), stopper, time)
    with pytest.raises(UpstreamError):
        await service.get_token(force=True)
    for _ in range(70):
        with pytest.raises(UpstreamError) as raised:
            await service.get_token(force=True)
        assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 8
        await time.advance(0.05)
    assert len(source.calls) == 1  # 3.5 s of forcing inside an 8 s cool-down: no new attempt
    await time.advance(8)
    with pytest.raises(UpstreamError):
        await service.get_token(force=True)
    assert len(source.calls) == 2  # after it, forcing tries again


async def test_stale_token_is_dropped_at_the_margin(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, 3600.0, default=UpstreamError("down"))
    service = service_with(source, unit_settings(retries=0, cooldown_max=1), stopper, time)
    await service.get_token()
    await time.advance(3600 - 30.001)  # 30 s and a millisecond left: still served while renewal fails
    assert (await service.get_token()).cached is True
    await time.advance(1.001)
    with pytest.raises(UpstreamError):
        await service.get_token()


async def test_the_refresher_fetches_at_start_and_renews_in_the_window(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time)
    service = service_with(source, unit_settings(), stopper, time)
    await service.start()
    await time.advance(0)
    assert len(source.calls) == 1
    assert service.anonymous.token is not None
    await time.advance(50 * 60 - 0.001)  # the window (10 min) opens 50 minutes into an hour's token
    assert len(source.calls) == 1
    await time.advance(0.001)
    assert len(source.calls) == 2
    assert (await service.get_token()).token.access_token == "BQ-anon-2"


async def test_short_lived_tokens_do_not_make_the_refresher_spin(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    # Every token has 8 minutes of life against a 10 minute window: due at once by the window alone.
    source = scripted(time, default=8 * 60.0)
    service = service_with(source, unit_settings(), stopper, time)
    await service.start()
    await time.advance(8 * 60)
    # At 0, 90, 180, 270, 360 and 450 s: every half of its 3 servable minutes, and no more often.
    assert len(source.calls) == 6
    assert (await service.get_token()).cached is True


async def test_the_refresher_backs_off_after_failures(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    # Attempts at t = 0, then after cool-downs of 2 s and 4 s: at 2 s and 6 s.
    settings = unit_settings(retries=0, retry_base_delay=2, refresh_interval=300)
    source = scripted(time, default=UpstreamError("down"))
    service = service_with(source, settings, stopper, time)
    await service.start()
    await time.advance(1.999)
    assert len(source.calls) == 1
    await time.advance(0.001)
    assert len(source.calls) == 2
    await time.advance(3.999)
    assert len(source.calls) == 2
    await time.advance(0.001)
    assert len(source.calls) == 3


async def test_stopping_answers_waiters_with_shutting_down(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(delay=5)
    service = service_with(source, unit_settings(), stopper)
    waiter = asyncio.create_task(service.get_token())
    await asyncio.sleep(0.02)
    await service.stop()
    with pytest.raises(ShuttingDown):
        await waiter


async def test_forced_fetches_are_rate_limited(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time)
    service = service_with(source, unit_settings(force_min_interval=10), stopper, time)
    first = await service.get_token(force=True)
    await time.advance(9.999)
    again = await service.get_token(force=True)
    assert again.token == first.token
    assert again.cached is True
    assert len(source.calls) == 1
    await time.advance(0.001)
    assert (await service.get_token(force=True)).token != first.token
    assert len(source.calls) == 2


async def test_cool_down_is_capped(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, default=RateLimited("429", retry_after=50))
    settings = unit_settings(retries=0, cooldown_max=20, retry_after_max=60)
    service = service_with(source, settings, stopper, time)
    with pytest.raises(RateLimited):
        await service.get_token()
    assert service.anonymous.retry_at_ms(time.now_ms) == time.now_ms + 20_000
    await time.advance(20)
    assert not service.anonymous.cooling_down(time.now_ms)


class SharingCoordinator:
    """Another replica's anonymous token is in the shared store: hand it out instead of fetching."""

    available: bool | None = True

    def __init__(self, shared: Token) -> None:
        self.shared = shared
        self.asked: list[str] = []

    async def fetch(self, identity: str, fetch_here: Fetch, wanted: Wanted) -> Token:
        self.asked.append(identity)
        return self.shared if identity == ANONYMOUS else await fetch_here()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_fetches_go_through_the_coordinator_by_identity_never_by_cookie(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    shared = Token("BQ-from-another-replica", wall_clock_ms() + 3_600_000, "client", True)
    coordinator, source = SharingCoordinator(shared), ScriptedSource()
    service = TokenService(
        source, core_config(unit_settings()), observer=Unobserved(), coordinator=coordinator
    )
    stopper.append(service)
    anonymous = await service.get_token()
    again = await service.get_token(force=True)
    account = await service.get_token(sp_dc="cookie-value")
    assert anonymous.token == again.token == shared
    assert source.calls == ["cookie-value"]
    assert coordinator.asked == [ANONYMOUS, ANONYMOUS, identity_of("cookie-value")]
    assert account.token.is_anonymous is False


async def test_a_token_that_arrives_stale_is_never_served(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    # Five minutes of life is the buffer itself: LavaSrc would cache it until it dies.
    source = ScriptedSource(300.0, default=3600.0)
    service = service_with(source, unit_settings(), stopper)
    served = await service.get_token()
    assert len(source.calls) == 2  # the first answer was refused and retried
    assert served.token.access_token == "BQ-anon-2"


async def test_what_a_slot_takes_from_another_replica(time: VirtualTime) -> None:
    settings = Settings.build(force_min_interval=10)
    slot = TokenSlot("anonymous", "anonymous", settings.freshness, settings.backoff, time.clock)
    hour = time.now_ms + 3_600_000
    mine = Token("BQ-mine", hour, "client", True)

    async def fetch() -> Token:
        return mine

    await slot.get(fetch)
    now = time.now_ms
    newer = Token("BQ-newer", hour + 1, "client", True)
    assert slot.accepts(newer, now - 60_000, requested_at_ms=now, force=False)
    assert not slot.accepts(Token("BQ-older", hour, "client", True), now, requested_at_ms=now, force=False)
    assert not slot.accepts(
        Token("BQ-account", hour + 1, "client", False), now, requested_at_ms=now, force=False
    )
    short = Token("BQ-short", now + 300_000, "client", True)
    assert not slot.accepts(short, now, requested_at_ms=now, force=False)
    assert slot.accepts(newer, now - 9_999, requested_at_ms=now, force=True)  # within the force gap
    assert not slot.accepts(newer, now - 10_000, requested_at_ms=now, force=True)


class MemoryState:
    """A state store in memory: what a test put there, and every save."""

    def __init__(self, **documents: dict[str, Any]) -> None:
        self.documents = {f"{name}.json": document for name, document in documents.items()}
        self.saves: list[tuple[str, dict[str, Any]]] = []

    def load(self, name: str) -> dict[str, Any] | None:
        return self.documents.get(name)

    def save(self, name: str, document: dict[str, Any]) -> None:
        self.saves.append((name, document))
        self.documents[name] = document


NOW = 1_800_000_000_000
FRESHNESS = Freshness.from_seconds(300, 600, 30)


def kept(**changes: Any) -> dict[str, Any]:
    """A token record as the service writes it, fetched a minute ago with 50 minutes left."""
    token = Token("BQ-kept", NOW + 50 * 60_000, "client", is_anonymous=True, source="direct")
    return {**token_record(token, NOW - 60_000), **changes}


@pytest.mark.parametrize(
    ("document", "believed"),
    [
        (kept(), True),
        (None, False),
        (kept(isAnonymous=False), False),  # an account's token is never kept, nor believed
        (kept(accessTokenExpirationTimestampMs=NOW + 200_000), False),  # inside the buffer
        (kept(accessTokenExpirationTimestampMs=NOW + 3 * 3600_000), False),  # implausibly far ahead
        (kept(fetchedAtMs=NOW + 60_000), False),  # fetched in the future
        (kept(fetchedAtMs=NOW - 3 * 3600_000), False),  # hours ago, still servable: a clock gone wrong
        (kept(fetchedAtMs=True), False),
        (kept(fetchedAtMs="1"), False),
        (kept(accessToken=""), False),
        (kept(accessToken="BQ\nforged-header"), False),
        (kept(accessToken="BQ" + "x" * 5000), False),
        (kept(accessTokenExpirationTimestampMs="soon"), False),
        ({"fetchedAtMs": NOW}, False),
    ],
)
async def test_a_kept_token_is_believed_only_if_anonymous_servable_and_plausible(
    document: dict[str, Any] | None, believed: bool, unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    config = dataclasses.replace(core_config(unit_settings()), freshness=FRESHNESS)
    state = MemoryState(**({"token": document} if document is not None else {}))
    service = TokenService(ScriptedSource(), config, observer=Unobserved(), clock=lambda: NOW, kept=state)
    stopper.append(service)
    await service.start()  # resumes what was kept; the refresher's first fetch has not begun
    found = service.anonymous.cached
    assert (found is not None) == believed
    if found is not None:
        kept_token = Token("BQ-kept", NOW + 50 * 60_000, "client", True, "direct")
        assert (found.token, found.fetched_at_ms) == (kept_token, NOW - 60_000)


async def test_a_kept_token_is_served_without_a_fetch_and_each_new_anonymous_one_is_kept(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    now = wall_clock_ms()
    state = MemoryState(token=kept(accessTokenExpirationTimestampMs=now + 50 * 60_000, fetchedAtMs=now))
    source = ScriptedSource()
    service = TokenService(source, core_config(unit_settings()), observer=Unobserved(), kept=state)
    stopper.append(service)
    await service.start()
    served = await service.get_token()
    assert (served.token.access_token, served.cached, source.calls) == ("BQ-kept", True, [])
    assert state.saves == []  # what was read is not written back
    forced = await service.get_token(force=True)
    await service.get_token(sp_dc="AQ-account-cookie")
    assert [(name, document["accessToken"]) for name, document in state.saves] == [
        ("token.json", forced.token.access_token)
    ]
