from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest

from spotify_tokener.core.accounts import AccountSlots
from spotify_tokener.core.service import TokenService
from spotify_tokener.core.slot import TokenSlot
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.errors import AccountsDisabled, CookieRejected, Overloaded, UpstreamError
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.token import ANONYMOUS, Token, identity_of
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import core_config
from tests.scripted import ScriptedSource
from tests.unit.core.conftest import scripted, service_with
from tests.virtual_time import VirtualTime

SettingsMaker = Callable[..., Settings]
RULES = Freshness.from_seconds(300, 600, 30)
NO_COOLDOWN = Backoff(base_s=0, retries=0, retry_after_max_s=0, cooldown_max_s=0)
MINUTE_COOLDOWN = Backoff(base_s=60, retries=0, retry_after_max_s=60, cooldown_max_s=60)


def slots_of(capacity: int, backoff: Backoff, clock: ManualClock, *, per_minute: int = 1000) -> AccountSlots:
    settings = Settings(max_accounts=capacity, new_accounts_per_minute=per_minute, rejected_cookie_memory=0)
    return AccountSlots(dataclasses.replace(core_config(settings), freshness=RULES, backoff=backoff), clock)


async def hold(slot: TokenSlot, token: Token) -> None:
    async def fetch() -> Token:
        return token

    await slot.get(fetch, force=True)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_the_identity_is_a_hash_not_the_cookie() -> None:
    identity = identity_of("AQ-secret-cookie")
    assert "secret" not in identity
    assert identity.startswith("account:")
    assert len(identity.removeprefix("account:")) == 64
    assert identity == identity_of("AQ-secret-cookie") != identity_of("AQ-other")
    assert identity_of(None) == identity_of("") == ANONYMOUS


async def test_least_recently_used_accounts_are_dropped() -> None:
    slots = slots_of(2, NO_COOLDOWN, ManualClock())
    first = slots.slot_for("a")
    await hold(first, Token("BQ", 10**12, "c", False))
    second = slots.slot_for("b")
    await hold(second, Token("BQ", 10**12, "c", False))
    assert slots.slot_for("a") is first  # "a" is now the most recent
    await hold(slots.slot_for("c"), Token("BQ", 10**12, "c", False))
    assert slots.count() == 2
    assert slots.slot_for("a") is first
    assert slots.slot_for("b") is not second


async def test_an_account_whose_fetch_failed_is_not_counted_as_cached() -> None:
    clock = ManualClock()
    slots = slots_of(10, MINUTE_COOLDOWN, clock)

    async def failing() -> Token:
        raise UpstreamError("Spotify answered the token request with HTTP 500")

    with pytest.raises(UpstreamError):
        await slots.slot_for("a").get(failing)
    assert slots.count() == 0


async def test_entries_go_when_their_token_expires() -> None:
    clock = ManualClock()
    slots = slots_of(10, NO_COOLDOWN, clock)
    await hold(slots.slot_for("a"), Token("BQ", clock.now + 5_000, "c", False))
    assert slots.count() == 1
    clock.now += 5_000
    assert slots.count() == 0


