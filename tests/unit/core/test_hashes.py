"""The hash keeper's pace and memory: one learning for many reasons, at most one per interval, the
last set kept through failures, other replicas' sets, and what is kept across restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from spotify_tokener.core.hashes import DOCUMENT, NOTE, HashKeeper
from spotify_tokener.domain.errors import PageUnreachable, TokenError
from spotify_tokener.domain.hashes import HashSet, hash_record
from tests.virtual_time import VirtualTime, settle

CDN = "https://open.spotifycdn.com/cdn/build/web-player/"
A, B = "a" * 64, "b" * 64
MIN_INTERVAL_S, MAX_AGE_S = 60.0, 3600.0


class Page:
    """The web player as the keeper's learning reads it; counts the readings."""

    def __init__(self, time: VirtualTime) -> None:
        self.time, self.build, self.readings = time, 1, 0
        self.failure: TokenError | None = None
        self.gate: asyncio.Event | None = None

    def set(self, build: int) -> HashSet:
        return HashSet(
            f"web-player.{build:08x}.js", "1.2.3", {"getTrack": A if build == 1 else B}, self.now_s
        )

    @property
    def now_s(self) -> int:
        return self.time.clock() // 1000

    async def __call__(self, known: HashSet | None) -> HashSet:
        self.readings += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return self.set(self.build)


class Store:
    """The notes replicas share and the state folder, in memory."""

    def __init__(self) -> None:
        self.notes: dict[str, bytes] = {}
        self.documents: dict[str, dict[str, Any]] = {}

    async def read_note(self, name: str) -> bytes | None:
        return self.notes.get(name)

    async def write_note(self, name: str, value: bytes) -> None:
        self.notes[name] = value

    def load(self, name: str) -> dict[str, Any] | None:
        return self.documents.get(name)

    def save(self, name: str, document: dict[str, Any]) -> None:
        self.documents[name] = document


@pytest.fixture
def time() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def page(time: VirtualTime) -> Page:
    return Page(time)


@pytest.fixture
def store() -> Store:
    return Store()


def keeper_of(page: Page, store: Store, time: VirtualTime) -> HashKeeper:
    return HashKeeper(
        page, notes=store, state=store, clock=time.clock, min_interval_s=MIN_INTERVAL_S, max_age_s=MAX_AGE_S
    )


async def test_many_reports_at_once_share_one_reading(page: Page, store: Store, time: VirtualTime) -> None:
    keeper = keeper_of(page, store, time)
    await keeper.get()
    page.build = 2
    await time.advance(61)
    page.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(keeper.get(stale=A)) for _ in range(100)]
    await settle()
    page.gate.set()
    served = await asyncio.gather(*waiting)
    assert {answer.operations["getTrack"] for answer in served} == {B}
    assert page.readings == 2
    assert keeper.stale_reports == 100
    assert keeper.relearns == {"learned": 2}


async def test_a_report_within_the_interval_or_of_a_hash_not_served_reads_nothing(
    page: Page, store: Store, time: VirtualTime
) -> None:
    keeper = keeper_of(page, store, time)
    await keeper.get()
    page.build = 2
    assert (await keeper.get(stale=A)).operations["getTrack"] == A  # the interval is not over
    await time.advance(61)
    assert (await keeper.get(stale=B)).operations["getTrack"] == A  # B is not served: nothing to do
    assert page.readings == 1
    assert (await keeper.get(stale=A)).operations["getTrack"] == B
    assert page.readings == 2


async def test_an_old_set_is_checked_in_the_background(page: Page, store: Store, time: VirtualTime) -> None:
    keeper = keeper_of(page, store, time)
    first = await keeper.get()
    await time.advance(3600)
    page.build = 2
    assert await keeper.get() == first  # answered at once, from what is known
    await settle()
    assert (await keeper.get()).operations["getTrack"] == B


async def test_a_deploy_seen_elsewhere_is_learned_and_nothing_before_a_client_asks(
    page: Page, store: Store, time: VirtualTime
) -> None:
    keeper = keeper_of(page, store, time)
    keeper.seen([f"{CDN}web-player.00000002.js"])
    await settle()
    assert page.readings == 0
    await keeper.get()
    await time.advance(61)
    keeper.seen([f"{CDN}web-player.00000001.js"])  # the one served
    await settle()
    assert page.readings == 1
    page.build = 2
    keeper.seen([f"{CDN}vendor~web-player.1234abcd.js", f"{CDN}web-player.00000002.js"])
    await settle()
    assert page.readings == 2
    assert keeper.current is not None and keeper.current.bundle == "web-player.00000002.js"


async def test_while_reading_fails_the_last_set_is_served(
    page: Page, store: Store, time: VirtualTime
) -> None:
    keeper = keeper_of(page, store, time)
    known = await keeper.get()
    page.failure = PageUnreachable("Spotify could not be reached")
    await time.advance(61)
    assert await keeper.get(stale=A) == known
    assert keeper.last_error is page.failure
    assert keeper.relearns["failed"] == 1


async def test_with_nothing_known_a_failure_is_raised_again_until_the_interval_is_over(
    page: Page, store: Store, time: VirtualTime
) -> None:
    keeper = keeper_of(page, store, time)
    page.failure = PageUnreachable("Spotify could not be reached")
    for _ in range(3):
        with pytest.raises(PageUnreachable):
            await keeper.get()
    assert page.readings == 1
    page.failure = None
    await time.advance(61)
    assert (await keeper.get()).operations["getTrack"] == A


async def test_what_is_learned_is_kept_and_shared_and_a_newer_shared_set_is_adopted(
    page: Page, store: Store, time: VirtualTime
) -> None:
    learned = await keeper_of(page, store, time).get()
    assert store.documents[DOCUMENT] == hash_record(learned)
    assert orjson.loads(store.notes[NOTE]) == hash_record(learned)
    restarted = keeper_of(page, store, time)
    assert await restarted.get() == learned
    assert page.readings == 1  # a restart reads nothing again
    await time.advance(61)
    newer = page.set(2)
    store.notes[NOTE] = orjson.dumps(hash_record(newer))
    assert await restarted.get(stale=A) == newer
    assert page.readings == 1
    assert restarted.relearns == {"replica": 1}


async def test_a_shared_set_from_the_future_or_holding_the_reported_hash_is_not_adopted(
    page: Page, store: Store, time: VirtualTime
) -> None:
    keeper = keeper_of(page, store, time)
    await keeper.get()
    page.build = 2
    future = HashSet("web-player.0000000f.js", None, {"getTrack": "f" * 64}, page.now_s + 3600)
    store.notes[NOTE] = orjson.dumps(hash_record(future))
    await time.advance(61)
    assert (await keeper.get(stale=A)).operations["getTrack"] == B
    stale_again = HashSet("web-player.00000003.js", None, {"getTrack": B}, page.now_s + 1)
    store.notes[NOTE] = orjson.dumps(hash_record(stale_again))
    page.build = 4
    await time.advance(61)
    assert (await keeper.get(stale=B)).operations["getTrack"] == B  # page build 4 holds B too
    assert page.readings == 3
