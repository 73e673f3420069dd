"""The direct source against the fake web player: learning the secret from the bundle or from the
browser's sighting, rotation and a changed call without a client noticing, and account tokens."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import CDPSession
from redis.asyncio import Redis

from spotify_tokener.domain.request_shape import default_shape
from spotify_tokener.domain.token import Token
from spotify_tokener.domain.totp import Secret
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.heap import empty_page_strings, page_strings
from spotify_tokener.sources.browser.manager import BrowserManager
from spotify_tokener.sources.browser.source import BrowserSource
from spotify_tokener.sources.direct.knowledge import NOTE, Knowledge, Origin, dump_knowledge
from tests.conftest import Running, Serve, free_port, running_server, status_of, wait_for_status
from tests.fake_spotify import FakeSpotify
from tests.fake_spotify.assets import SITE, bundle_path
from tests.fake_spotify.server import SECRET_VERSION
from tests.fake_spotify.totp import accepts
from tests.redis_server import RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
BOTH = "direct,browser"
ROTATED = ("p3!Lq9#Vw2@Xz7$Rt5%Y", 62)
BUNDLE = bundle_path(SECRET_VERSION).rsplit("/", 1)[-1]
SERVER_AHEAD_S = 60
PLANTED, CAP = 6000, 4000
"""Strings the page keeps, and the cap of a read: only a page with the planted ones has that many."""
"""The page's two codes then fall in two 30 s steps, whatever the moment: the page's memory (hundreds
of strings) gives one sighted code by chance about once in 400 reads, and codes of two steps about
once in ten million, so a test of learning from it cannot fail by chance."""


async def token(running: Running, *, force: bool = False, **headers: str) -> dict[str, Any]:
    answer = await running.client.get("/api/token" + ("?force=1" if force else ""), headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def proven(origin: str, bundle: str | None = BUNDLE) -> dict[str, Any]:
    """What ``status`` shows of the direct source holding the fake's secret, proven."""
    known = {"totpVersion": SECRET_VERSION, "secretOrigin": origin, "secretProven": True}
    return {**known, "trouble": None, "bundle": bundle}


def direct_is_back(state: dict[str, Any]) -> bool:
    return all(source["usable"] for source in state["sources"])


