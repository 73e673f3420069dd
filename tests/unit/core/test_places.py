"""Bounded work at the source: places, the queue and its budget, and the anonymous token's own place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from spotify_tokener.core.places import Places
from spotify_tokener.core.service import TokenService
from spotify_tokener.domain.errors import Overloaded, UpstreamError
from spotify_tokener.settings import Settings
from tests.unit.core.conftest import scripted, service_with
from tests.virtual_time import VirtualTime, settle

SettingsMaker = Callable[..., Settings]


async def occupy(places: Places, release: asyncio.Event) -> None:
    async with places.place("account"):
        await release.wait()


async def test_accounts_share_every_place_but_one_then_queue_then_are_refused(time: VirtualTime) -> None:
    places = Places(places=3, queue=1, wait_s=10, sleep=time.sleep)
    release = asyncio.Event()
    holders = [asyncio.create_task(occupy(places, release)) for _ in range(2)]
    queued = asyncio.create_task(occupy(places, release))
    await settle()
    assert not queued.done()  # waiting in the queue, which is now full:
    with pytest.raises(Overloaded) as refused:  # at once: no wait
        async with places.place("account"):
            pass
    assert refused.value.retry_after == 10
    async with places.place("anonymous"):  # its place is kept, whatever the accounts do
        pass
    release.set()
    await asyncio.gather(*holders, queued)
    async with places.place("account"):  # the queue is empty again: a place at once
        pass


async def test_a_queued_attempt_gives_up_at_its_budget_and_its_turn_passes_on(time: VirtualTime) -> None:
    places = Places(places=2, queue=2, wait_s=10, sleep=time.sleep)
    release = asyncio.Event()
    holder = asyncio.create_task(occupy(places, release))
    await settle()
    late = asyncio.create_task(occupy(places, release))
    await time.advance(9)
    later = asyncio.create_task(occupy(places, release))
    await time.advance(1)
    with pytest.raises(Overloaded):
        await late
    release.set()
    await asyncio.gather(holder, later)  # the place went to the one still waiting


async def test_a_cancelled_waiter_leaves_the_queue(time: VirtualTime) -> None:
    places = Places(places=2, queue=1, wait_s=10, sleep=time.sleep)
    release = asyncio.Event()
    holder = asyncio.create_task(occupy(places, release))
    leaving = asyncio.create_task(occupy(places, release))
    await settle()
    leaving.cancel()
    await settle()
    waiting = asyncio.create_task(occupy(places, release))
    await settle()
    assert not waiting.done()  # queued where the one who left was, not refused
    release.set()
    await asyncio.gather(holder, waiting)
    async with places.place("account"):  # the place came back
        pass


async def test_an_account_burst_never_delays_the_anonymous_token(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, delay=5.0)
    settings = unit_settings(max_contexts=2, queue_size=1, queue_timeout=10)
    service = service_with(source, settings, stopper, time)
    burst = [asyncio.create_task(service.get_token(sp_dc=f"cookie-{n}")) for n in range(5)]
    anonymous = asyncio.create_task(service.get_token())
    await settle()
    assert source.calls.count(None) == 1  # under way beside the account's
    await time.advance(5)
    assert anonymous.done()
    assert (await anonymous).token.is_anonymous
    await time.advance(5)  # the queued account's turn
    outcomes = await asyncio.gather(*burst, return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    assert len(refused) == 3  # one place for accounts, one in the queue
    assert all(error.retry_after == 10 for error in refused)


async def test_a_fetch_nobody_waits_for_stops_retrying(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, UpstreamError("a"), delay=1.0)
    service = service_with(source, unit_settings(retry_base_delay=1), stopper, time)
    leaving = asyncio.create_task(service.get_token(sp_dc="cookie-a"))
    await time.advance(0.5)
    leaving.cancel()
    await time.advance(60)
    assert source.calls == ["cookie-a"]


async def test_a_token_that_arrives_after_its_waiters_left_is_kept(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, delay=1.0)
    service = service_with(source, unit_settings(), stopper, time)
    leaving = asyncio.create_task(service.get_token(sp_dc="cookie-a"))
    await time.advance(0.5)
    leaving.cancel()
    await time.advance(1)
    served = await service.get_token(sp_dc="cookie-a")
    assert served.cached
    assert source.calls == ["cookie-a"]


async def test_a_waiter_cancelled_as_it_is_handed_a_place_passes_it_on(time: VirtualTime) -> None:
    places = Places(places=2, queue=2, wait_s=10, sleep=time.sleep)
    release = asyncio.Event()
    holder = asyncio.create_task(occupy(places, release))
    handed = asyncio.create_task(occupy(places, asyncio.Event()))
    await settle()
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its place over...
    handed.cancel()  # ...and the one it went to is cancelled before it runs
    await asyncio.gather(holder, handed, return_exceptions=True)
    entering = asyncio.create_task(occupy(places, release))
    await settle()
    assert entering.done()  # the place came back, and the queue is empty: no wait, no refusal


async def test_retries_stop_when_the_last_waiter_leaves_during_the_wait_before_one(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, UpstreamError("a"))
    service = service_with(source, unit_settings(retry_base_delay=1), stopper, time)
    leaving = asyncio.create_task(service.get_token(sp_dc="cookie-a"))
    await time.advance(0.5)  # the attempt failed at once; this is the wait before the retry
    leaving.cancel()
    await time.advance(60)
    assert source.calls == ["cookie-a"]


async def test_an_account_renewed_in_the_background_is_retried(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    """Its owner was served the old token at once; the renewal started for them is still theirs."""
    failing = [UpstreamError("down")] * 4  # one whole fetch
    source = scripted(time, 400.0, *failing, UpstreamError("once more"), 3600.0)
    service = service_with(source, unit_settings(), stopper, time)
    first = await service.get_token(sp_dc="cookie-a")
    await time.advance(150)  # past the serving cutoff, well above the stale margin
    failed = asyncio.create_task(service.get_token(sp_dc="cookie-a"))
    await time.advance(1)
    assert (await failed).token == first.token  # the fetch failed; the old token is served
    await time.advance(10)  # the cool-down is over
    assert (await service.get_token(sp_dc="cookie-a")).token == first.token  # renewal in the background
    await time.advance(1)
    renewed = await service.get_token(sp_dc="cookie-a")
    assert renewed.token != first.token
    assert len(source.calls) == 1 + 4 + 2


async def test_a_busy_refusal_leaves_no_cool_down_behind(
    unit_settings: SettingsMaker, stopper: list[TokenService], time: VirtualTime
) -> None:
    source = scripted(time, delay=5.0)
    service = service_with(source, unit_settings(max_contexts=2, queue_size=0), stopper, time)
    busy = asyncio.create_task(service.get_token(sp_dc="cookie-a"))
    await settle()
    with pytest.raises(Overloaded):
        await service.get_token(sp_dc="cookie-b")
    await time.advance(5)
    await busy
    again = asyncio.create_task(service.get_token(sp_dc="cookie-b"))  # at once: no cool-down to wait out
    await time.advance(5)
    assert not (await again).cached
    assert source.calls == ["cookie-a", "cookie-b"]