async def test_each_account_and_the_anonymous_token_are_apart(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(delay=0.02)
    service = service_with(source, unit_settings(), stopper)
    calls = [service.get_token() for _ in range(10)]
    calls += [service.get_token(sp_dc="cookie-a") for _ in range(10)]
    calls += [service.get_token(sp_dc="cookie-b") for _ in range(10)]
    served = await asyncio.gather(*calls)
    tokens = [s.token.access_token for s in served]
    assert len(set(tokens[:10])) == len(set(tokens[10:20])) == len(set(tokens[20:])) == 1
    assert tokens[0].startswith("BQ-anon-")
    assert tokens[10].startswith("BQ-cookie-a-")
    assert tokens[20].startswith("BQ-cookie-b-")
    assert all(s.token.is_anonymous for s in served[:10])
    assert not any(s.token.is_anonymous for s in served[10:])
    assert sorted(map(str, source.calls)) == ["None", "cookie-a", "cookie-b"]
    assert service.accounts.count() == 2


async def test_a_cached_account_token_is_reused(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource()
    service = service_with(source, unit_settings(), stopper)
    first = await service.get_token(sp_dc="cookie-a")
    again = await service.get_token(sp_dc="cookie-a")
    forced = await service.get_token(sp_dc="cookie-a", force=True)
    assert (first.cached, again.cached, forced.cached) == (False, True, False)
    assert forced.token != first.token
    assert (await service.get_token()).token.is_anonymous


async def test_a_dead_cookie_is_refused_not_swapped(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource(dead_cookies=frozenset({"dead"}))
    service = service_with(source, unit_settings(), stopper)
    with pytest.raises(CookieRejected, match="sp_dc cookie was not accepted"):
        await service.get_token(sp_dc="dead")
    assert source.calls == ["dead"]  # not retried
    assert service.anonymous.token is None  # the anonymous answer went nowhere


async def test_an_account_token_never_reaches_an_anonymous_caller(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    service = service_with(ScriptedSource(leaks_accounts=True), unit_settings(retries=0), stopper)
    with pytest.raises(UpstreamError, match="account token to an anonymous request"):
        await service.get_token()


async def test_accounts_can_be_switched_off(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource()
    service = service_with(source, unit_settings(allow_accounts=False), stopper)
    with pytest.raises(AccountsDisabled):
        await service.get_token(sp_dc="cookie-a")
    assert source.calls == []


async def test_the_refresher_leaves_accounts_alone(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time)
    service = service_with(source, unit_settings(), stopper, time)
    await service.get_token(sp_dc="cookie-a")
    await service.start()
    await time.advance(2 * 3600)
    assert source.calls.count("cookie-a") == 1
    assert source.calls.count(None) > 1  # the anonymous token was renewed meanwhile
    assert service.accounts.count() == 0  # dropped once its token expired


async def test_a_slot_whose_fetch_is_running_is_never_evicted(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    """Six accounts, three requests each, with room for two: still one fetch per account."""
    source = scripted(time, delay=1.0)
    service = service_with(source, unit_settings(max_accounts=2, max_contexts=7), stopper, time)
    cookies = [f"cookie-{n}" for n in range(6)]
    requests = [asyncio.create_task(service.get_token(sp_dc=c)) for _ in range(3) for c in cookies]
    await time.advance(1.0)
    served = await asyncio.gather(*requests)
    assert sorted(map(str, source.calls)) == cookies
    assert {s.token.access_token.rsplit("-", 1)[0] for s in served} == {f"BQ-{c}" for c in cookies}


async def test_new_accounts_are_admitted_at_a_rate_known_ones_always() -> None:
    clock = ManualClock()
    slots = slots_of(100, NO_COOLDOWN, clock, per_minute=2)
    first = slots.slot_for("a")
    await hold(first, Token("BQ", 10**12, "c", False))
    slots.slot_for("b")
    with pytest.raises(Overloaded, match="too many new accounts") as refused:
        slots.slot_for("c")
    assert refused.value.retry_after == pytest.approx(30)
    assert slots.slot_for("a") is first
    clock.now += 30_000
    slots.slot_for("c")


async def test_a_refused_cookie_is_answered_from_memory_for_a_while(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, dead_cookies=frozenset({"dead"}))
    service = service_with(source, unit_settings(rejected_cookie_memory=600), stopper, time)
    for _ in range(3):
        with pytest.raises(CookieRejected, match="sp_dc cookie was not accepted"):
            await service.get_token(sp_dc="dead")
    assert source.calls == ["dead"]
    await time.advance(600)
    with pytest.raises(CookieRejected):
        await service.get_token(sp_dc="dead")
    assert source.calls == ["dead", "dead"]


async def test_a_forced_renewal_refused_keeps_the_token_it_had(
    unit_settings: SettingsMaker, stopper: list[TokenService]
) -> None:
    source = ScriptedSource()
    service = service_with(source, unit_settings(rejected_cookie_memory=600), stopper)
    held = await service.get_token(sp_dc="cookie-a")
    source.dead_cookies = frozenset({"cookie-a"})
    with pytest.raises(CookieRejected):
        await service.get_token(sp_dc="cookie-a", force=True)
    assert (await service.get_token(sp_dc="cookie-a")).token == held.token