async def test_alone_it_learns_from_the_bundle_and_starts_no_browser(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(make_settings(sources="direct")) as running:
        await token(running)
        state = await status_of(running)
        health = (await running.client.get("/health")).json()
    assert state["tokenSource"] == "direct"
    assert state["direct"] == proven("scripts")
    assert health["browser"]["launches"] == 0
    assert fake.page_token_calls() == 0
    assert fake.token_requests == 1  # the newest version, tried once, was right


@pytest.mark.parametrize("shape", ["literal", "char_codes"])
async def test_the_secret_is_found_in_either_static_shape(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, shape: Any
) -> None:
    fake.write_secret_as(shape)
    async with serve(make_settings(sources=BOTH)) as running:
        await token(running)
        await token(running, force=True)
        state = await status_of(running)
    assert state["tokenSource"] == "direct"
    assert state["direct"]["totpVersion"] == SECRET_VERSION
    assert fake.page_token_calls() == 0


async def test_a_secret_assembled_at_run_time_is_read_from_the_pages_memory(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spotify_tokener.sources.browser.source")
    fake.write_secret_as("assembled")
    fake.run_server_clock_ahead(SERVER_AHEAD_S)
    async with serve(make_settings(sources=BOTH)) as running:
        await token(running)  # nothing in the scripts: the browser answers, and reads the page's memory
        await wait_for_status(running, direct_is_back, within_s=10)
        after = await token(running, force=True)
        state = await status_of(running)
    assert after["success"] is True
    assert state["tokenSource"] == "direct"
    assert state["direct"] == proven("page memory")  # at once: the sighting's codes were of two steps
    assert fake.page_token_calls() == 1
    assert all(call.answer.kind == "ok" for call in fake.state.calls)
    read = re.search(r"read (\d+) strings .*, besides the (\d+) an empty page holds", caplog.text)
    assert read is not None
    kept, browsers_own = int(read[1]), int(read[2])
    assert browsers_own > 2 * kept  # most of what a page holds is the browser's own, left out


async def test_a_secret_neither_the_scripts_nor_the_page_hold_leaves_the_browser_to_serve_alone(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.write_secret_as("key_only")
    fake.run_server_clock_ahead(SERVER_AHEAD_S)
    async with serve(make_settings(sources=BOTH)) as running:
        answers = [await token(running, force=True) for _ in range(3)]
        await wait_for_status(
            running, lambda state: "memory" in (state["direct"]["trouble"] or ""), within_s=10
        )
        state = await status_of(running)
    assert [answer["success"] for answer in answers] == [True] * 3
    assert state["tokenSource"] == "browser"
    direct = next(source for source in state["sources"] if source["source"] == "direct")
    assert direct["usable"] is False
    assert direct["retryAt"] is not None
    assert all(call.by_page for call in fake.state.calls)  # not one wrong code sent upstream


async def test_a_rotation_costs_one_browser_fetch_then_the_direct_source_resumes(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(sources=BOTH)) as running:
        await token(running)
        fake.rotate(*ROTATED)
        rotated = await token(running, force=True)
        await wait_for_status(
            running, lambda state: state["direct"]["totpVersion"] == ROTATED[1], within_s=10
        )
        await wait_for_status(running, direct_is_back, within_s=5)
        after = await token(running, force=True)
        state = await status_of(running)
    assert rotated["success"] is True
    assert fake.page_token_calls() == 1
    assert state["tokenSource"] == "direct"
    assert state["direct"]["secretOrigin"] == "page"
    assert after["accessToken"] == fake.issued_tokens()[-1]


async def test_a_new_parameter_the_page_sends_is_learned_from_one_sighting(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(sources=BOTH)) as running:
        await token(running)
        fake.require("buildVer", "web-player_2026-11-30")
        await token(running, force=True)
        await wait_for_status(running, direct_is_back, within_s=10)
        await token(running, force=True)
        state = await status_of(running)
    last = fake.state.calls[-1]
    assert state["tokenSource"] == "direct"
    assert not last.by_page
    assert last.query["buildVer"] == ["web-player_2026-11-30"]
    assert fake.page_token_calls() == 1


async def test_an_account_token_carries_only_that_accounts_cookies(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    fake.add_account("AQ-direct-account", "alice")
    async with running_server(make_settings(sources="direct")) as running:
        anonymous = await token(running)
        account = await token(running, Cookie="sp_dc=AQ-direct-account")
        await token(running, force=True)
        dead = await running.client.get("/api/token", headers={"Cookie": "sp_dc=AQ-dead-cookie"})
    assert anonymous["isAnonymous"] is True
    assert account["isAnonymous"] is False
    assert dead.status_code == httpx.codes.UNAUTHORIZED
    first, alice, again, _dead = fake.state.calls
    assert "sp_dc" not in first.cookies and "sp_dc" not in again.cookies
    assert alice.cookies["sp_dc"] == "AQ-direct-account"
    assert alice.cookies["sp_t"] != first.cookies["sp_t"]  # each identity its own device
    assert again.cookies["sp_t"] == first.cookies["sp_t"]


async def shared_note(redis: Redis, prefix: str, version: int) -> None:
    """Until a replica's learning of ``version`` is in Redis (it is written in the background)."""
    async with asyncio.timeout(10):
        while True:
            note = await redis.get(f"{prefix}note:{NOTE}")
            if note is not None and orjson.loads(note)["version"] == version:
                return
            await asyncio.sleep(0.02)


async def test_replicas_share_what_one_learned_so_one_browser_fetch_teaches_all(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    serve: Serve,
    shared_redis: RedisServer,
    redis_prefix: str,
) -> None:
    shared = {"redis_url": shared_redis.url, "redis_prefix": redis_prefix}
    # B cannot learn by itself: no browser, and no unproven secret may be tried on Spotify.
    teacher = make_settings(sources=BOTH, **shared)
    pupil = make_settings(sources="direct", direct_unproven_tries=0, **shared)
    async with serve(teacher) as a, Redis.from_url(shared_redis.url) as redis:
        await token(a)
        await shared_note(redis, redis_prefix, SECRET_VERSION)
        async with running_server(pupil) as b:
            await token(b)  # its start-up fetch is over: the forced one below is its own
            await token(b, force=True)
            learned = (await status_of(b))["direct"]
            fake.rotate(*ROTATED)
            await token(a, force=True)  # turned down, then A's browser: the one page fetch
            await shared_note(redis, redis_prefix, ROTATED[1])
            await token(b, force=True)
            state = await status_of(b)
    assert learned == proven("replica", bundle=None)  # learned from a note, no script read
    assert state["direct"]["totpVersion"] == ROTATED[1]
    assert state["tokenSource"] == "direct"
    assert [source["lastError"] for source in state["sources"]] == [None]  # never turned down
    assert fake.page_token_calls() == 1
    assert all("sp_dc" not in call.cookies for call in fake.state.calls)


async def test_unproven_secrets_are_tried_on_spotify_at_most_the_allowed_number_of_times(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    fake.list_decoys(("decoy-secret-number-3", 64), ("decoy-secret-number-2", 63), ("decoy-secret-1", 62))
    settings = make_settings(sources="direct", direct_unproven_tries=2, retries=1, source_cooldown=0.01)
    async with running_server(settings) as running:
        await running.client.post("/api/token/refresh")
        # The decoys' 502 reaches whichever fetch tried them first (the start-up one or the first
        # refresh); after them, nothing is learned, and the direct source alone says so, to the
        # refresher's own tries after each cool-down and to forced requests during one.
        await wait_for_status(running, lambda state: "no secret learned" in (state["lastError"] or ""), 10)
        answers = [await running.client.post("/api/token/refresh") for _ in range(3)]
        state = await status_of(running)
    assert {answer.status_code for answer in answers} == {503}
    assert fake.token_requests == 2  # the two newest decoys, once each; then nothing more upstream
    assert [call.query["totpVer"] for call in fake.state.calls] == [["64"], ["63"]]
    assert "no secret learned" in state["direct"]["trouble"]


async def test_with_the_browser_a_decoy_is_never_sent_upstream(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    fake.list_decoys(("decoy-secret-number-1", 62))
    async with serve(make_settings(sources=BOTH, direct_unproven_tries=0)) as running:
        await token(running)  # nothing proven yet: the browser answers and is seen
        await wait_for_status(running, lambda state: state["direct"]["totpVersion"] is not None, within_s=10)
        await wait_for_status(running, direct_is_back, within_s=5)
        after = await token(running, force=True)
        state = await status_of(running)
    assert after["success"] is True
    assert state["tokenSource"] == "direct"
    assert state["direct"] == proven("page")
    assert [call.query["totpVer"] for call in fake.state.calls] == [["61"], ["61"]]


async def test_an_unreachable_spotify_is_named_by_curls_cause(make_settings: SettingsMaker) -> None:
    closed = free_port()
    rules = f"open.spotify.com:443:127.0.0.1:{closed},open.spotifycdn.com:443:127.0.0.1:{closed}"
    async with running_server(make_settings(sources="direct", retries=0, connect_to=rules)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 502
    assert response.json()["error"] == "Spotify could not be reached (couldnt connect, curl error 7)"


async def not_ready_tries(running: Running) -> int:
    metrics = (await running.client.get("/metrics")).text
    found = re.search(r'tokener_source_tries_total\{[^}]*outcome="not_ready"[^}]*\} (\S+)', metrics)
    return int(float(found[1])) if found else 0


async def test_wrong_totps_stay_within_the_budget_with_decoys_and_a_record_rewritten_in_redis(
    make_settings: SettingsMaker, fake: FakeSpotify, shared_redis: RedisServer, redis_prefix: str
) -> None:
    fake.list_decoys(*((f"decoy-secret-number-{n:04}", n) for n in range(2000, 1000, -1)))
    settings = make_settings(
        sources="direct", direct_unproven_tries=2, redis_url=shared_redis.url, redis_prefix=redis_prefix
    )
    planted = Knowledge(
        Secret("a-planted-secret", 70), default_shape(settings.spotify_url), Origin.PAGE, True
    )

    async def rewrite(redis: Redis) -> None:
        """A hostile record, newer than any the service read, until the test ends."""
        for n in itertools.count():
            await redis.set(f"{redis_prefix}note:{NOTE}", dump_knowledge(planted, 4_000_000_000_000 + n))
            await asyncio.sleep(0.02)

    async with running_server(settings) as running, Redis.from_url(shared_redis.url) as redis:
        rewriting = asyncio.create_task(rewrite(redis))
        try:
            await wait_for_status(
                running, lambda state: "wrong TOTPs" in (state["direct"]["trouble"] or ""), within_s=20
            )
            async with asyncio.timeout(20):  # the refresher tries on, and sends nothing
                while await not_ready_tries(running) < 3:  # noqa: ASYNC110 - polls the service
                    await asyncio.sleep(0.05)
        finally:
            rewriting.cancel()
    wrong = [call for call in fake.state.calls if not accepts(fake.key, call.query["totp"][0], call.at)]
    assert len(wrong) == len(fake.state.calls) == 3  # the two unproven tries, and one more


async def test_dead_cookies_cost_one_token_call_each_and_no_browser_once_the_secret_is_proven(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(sources=BOTH)) as running:
        await token(running)  # the newest version, accepted: proven
        assert (await status_of(running))["direct"]["secretProven"] is True
        dead = [
            await running.client.get("/api/token", headers={"Cookie": f"sp_dc=AQ-dead-cookie-{n}"})
            for n in range(3)
        ]
    assert [answer.status_code for answer in dead] == [httpx.codes.UNAUTHORIZED] * 3
    assert [call.cookies.get("sp_dc") for call in fake.state.calls[1:]] == [
        f"AQ-dead-cookie-{n}" for n in range(3)
    ]
    assert fake.page_token_calls() == 0  # no browser was asked to check


class EndlessRead:
    """A page whose memory takes longer to read than any limit allows; what happened, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, *args: object) -> list[str]:
        self.events.append("read")
        try:
            await asyncio.Event().wait()
        finally:
            self.events.append("read ended")
        return []


class Teachings:
    """The browser's teachings after its answers, counted as they start and end."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = self.ended = 0
        teach = BrowserSource._teach

        async def counted(source: BrowserSource, *args: Any) -> None:
            self.started += 1
            try:
                await teach(source, *args)
            finally:
                self.ended += 1

        monkeypatch.setattr(BrowserSource, "_teach", counted)

    def idle(self) -> bool:
        return self.started == self.ended


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not check():  # noqa: ASYNC110 - polls what the service does in the background
            await asyncio.sleep(0.02)


async def test_the_token_comes_before_a_memory_read_that_times_out_and_that_read_is_not_tried_again(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    read, teachings = EndlessRead(), Teachings(monkeypatch)
    monkeypatch.setattr("spotify_tokener.sources.browser.source.page_strings", read)
    fake.write_secret_as("assembled")  # nothing in the scripts: the memory is wanted
    async with serve(make_settings(sources=BOTH, fetch_timeout=3.0)) as running:
        first = await token(running, force=True)
        read.events.append("token")
        await until(lambda: "read ended" in read.events and teachings.idle())  # at the read's own limit
        before = teachings.started
        second = await token(running, force=True)  # the same scripts
        await until(teachings.idle)
        state = await status_of(running)
    assert [first["success"], second["success"]] == [True, True]
    assert read.events in (["read", "token", "read ended"], ["token", "read", "read ended"])
    assert teachings.started == before + 1  # the second answer's teaching ran, and did not read
    assert "memory" in state["direct"]["trouble"]  # the read that timed out was told as holding nothing


async def test_while_a_teaching_reads_the_pages_memory_another_fallback_loads_no_page(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embed page answers for the direct source; the browser teaches behind it, one at a time
    including the memory read after its own answer."""
    read, attempts = EndlessRead(), []
    monkeypatch.setattr("spotify_tokener.sources.browser.source.page_strings", read)
    attempt = BrowserSource.attempt

    async def counted(source: BrowserSource, *args: Any) -> Token:
        attempts.append(1)
        return await attempt(source, *args)

    monkeypatch.setattr(BrowserSource, "attempt", counted)
    fake.write_secret_as("assembled")
    async with serve(make_settings(sources="direct,embed,browser")) as running:
        await token(running)
        await until(lambda: "read" in read.events)  # the background attempt answered; its read runs
        await token(running, force=True)  # the embed page answers again, for the same direct source
    assert len(attempts) == 1


async def test_a_memory_read_under_way_is_cancelled_when_the_service_stops(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = EndlessRead()
    monkeypatch.setattr("spotify_tokener.sources.browser.source.page_strings", read)
    fake.write_secret_as("assembled")
    async with serve(make_settings(sources=BOTH)) as running:  # the read's limit: 20 s
        await token(running)
        await until(lambda: "read" in read.events)
    assert read.events == ["read", "read ended"]


async def test_reading_a_page_crowded_with_strings_stops_at_the_cap_without_awaiting_the_snapshots_end(
    fake: FakeSpotify, warm_browser: BrowserManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    abandoned: list[str] = []
    send = CDPSession.send

    async def held(session: CDPSession, method: str, *args: Any, **options: Any) -> dict[str, Any]:
        """The snapshot of a huge memory: its end (the command's answer) does not come."""
        try:
            answer = await send(session, method, *args, **options)
            if method == "HeapProfiler.takeHeapSnapshot":
                await asyncio.Event().wait()
            return answer
        except asyncio.CancelledError:
            abandoned.append(method)
            raise

    fake.plant_strings(PLANTED)
    async with warm_browser.context() as empty:
        own = await empty_page_strings(empty, SITE)
    assert own is not None
    monkeypatch.setattr(CDPSession, "send", held)
    async with warm_browser.context() as context:
        page = await context.new_page()
        await page.goto(SITE)
        async with asyncio.timeout(30):  # without the cap, it would wait for the end for ever
            strings = await page_strings(context, page, own, cap=CAP)
    assert len(strings) == CAP
    assert abandoned == ["HeapProfiler.takeHeapSnapshot"]
